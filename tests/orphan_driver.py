"""A driver that starts a Thespian run, reports its processes, and waits to be killed."""

from __future__ import annotations

import os
import sys
import threading

import psutil

import actorsim
from tests.actors import GetPid, Recorder

runtime = actorsim.init(transport="thespian", log_dir=sys.argv[1])
pids = [runtime.ask(runtime.spawn(Recorder, name=f"r{n}"), GetPid()) for n in range(2)]
admin = psutil.Process(pids[0]).parent()
assert admin is not None
others = [child.pid for child in admin.children() if child.pid not in pids]  # Thespian's logger
print(" ".join(str(pid) for pid in [os.getpid(), *pids, admin.pid, *others]), flush=True)
threading.Event().wait()
