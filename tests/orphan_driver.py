"""A driver that starts a Thespian run, reports its processes, and waits to be killed."""

from __future__ import annotations

import os
import sys
import threading

import actorsim
from tests.actors import GetPid, Recorder

runtime = actorsim.init(transport="thespian", log_dir=sys.argv[1])
pids = [runtime.ask(runtime.spawn(Recorder, name=f"r{n}"), GetPid()) for n in range(2)]
admin = {int(line.split()[3]) for line in open(f"/proc/{pids[0]}/stat")}
print(" ".join(str(pid) for pid in [os.getpid(), *pids, *admin]), flush=True)
threading.Event().wait()
