"""A run in the tools people already use: recorded runs posted to a real OpenTelemetry receiver (Arize Phoenix)
and read back through its API, and live export from every process of a run, on every transport.

What a span should be is derived here from the run log itself (its messages, deliveries and model and tool
calls), not from the exporter's own mapping."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actorsim
from actorsim import RolePlay, TaskCenter, create_component
from actorsim._core.options import OtelExport, RunOptions
from actorsim.export import post_run, run_spans
from actorsim.runs import read_run
from examples.swarm_crawl import CrawlConfig, crawl
from tests.conftest import Make, maker, own_runtime
from tests.helpers import texts_by_role
from tests.openai_server import OpenAIServer
from tests.otlp_receiver import OtlpReceiver
from tests.phoenix import Phoenix

TASKS = ("land on the Moon", "land on Mars")
ROLES = ("ann", "bob")


def openai_llm(server: OpenAIServer) -> dict[str, Any]:
    return {"model_server": "openai", "model": "test-model", "api_base": server.api_base}


def debate(center: TaskCenter, build: Any, server: OpenAIServer) -> list[str]:
    """Two tasks, two agents, two steps each, against a model server that reports usage; the tasks' trace ids."""
    center.add_agents([build(RolePlay, role, llm=openai_llm(server)) for role in ROLES])
    traces = []
    for task in TASKS:
        traces.append(center.send_task_request(task).trace_id)
        list(center.step())
        list(center.step())
    return traces


def expected_from_log(directory: Path, traces: list[str]) -> dict[str, Any]:
    """What the receiver must hold of these traces, from the run log alone."""
    run = read_run(directory)
    messages = {m.message_id: m for m in run.messages if m.trace_id in traces}
    replies = {e["reply_id"] for e in run.of_type("message.delivered") if e.get("reply_id")} & set(messages)
    tasks = {m.trace_id for m in messages.values() if m.message_id == m.trace_id}
    calls = [e for e in run.of_type("llm.call.finished") if e.get("reply_id") in replies]
    tools = [e for e in run.of_type("tool.call.finished", "tool.call.failed") if e.get("reply_id") in replies]
    return {"messages": messages, "replies": replies, "tasks": tasks, "calls": calls, "tools": tools}


