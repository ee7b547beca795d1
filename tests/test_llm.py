"""Model backends: the scripted model, and OpenAI-compatible servers over HTTP."""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actorsim import ChatMessage, LLMError, RolePlay, Runtime, TaskCenter, create_component
from actorsim.cli import main as cli_main
from actorsim.llm import (
    OpenAIChatModel,
    OpenAIConfig,
    RetryNotice,
    ScriptedConfig,
    ScriptedModel,
    Throttled,
    build_chat_model,
)
from actorsim.runs import read_run
from tests.conftest import Make, own_runtime
from tests.helpers import TASK, texts_by_role
from tests.openai_server import OpenAIServer

PROMPT = [ChatMessage("system", "You are terse."), ChatMessage("user", "Hello?")]


def fast_retries(server: OpenAIServer, **options: object) -> OpenAIConfig:
    return OpenAIConfig(
        model="test-model", api_base=server.api_base, retry_initial_wait=0.01, retry_max_wait=0.05, **options
    )


class TestScriptedModel:
    def test_replies_stream_word_by_word_and_cycle(self) -> None:
        """Chunks join back into the reply; the n-th reply answers a prompt that holds n - 1 replies."""
        model = ScriptedModel(ScriptedConfig(["Fly me to the Moon.", "Next."]))
        assert list(model.stream(PROMPT)) == ["Fly ", "me ", "to ", "the ", "Moon."]
        assert "".join(model.stream(PROMPT)) == "Fly me to the Moon.", "the model keeps no state"
        prompt = list(PROMPT)
        replies = []
        for _ in range(3):
            replies.append("".join(model.stream(prompt)))
            prompt += [ChatMessage("assistant", replies[-1]), ChatMessage("user", "And?")]
        assert replies == ["Fly me to the Moon.", "Next.", "Fly me to the Moon."]

    def test_latencies_are_waited_per_reply_and_per_chunk(self) -> None:
        """reply_latency comes before the first chunk, chunk_latency before each later one."""
        waits: list[float] = []
        model = ScriptedModel(ScriptedConfig(["a b c"], reply_latency=0.5, chunk_latency=0.1), sleep=waits.append)
        assert list(model.stream(PROMPT)) == ["a ", "b ", "c"]
        assert waits == [0.5, 0.1, 0.1]

    def test_config_is_checked(self) -> None:
        with pytest.raises(ValueError, match="replies must be a non-empty list of strings"):
            ScriptedConfig([])
        with pytest.raises(ValueError, match="chunk_latency must be >= 0"):
            ScriptedConfig(["a"], chunk_latency=-1)


