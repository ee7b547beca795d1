"""Behaviours run as actors: plain classes with a `receive(request)` method.

Each dispatches on the type of its request; the requests and answers are
frozen attrs classes in `actorsim._protocol`, so that any transport can carry
them, a log can name them, and the driver sends them without importing a
behaviour.

    agent        AgentBehaviour: one user agent (in its own actor, or hosted)
    environment  Environment: every queue and the history
    registry     Registry: who is in the system
"""
