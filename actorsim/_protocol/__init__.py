"""The requests actors are sent and the answers they give, one module per kind of actor.

Apart from the behaviours (`actorsim._actors`), so that the driver's step
engine, the replay and the user interfaces can speak to an actor, or read
what it answered, without importing what the actor does.

    agent        RunStep and what a step streams back; memories; tool-service pauses
    environment  publishing, taking and releasing messages; history; dead letters; journal
    registry     AgentInfo; registering and finding agents
"""
