"""The task center's engine: steps, routing, views, members and tool calls, in the driver, over the runtime.

`TaskCenter` checks a caller's arguments and hands the work here. Import the
submodules themselves; this file re-exports nothing.

    steps       Steps: who responds, what they pull, replies streamed at once and published in order
    router      Router: where a routed `send_to` goes, decided and logged
    views       EnvironmentView, RegistryView: reading the Environment's and the Registry's state
    members     the agents `add_agents` is given: checked, described, started
    handles     AgentHandle: an agent running as an actor, as `create_component` returns it
    tool_calls  the driver's side of a tool service: a paused step's call asked and answered
"""
