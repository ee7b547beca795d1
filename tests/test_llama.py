"""Against a real OpenAI-compatible server: llama.cpp's own, with the real SmolLM2-135M-Instruct model.

The fake server (tests/openai_server.py) pins down wire formats and faults; these check that what actorsim
records and enforces holds against a server it did not write: streamed replies, the server's token counts,
replies cut at its token limit, a concurrency limit, and a replay that needs no server at all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import actorsim
from actorsim import RolePlay, TaskCenter, create_component
from actorsim.runs import read_run
from tests.conftest import Make, own_runtime
from tests.helpers import TASK, logged_events, of_kind, texts_by_role
from tests.llama_server import REPLY_TOKENS, LlamaServer, running_llama

pytestmark = pytest.mark.llama


def real_llm(server: LlamaServer, **options: Any) -> dict[str, Any]:
    return {"model_server": "openai", "model": "smollm2", "api_base": server.api_base, "api_key": "none",
            "temperature": 0.0, "seed": 7, "timeout": 120, **options}


def test_a_debate_streams_with_the_servers_token_counts(make: Make, log_dir: Path, llama: LlamaServer) -> None:
    """Each reply streams in pieces; each call's usage is the server's (its own counters agree); a reply cut at
    the server's token limit says so, on its closing frame."""
    before = llama.metrics()
    with logged_events(log_dir) as events:
        center = make(TaskCenter, "moon_debate")
        center.add_agents([make(RolePlay, role, llm=real_llm(llama), instruction="Debate briefly.")
                           for role in ("joe_biden", "donald_trump")])
        center.send_task_request(TASK, send_to="joe_biden")
        frames = [*center.step(), *center.step()]
    after = llama.metrics()
    replies = texts_by_role(frames)
    assert set(replies) == {"joe_biden", "donald_trump"} and all(text.strip() for text in replies.values())
    assert len([f for f in frames if f.role == "joe_biden" and f.content]) > 1, "streamed, not in one piece"
    calls = of_kind(events, "llm.call.finished")
    assert len(calls) == 2
    for call in calls:
        usage = call["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
        assert usage["completion_tokens"] <= REPLY_TOKENS
    predicted = after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"]
    assert sum(call["usage"]["completion_tokens"] for call in calls) == predicted
    cut = {call["reply_id"] for call in calls if call["finish_reason"] == "length"}
    assert cut == {frame.message_id for frame in frames if frame.finish_reason == "length"}
    assert all(call["finish_reason"] in ("stop", "length") for call in calls)


def test_max_concurrency_holds_on_the_real_server(make: Make, llama: LlamaServer) -> None:
    """Four agents, `max_concurrency=1`, a server with two slots: its `/slots` never show two busy."""
    busiest: list[int] = []
    stepping = threading.Event()

    def watch() -> None:
        while not stepping.wait(0.005):
            busiest.append(sum(bool(slot["is_processing"]) for slot in llama.slots()))

    center = make(TaskCenter, "one_at_a_time")
    roles = [f"bee_{n}" for n in range(4)]
    center.add_agents([make(RolePlay, role, llm=real_llm(llama, max_concurrency=1)) for role in roles])
    center.send_task_request("Name a flower.")
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        replies = texts_by_role(center.step())
    finally:
        stepping.set()
        watcher.join()
    assert set(replies) == set(roles)
    assert max(busiest) == 1, f"busy slots seen: {sorted(set(busiest))}"


def test_a_recorded_run_replays_with_the_server_stopped(tmp_path: Path) -> None:
    """Recorded against a server of its own, replayed once that server is gone: same replies, same token counts."""
    def debate(runtime: actorsim.Runtime, api_base: str) -> list[tuple[str, str]]:
        llm = {"model_server": "openai", "model": "smollm2", "api_base": api_base, "api_key": "none",
               "temperature": 0.0, "timeout": 120, "max_attempts": 1}
        center = create_component(TaskCenter, name="recorded", remote=True, runtime=runtime)
        center.add_agents([create_component(RolePlay, name=role, remote=True, runtime=runtime, llm=llm)
                           for role in ("ann", "bob")])
        center.send_task_request("Rockets or balloons?")
        list(center.step())
        return [(m.sent_from, m.content) for m in center.environment.history()]

    with running_llama(tmp_path / "server.log") as server:
        api_base = server.api_base
        with own_runtime("local", tmp_path / "logs") as runtime:
            recorded = debate(runtime, api_base)
            recording = runtime.log_config.directory
    with actorsim.init(transport="local", log_dir=tmp_path / "logs", replay=recording) as replay:
        assert debate(replay, api_base) == recorded
        replayed = replay.log_config.directory
    usage = read_run(replayed).total_usage
    assert usage == read_run(recording).total_usage and usage.total_tokens > 0