def check_spans(spans: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    """Spans as a receiver gives them back (Phoenix's API: context, parent_id, name, attributes), against the log."""
    messages, replies = expected["messages"], expected["replies"]
    by_id = {span["context"]["span_id"]: span for span in spans}
    assert len(by_id) == len(spans), "no span sent twice"
    roots = {span["context"]["trace_id"]: span for span in spans if span["name"] == "invoke_workflow actorsim"}
    assert set(roots) == expected["tasks"] == {span["context"]["trace_id"] for span in spans}, "a trace per task"
    assert all(root["parent_id"] is None for root in roots.values())
    steps = {span["attributes"]["actorsim.message_id"]: span for span in spans
             if span["name"].startswith("invoke_agent ")}
    assert set(steps) == replies, "a span for every reply"
    for reply_id, span in steps.items():
        message = messages[reply_id]
        assert span["name"] == f"invoke_agent {message.sent_from}"
        assert span["context"]["trace_id"] == message.trace_id
        assert span["attributes"]["actorsim.clock"] == message.clock
        cause = next(messages[p] for p in message.parent_ids if p in messages)  # its first cause of the same task
        cause_id = cause.message_id.split(".")[0]
        parent = by_id[span["parent_id"]]
        if cause_id in replies:
            assert parent["attributes"]["actorsim.message_id"] == cause_id, "parent = the step of its cause"
        else:
            assert parent is roots[message.trace_id], "a task's (or the driver's) message: the task's root"
    chats = [span for span in spans if span["name"].startswith("chat ")]
    assert len(chats) == len(expected["calls"]), "a span for every model call"
    tokens = collections.Counter()
    for chat in chats:
        step = by_id[chat["parent_id"]]
        assert step["name"].startswith("invoke_agent ") and chat["context"]["trace_id"] == step["context"]["trace_id"]
        tokens[step["attributes"]["actorsim.message_id"]] += chat["attributes"].get("gen_ai.usage.output_tokens", 0)
    logged = collections.Counter()
    for call in expected["calls"]:
        logged[call["reply_id"]] += (call.get("usage") or {}).get("completion_tokens", 0)
    assert tokens == logged, "token counts as the model server reported them"
    tools = [span for span in spans if span["name"].startswith("execute_tool ")]
    assert len(tools) == len(expected["tools"]), "a span for every tool call"


@contextlib.contextmanager
def run_of_its_own(mode: str, log_dir: Path) -> Iterator[Make]:
    """`make` with a run of its own in every mode: the session's run of a transport holds every earlier test's
    messages, which an export of its log would send too (thousands of spans, a minute for Phoenix to take)."""
    if mode == "plain":
        with maker(None, log_dir) as make:
            yield make
        return
    with own_runtime(mode, log_dir) as run, maker(run, log_dir) as make:
        yield make


def test_an_exported_debate_reads_back_from_phoenix_as_its_log_says(
    mode: str, log_dir: Path, phoenix: Phoenix
) -> None:
    with OpenAIServer(["We should go by rocket.", "A rocket it is, then."]) as server, \
            run_of_its_own(mode, log_dir) as make:
        center = make(TaskCenter, "exported")
        traces = debate(center, make, server)
    directory = center.runtime.log_config.directory
    expected = expected_from_log(directory, traces)
    assert len(expected["replies"]) == 2 * 2 * len(TASKS) and all(call["usage"] for call in expected["calls"])
    sent = post_run(directory, phoenix.traces_endpoint)
    assert sent == len(run_spans(directory))
    ours = [span for span in run_spans(directory) if span.trace_id in traces]
    check_spans(phoenix.wait_for_spans(traces, len(ours)), expected)


def test_an_exported_crawl_reads_back_from_phoenix_as_its_log_says(phoenix: Phoenix, log_dir: Path) -> None:
    with own_runtime("local", log_dir) as run:
        crawl(CrawlConfig(pages=300, spiders=4, processors=2))
    directory = run.log_config.directory
    traces = sorted({m.trace_id for m in read_run(directory).messages})
    expected = expected_from_log(directory, traces)
    assert expected["tools"] and len(expected["replies"]) >= 20, "spiders fetch pages with a tool, step after step"
    post_run(directory, phoenix.traces_endpoint)
    ours = [span for span in run_spans(directory) if span.trace_id in traces]
    check_spans(phoenix.wait_for_spans(traces, len(ours)), expected)


@pytest.mark.parametrize(("transport", "hosts"), [
    pytest.param("local", None, id="local"), pytest.param("thespian", None, id="thespian"),
    pytest.param("ray", None, id="ray"), pytest.param("thespian", 2, id="thespian-hosted"),
])
def test_live_spans_reach_phoenix_from_every_process_as_an_export_gives_them(
    transport: str, hosts: int | None, phoenix: Phoenix, log_dir: Path
) -> None:
    """Sent as the run goes, from each process (agents in actors of their own, or many to a host); the same
    spans (ids, parents, names) as the log exports to."""
    with OpenAIServer(["We should go by rocket.", "A rocket it is, then."]) as server:
        with own_runtime(transport, log_dir, otel=phoenix.url, hosts=hosts) as run:
            center = create_component(TaskCenter, name="live", remote=True, runtime=run)
            traces = debate(center, lambda cls, role, **options: create_component(
                cls, name=role, remote=True, runtime=run, **options), server)
    directory = run.log_config.directory
    exported = {(s.trace_id, s.span_id, s.parent_span_id, s.name) for s in run_spans(directory)}
    received = phoenix.wait_for_spans(traces, len(exported))
    ids = {(s["context"]["trace_id"], s["context"]["span_id"], s["parent_id"], s["name"]) for s in received}
    assert ids == exported
    check_spans(received, expected_from_log(directory, traces))
    for message in read_run(directory).messages:  # the W3C trace context each message carried: its span's
        span = "task" if message.message_id == message.trace_id else "reply"
        assert message.traceparent is not None and message.traceparent.split("-")[1] == message.trace_id
        assert any(s["context"]["span_id"] == message.traceparent.split("-")[2] and
                   s["name"].startswith("invoke_workflow" if span == "task" else "invoke_agent") for s in received)


def test_live_spans_come_from_the_processes_that_did_the_work(log_dir: Path) -> None:
    """On Thespian each agent is a process: its steps and model calls come from it, the tasks from the
    environment's; spans go as protobuf, as the SDK's exporter sends them."""
    with OtlpReceiver() as receiver, OpenAIServer(["By rocket."]) as server:
        with own_runtime("thespian", log_dir, otel=receiver.endpoint) as run:
            center = create_component(TaskCenter, name="live", remote=True, runtime=run)
            traces = debate(center, lambda cls, role, **options: create_component(
                cls, name=role, remote=True, runtime=run, **options), server)
            pids = {name: run.supervisor.current(name).pid for name in (*ROLES, "live/environment")}
        assert receiver.content_types == {"application/x-protobuf"}
        spans = [span for span in receiver.spans if span["trace_id"] in traces]
    assert len(spans) == len(run_spans(run.log_config.directory))
    for span in spans:
        process = span["resource"]
        assert process["service.name"] == "actorsim"
        if span["name"].startswith(("invoke_agent", "chat")):
            role = span["attributes"]["actorsim.actor"]
            assert int(process["process.pid"]) == pids[role] != 0
    assert len({span["resource"]["process.pid"] for span in spans}) == len(ROLES) + 1


def test_live_export_is_off_unless_asked_for_or_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, make: Make
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert RunOptions().otel is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert RunOptions().otel == OtelExport("http://collector:4318/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/v1/traces")
    assert RunOptions().otel == OtelExport("http://tempo:4318/v1/traces")
    assert RunOptions(otel=False).otel is None
    assert RunOptions(otel="https://otel.example:4318").otel == OtelExport("https://otel.example:4318/v1/traces")
    with pytest.raises(ValueError, match="'collector:4318' is not the http"):
        RunOptions(otel="collector:4318")
    with monkeypatch.context() as without_the_extra:
        without_the_extra.setattr("actorsim._core.options.otel_installed", lambda: False)
        with pytest.raises(ImportError, match=r"pip install 'actorsim\[otel\]'"):
            RunOptions(otel=True)
        assert RunOptions().otel is None, "named by the environment but not installed: off, not an error"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    center = make(TaskCenter, "untraced")  # a run without it logs what it always did: no trace context
    center.add_agents([make(RolePlay, "ann", llm={"model_server": "scripted", "replies": ["yes"]})])
    center.send_task_request("go?")
    list(center.step())
    assert all(m.traceparent is None for m in read_run(center.runtime.log_config.directory).messages)


def test_a_receiver_that_is_not_there_is_said_once_and_the_run_goes_on(log_dir: Path) -> None:
    with OtlpReceiver() as gone:
        url = gone.url  # a port that was a receiver's: nothing listens there now
    with pytest.warns(UserWarning, match=f"the receiver at {url}/v1/traces cannot take spans"):
        context = own_runtime("local", log_dir, otel=url)
        run = context.__enter__()
    try:
        center = create_component(TaskCenter, name="unheard", remote=True, runtime=run)
        center.add_agents([create_component(RolePlay, name="ann", remote=True, runtime=run,
                                            llm={"model_server": "scripted", "replies": ["still here"]})])
        center.send_task_request("anyone?")
        assert texts_by_role(center.step()) == {"ann": "still here"}
    finally:
        context.__exit__(None, None, None)
    [said] = read_run(run.log_config.directory).of_type("otel.unreachable")
    assert said["endpoint"] == f"{url}/v1/traces" and "ConnectError" in said["error"]
    with pytest.raises(ValueError, match="it needs a log_dir"):
        actorsim.init("local", otel=url, log_dir=None)