class TestOpenAIBackend:
    def test_a_reply_streams_from_the_server(self) -> None:
        """The prompt goes out as chat messages with stream=true; the reply comes back in pieces."""
        with OpenAIServer(["Use a big rocket."], api_key="sk-test") as server:
            model = OpenAIChatModel(fast_retries(server, api_key="sk-test"))
            assert list(model.stream(PROMPT)) == ["Use ", "a ", "big ", "rocket."]
        assert server.requests == [
            {
                "model": "test-model",
                "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello?"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ]
        assert model.last_usage == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
        assert model.last_finish_reason == "stop"

    def test_a_server_that_refuses_stream_options_is_asked_without_them_once_and_from_then_on(self) -> None:
        """A 400 naming `stream_options`: the same call goes again at once without them (no retry spent, no
        wait); the server is remembered, so the next calls, from any model of the process, leave them out."""
        with OpenAIServer(["No usage here."], refuse_stream_options=True) as server:
            first, second = (OpenAIChatModel(fast_retries(server)) for _ in range(2))
            assert "".join(first.stream(PROMPT)) == "No usage here."
            assert "".join(second.stream(PROMPT)) == "No usage here."
        assert server.statuses == [400, 200, 200]
        assert ["stream_options" in request for request in server.requests] == [True, False, False]
        assert first.last_usage is None and first.last_finish_reason == "stop"

    def test_a_refusal_of_stream_options_is_forgotten_when_its_run_ends(self, tmp_path: Path) -> None:
        """Remembered for its run, not for the process: the next run in the same process asks the server at that
        address (here the same one, upgraded) for its usage again."""
        with OpenAIServer(["Counted."], refuse_stream_options=True) as server:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base}
            for run in range(2):
                with own_runtime("local", tmp_path / str(run)):
                    center = create_component(TaskCenter, name="center", remote=True)
                    center.add_agents([create_component(RolePlay, name="ann", remote=True, llm=llm)])
                    center.send_task_request(TASK)
                    assert texts_by_role(center.step()) == {"ann": "Counted."}
                server.refuse_stream_options = False
        assert server.statuses == [400, 200, 200]
        assert ["stream_options" in request for request in server.requests] == [True, False, True]
        usage = [read_run(next((tmp_path / str(run)).iterdir())).total_usage for run in range(2)]
        assert (usage[0].total_tokens, usage[1].prompt_tokens, usage[1].completion_tokens) == (0, 7, 1)

    def test_a_reply_cut_at_the_token_limit_says_so(self) -> None:
        with OpenAIServer(["one two three four five"]) as server:
            model = OpenAIChatModel(fast_retries(server, max_tokens=2))
            assert "".join(model.stream(PROMPT)) == "one two "
        assert model.last_finish_reason == "length"
        assert model.last_usage is not None and model.last_usage["completion_tokens"] == 2

    def test_models_of_one_server_share_a_connection_pool(self) -> None:
        """A host's hundreds of agents talk to a server through one pool; another server gets its own."""
        with OpenAIServer(["one"]) as server, OpenAIServer(["two"]) as other:
            first, second = (OpenAIChatModel(fast_retries(server)) for _ in range(2))
            elsewhere = OpenAIChatModel(fast_retries(other))
            assert first._client is second._client and elsewhere._client is not first._client
            assert list(first.stream(PROMPT)) == list(second.stream(PROMPT)) == ["one"]
            assert list(elsewhere.stream(PROMPT)) == ["two"]

    def test_calls_one_after_another_keep_one_connection_open(self) -> None:
        """A stream is read to its end, so its kept-alive connection serves the next call (no new one, no new TLS
        handshake); a stream reset mid-reply leaves a new connection to the next calls."""
        with OpenAIServer(["one two three"], keep_alive=True, reset_after=[None, 2]) as server:
            model = OpenAIChatModel(fast_retries(server), sleep=lambda _: None)
            replies = ["".join(model.stream(PROMPT)) for _ in range(4)]
        assert replies == ["one two three"] * 4
        first, reset, retried, *later = server.connections
        assert first == reset != retried and later == [retried, retried]

    def test_transient_failures_are_retried(self) -> None:
        """500 twice, then 200: the call succeeds after two backoff waits."""
        waits: list[float] = []
        with OpenAIServer(["Third time lucky."], failures=[500, 500]) as server:
            model = OpenAIChatModel(fast_retries(server), sleep=waits.append)
            assert "".join(model.stream(PROMPT)) == "Third time lucky."
        assert server.statuses == [500, 500, 200]
        assert len(waits) == 2 and all(0 < wait <= 0.05 for wait in waits)

    def test_a_stream_that_breaks_off_is_asked_again_and_not_repeated(self) -> None:
        """The line drops after two pieces: the call is made again and only the rest is yielded."""
        with OpenAIServer(["one two three four"], cut_after=[2]) as server:
            model = OpenAIChatModel(fast_retries(server), sleep=lambda _: None)
            assert list(model.stream(PROMPT)) == ["one ", "two ", "three ", "four"]
        assert server.statuses == [200, 200]

    def test_retries_are_bounded(self) -> None:
        """A server that keeps failing is given up on after max_attempts, with its status in the error."""
        with OpenAIServer(["never"], failures=[503] * 5) as server:
            model = OpenAIChatModel(fast_retries(server, max_attempts=3), sleep=lambda _: None)
            with pytest.raises(LLMError, match="answered 503"):
                list(model.stream(PROMPT))
        assert server.statuses == [503, 503, 503]

    def test_a_refused_key_fails_at_once_and_no_restart_can_cure_it(self) -> None:
        """401 is not retried, the error says what the server answered, and it is not restartable."""
        with OpenAIServer(["never"], api_key="sk-right") as server:
            model = OpenAIChatModel(fast_retries(server, api_key="sk-wrong"), sleep=lambda _: None)
            with pytest.raises(LLMError, match="answered 401 Unauthorized") as caught:
                list(model.stream(PROMPT))
        assert server.statuses == [401]
        assert caught.value.restartable is False

    def test_a_refused_connection_fails_at_once_and_no_restart_can_cure_it(self) -> None:
        """Nothing listens: one try, no wait, an error naming the server, not restartable."""
        waits: list[float] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = OpenAIConfig(model="m", api_base=f"http://127.0.0.1:{port}/v1", retry_initial_wait=0.01)
        expected = rf"cannot connect to the model server at http://127.0.0.1:{port}/v1"
        with pytest.raises(LLMError, match=expected) as caught:
            list(OpenAIChatModel(config, sleep=waits.append).stream(PROMPT))
        assert caught.value.restartable is False
        assert waits == []

    def test_retries_are_announced_before_each_wait(self) -> None:
        """`stream_events` says which try comes next and after how long, before waiting; `stream` stays text."""
        waits: list[float] = []
        with OpenAIServer(["Third time lucky."], failures=[503, 429]) as server:
            model = OpenAIChatModel(fast_retries(server), sleep=waits.append)
            events = list(model.stream_events(PROMPT))
        notices = [event for event in events if isinstance(event, RetryNotice)]
        assert [(n.problem, n.attempt, n.max_attempts) for n in notices] == [
            ("answered 503 Service Unavailable", 2, 5), ("answered 429 Too Many Requests", 3, 5),
        ]
        assert waits == [n.wait_s for n in notices], "each notice comes before its wait"
        assert str(notices[0]).startswith(
            f"model server at {server.api_base} answered 503 Service Unavailable; retry 2 of 5 in "
        )
        assert "".join(event for event in events if isinstance(event, str)) == "Third time lucky."

    def test_a_refusal_pauses_the_whole_server_when_down_or_refused_again(self) -> None:
        """A first 429 is a full server: the refused call waits alone. A 503 (down), or a call the server refuses
        again after its wait, says the server's pause is for every call of it (`Throttled.pauses_server`)."""
        with OpenAIServer(["At last."], failures=[429, 429, 503, 429]) as server:
            model = OpenAIChatModel(fast_retries(server, max_attempts=5), sleep=lambda seconds: None)
            events = list(model.stream_events(PROMPT))
        throttled = [event for event in events if isinstance(event, Throttled)]
        assert [(notice.status, notice.pauses_server) for notice in throttled] == [
            (429, False), (429, True), (503, True), (429, True)]
        assert "".join(event for event in events if isinstance(event, str)) == "At last."

    def test_a_503_pauses_the_whole_server_at_once(self) -> None:
        with OpenAIServer(["Back."], failures=[503]) as server:
            events = list(OpenAIChatModel(fast_retries(server), sleep=lambda seconds: None).stream_events(PROMPT))
        assert [notice.pauses_server for notice in events if isinstance(notice, Throttled)] == [True]

    @pytest.mark.parametrize("restartable", [True, False])
    def test_llm_errors_cross_processes_with_restartable(self, restartable: bool) -> None:
        """Thespian and Ray pickle the error on its way to the driver's supervisor."""
        error = pickle.loads(pickle.dumps(LLMError("model server at X answered 404", restartable=restartable)))
        assert (str(error), error.restartable) == ("model server at X answered 404", restartable)


