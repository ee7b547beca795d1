"""The bottom layer: values, protocols and the run context that every other layer shares.

Nothing here imports from the rest of actorsim (the standard library, attrs
and orjson only), so any module may import from here without a cycle. Import
the submodules themselves; this file re-exports nothing.

    ids          message ids that sort by creation time
    envelope     Message, Frame, ToolFrame: what agents exchange and `step()` yields
    chat         ChatMessage, ToolCall: the turns of a model's prompt
    roles        checking role arguments
    validators   attrs validators with one wording
    placement    where a Ray actor runs, parsed once
    options      RunOptions: a run's timeouts, log folder, cluster address, placement
    supervision  Supervision, Durable, Frozen: the values a supervisor works from
    budget       Budget: what a run may spend on model calls
    state        RunState: a run's queues, memories and history at one point
    ref          ActorRef: the name of one actor of one transport
    context      the current reply id and the current run, behind a small protocol
    wording      words the command line and the terminal share
"""
