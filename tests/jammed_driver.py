"""A driver whose Thespian admin is jammed: it must go on in a new actor system, then exit with its output piped.

Prints the pids of the first system's actors, then "exit" once it has shut down.
"""

from __future__ import annotations

import sys

import actorsim
from actorsim import ActorDiedError
from tests.actors import Append, GetPid, GetValues, JamAdmin, Recorder

runtime = actorsim.init(transport="thespian", log_dir=sys.argv[1], ask_timeout=60)
transport = runtime.transport
jammer, bystander = (transport.spawn(Recorder, name=name, timeout=60) for name in ("jammer", "bystander"))
print(jammer.pid, bystander.pid, flush=True)
for ref, request in ((jammer, JamAdmin()), (bystander, GetPid())):
    try:
        transport.ask(ref, request, timeout=60)
    except ActorDiedError as died:
        print(died, flush=True)
successor = transport.spawn(Recorder, name="successor", timeout=60)
transport.ask(successor, Append("after"), timeout=60)
assert transport.ask(successor, GetValues(), timeout=60) == ["after"]
runtime.shutdown()
print("exit", flush=True)