class TestLLMConfigCheck:
    def test_a_misspelt_model_server_key_is_named(self) -> None:
        """As every other misspelt key is."""
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['modelserver'\]; model_server is missing"):
            build_chat_model({"modelserver": "scripted", "replies": ["hi"]})

    def test_a_bad_llm_is_refused_before_any_actor_starts(self, runtime: Runtime, transport_name: str) -> None:
        """create_component checks the llm in the caller: no actor is spawned, nothing is logged for it."""
        started = time.time()
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['modelserver'\]"):
            create_component(RolePlay, name="misspelt", remote=True, runtime=runtime, llm={"modelserver": "scripted"})
        assert not runtime.has_actors
        log = read_run(runtime.log_config.directory)  # type: ignore[union-attr]
        assert [e for e in log.events if e["ts"] >= started and e.get("actor") == "misspelt"] == []


class TestConfigs:
    def test_dashscope_needs_a_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
        with pytest.raises(ValueError, match="needs api_key or DASHSCOPE_API_KEY"):
            build_chat_model({"model": "qwen-max", "model_server": "dashscope"})

    def test_dashscope_speaks_the_openai_protocol(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The seed's dashscope config, its key from the environment, pointed at a local server."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-dash")
        with OpenAIServer(["Ni hao."], api_key="sk-dash") as server:
            model = build_chat_model({"model": "qwen-max", "model_server": "dashscope", "api_base": server.api_base})
            assert "".join(model.stream(PROMPT)) == "Ni hao."
        assert server.requests[0]["model"] == "qwen-max"

    def test_dashscope_default_endpoint(self) -> None:
        model = build_chat_model({"model": "qwen-max", "model_server": "dashscope", "api_key": "k"})
        assert isinstance(model, OpenAIChatModel)
        assert model.config.api_base == "https://dashscope.aliyuncs.com/compatible-mode/v1"


class TestAgentsOnARealServer:
    def test_a_debate_over_http(self, make: Make) -> None:
        """Agents in every mode stream their replies from the server; prompts carry the task."""
        with OpenAIServer(["Rockets, obviously.", "Balloons, clearly."]) as server:
            llm = {"model_server": "openai", "model": "local-model", "api_base": server.api_base}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm), make(RolePlay, "donald_trump", llm=llm)])
            task_center.send_task_request(TASK, send_to="joe_biden")
            assert texts_by_role(task_center.step()) == {"joe_biden": "Rockets, obviously."}
            assert texts_by_role(task_center.step()) == {"donald_trump": "Balloons, clearly."}
        first_prompt = server.requests[0]["messages"]
        assert first_prompt[-1] == {"role": "user", "content": f"user_requirement: {TASK}"}
        assert server.requests[1]["messages"][-1]["content"] == "joe_biden: Rockets, obviously."

    def test_a_broken_stream_shows_each_frame_once(self, make: Make) -> None:
        """A reply whose stream breaks mid-way reaches the user and the history whole, and once."""
        with OpenAIServer(["We go with a reusable rocket."], cut_after=[3]) as server:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "retry_initial_wait": 0.01}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm)])
            task_center.send_task_request(TASK)
            assert texts_by_role(task_center.step()) == {"joe_biden": "We go with a reusable rocket."}
        assert server.statuses == [200, 200]
        assert [m.content for m in task_center.environment.history()][-1] == "We go with a reusable rocket."


