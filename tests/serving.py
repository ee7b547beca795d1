"""Waiting for a server a test started in a process of its own: ready when its health URL answers 200."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import httpx


def wait_until_serving(process: subprocess.Popen[bytes], health_url: str, timeout: float, log: Path, name: str) -> None:
    """Poll `health_url` until it answers 200; raise, with the end of its `log`, if `process` exits first, or
    `TimeoutError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not answer within {timeout:.0f} s (see {log})")
        time.sleep(0.2)  # polls its health endpoint, with a deadline
