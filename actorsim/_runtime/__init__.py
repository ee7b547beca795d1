"""The driver's runtime: a run's actors, started, asked, streamed and restarted under one supervisor.

Import the submodules themselves; this file re-exports nothing.

    runtime        Runtime: spawn, ask, stop, log; the front end to a run's actors
    stream         the supervised stream of a step's calls: crashed actors restarted while the others go on
    supervisor     Supervisor: restart what crashed, restore its state, give up past a budget
    interventions  Intervention: hooks into a run (replay plugs in here)
    driver_log     the driver's run log: where the run writes, `run.started`, the driver's events
    current        the run in progress in this process, started by `actorsim.init` or implicitly
"""