def test_the_run_log_holds_token_counts_and_why_each_reply_ended(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply cut at `max_tokens`: its call is logged with the server's counts and finish_reason "length";
    the step says so, and marks the reply's closing frame."""
    with OpenAIServer(["one two three four five"]) as server, caplog.at_level(logging.WARNING, logger="actorsim"):
        center = make(TaskCenter, "counted")
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "max_tokens": 2}
        center.add_agents([make(RolePlay, "ann", llm=llm)])
        task = center.send_task_request("count to five")
        frames = list(center.step())
        assert texts_by_role(frames) == {"ann": "one two "}
    assert [(f.role, f.content, f.finish_reason) for f in frames if f.finish_reason] == [("ann", "", "length")]
    assert frames[-1].finish_reason == "length" and all(f.finish_reason is None for f in frames[:-1])
    assert any("ann: the reply was cut at its model's token limit" in r.getMessage() for r in caplog.records)
    run = read_run(center.runtime.log_config.directory)
    [reply] = [m for m in run.messages if m.trace_id == task.trace_id and m.sent_from == "ann"]
    [call] = [e for e in run.of_type("llm.call.finished") if e.get("reply_id") == reply.message_id]
    assert call["finish_reason"] == "length"
    assert call["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


@pytest.mark.parametrize("transport", ["plain", "local", "thespian", "ray"])
def test_tokens_and_cost_add_up_per_agent_and_per_run(transport: str, tmp_path: Path) -> None:
    """`price` in the llm dict: each call's cost is logged; `Run.usage` sums them per agent, `actorsim runs` per run."""
    with OpenAIServer(["one two three", "four five"]) as server, contextlib.ExitStack() as stack:
        run_of_its_own = None if transport == "plain" else stack.enter_context(own_runtime(transport, tmp_path))

        def build(cls: type, name: str, **options: Any) -> Any:
            if run_of_its_own is None:
                return cls(name=name, log_dir=tmp_path, **options) if cls is TaskCenter else cls(name=name, **options)
            return create_component(cls, name=name, remote=True, runtime=run_of_its_own, **options)

        center = build(TaskCenter, "priced")
        if run_of_its_own is None:
            stack.callback(center.close)
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base,
               "price": {"input": 2.0, "output": 10.0}}
        center.add_agents([build(RolePlay, role, llm=llm) for role in ("ann", "bob")])
        center.send_task_request("count", send_to="ann")
        list(center.step())
        list(center.step())
        directory = center.runtime.log_config.directory
    run = read_run(directory)
    ours = {e["reply_id"]: e for e in run.of_type("llm.call.finished") if e.get("role") in ("ann", "bob")}
    assert all(e["cost"] == (e["usage"]["prompt_tokens"] * 2 + e["usage"]["completion_tokens"] * 10) / 1e6
               for e in ours.values())
    usage = run.usage
    assert usage["ann"].completion_tokens + usage["bob"].completion_tokens >= 5
    assert run.total_usage.total_tokens == sum(u.total_tokens for u in usage.values()) > 0
    assert run.total_usage.cost == pytest.approx(sum(u.cost or 0 for u in usage.values()))
    listed = CliRunner().invoke(cli_main, ["--log-dir", str(run.directory.parent), "runs"], terminal_width=300)
    [row] = [line for line in listed.output.splitlines() if run.run_id in line]
    assert f"{run.total_usage.total_tokens:,} (" in row and f"${run.total_usage.cost:.4f}" in row


def test_a_bad_price_is_named(make: Make) -> None:
    with pytest.raises(ValueError, match="price must be"):
        make(RolePlay, "ann", llm={"model_server": "scripted", "replies": ["x"], "price": {"input": "cheap"}})
