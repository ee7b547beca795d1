"""`actorsim export`: a recorded run as OpenTelemetry spans (OTLP/JSON) and as a Chrome trace, on every mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actorsim import RolePlay, TaskCenter
from actorsim._telemetry.spans import message_span, span_id
from actorsim.export import export_run, post_run, run_spans
from actorsim.runs import read_run
from tests.conftest import Make
from tests.helpers import scripted, texts_by_role
from tests.openai_server import OpenAIServer
from tests.otlp_receiver import OtlpReceiver
from tests.test_cli import actorsim

TASKS = ("land on the Moon", "land on Mars")


def exported_debate(make: Make) -> tuple[Path, list[Any]]:
    """Two tasks, two agents, two steps each; the run's folder and this debate's messages."""
    center = make(TaskCenter, "exported")
    center.add_agents([make(RolePlay, role, llm=scripted("{speaker} heard {heard}")) for role in ("ann", "bob")])
    traces = []
    for task in TASKS:
        traces.append(center.send_task_request(task).trace_id)
        list(center.step())
        list(center.step())
    directory = center.runtime.log_config.directory
    messages = [m for m in read_run(directory).messages if m.trace_id in traces]
    return directory, messages


def test_each_task_is_a_trace_and_each_reply_a_span_under_its_cause(make: Make) -> None:
    directory, messages = exported_debate(make)
    spans = {span.span_id: span for span in run_spans(directory)}
    run_id = directory.name
    tasks = [m for m in messages if not m.parent_ids]
    assert [m.content for m in tasks] == list(TASKS)
    for task in tasks:
        root = spans[span_id("task", task.trace_id)]
        assert (root.trace_id, root.parent_span_id, root.name) == (task.trace_id, None, "invoke_workflow actorsim")
        assert root.attributes["gen_ai.conversation.id"] == run_id
    replies = [m for m in messages if m.parent_ids]
    assert len(replies) == 2 * 2 * len(TASKS)
    for reply in replies:
        span = spans[span_id("reply", reply.message_id)]
        causes = [next(m for m in messages if m.message_id == parent) for parent in reply.parent_ids]
        [cause, *others] = sorted(causes, key=lambda m: m.trace_id != reply.trace_id)  # its own task's first
        assert span.name == f"invoke_agent {reply.sent_from}"
        assert span.trace_id == reply.trace_id
        assert span.parent_span_id == message_span(cause.to_dict())[1]
        assert span.attributes["actorsim.clock"] == reply.clock
        assert set(span.links) == {message_span(m.to_dict()) for m in others}
        [chat] = [s for s in spans.values() if s.parent_span_id == span.span_id and s.name.startswith("chat")]
        assert chat.name == "chat ScriptedModel" and chat.trace_id == reply.trace_id
        assert span.start <= chat.start <= chat.end <= span.end
        assert "actorsim.content" not in span.events[-1].attributes, "text only with content=True"


def test_the_same_run_exports_the_same_bytes_in_both_formats(make: Make, tmp_path: Path) -> None:
    directory, messages = exported_debate(make)
    for form in ("otlp", "chrome"):
        first, second = tmp_path / f"1.{form}", tmp_path / f"2.{form}"
        assert export_run(directory, first, format=form) == export_run(directory, second, format=form) > 0
        assert first.read_bytes() == second.read_bytes()
    requests = [json.loads(line) for line in (tmp_path / "1.otlp").read_text().splitlines()]
    spans = [span for request in requests for resource in request["resourceSpans"]
             for scope in resource["scopeSpans"] for span in scope["spans"]]
    assert all(len(span["traceId"]) == 32 and len(span["spanId"]) == 16 for span in spans)
    assert {m.message_id for m in messages if m.parent_ids} <= {
        attribute["value"]["stringValue"] for span in spans for attribute in span["attributes"]
        if attribute["key"] == "actorsim.message_id"
    }
    chrome = json.loads((tmp_path / "1.chrome").read_text())["traceEvents"]
    slices = [event for event in chrome if event["ph"] == "X"]
    assert len(slices) == len(spans)
    assert all(event["dur"] >= 0 and {"pid", "tid", "ts"} <= event.keys() for event in slices)
    starts = {event["id"] for event in chrome if event["ph"] == "s"}
    ends = {event["id"] for event in chrome if event["ph"] == "f"}
    assert starts == ends and len(ends) >= len([m for m in messages if m.parent_ids])
    named = {(event["pid"], event.get("tid")) for event in chrome if event["ph"] == "M"}
    assert all((event["pid"], None) in named and (event["pid"], event["tid"]) in named for event in slices)


def test_a_run_posted_to_an_otlp_receiver_arrives_whole_as_the_file_has_it(make: Make, tmp_path: Path) -> None:
    """Posted protobuf-encoded by the SDK's encoder; the same spans as the OTLP/JSON file written by hand."""
    directory, _ = exported_debate(make)
    with OtlpReceiver() as receiver:
        sent = post_run(directory, receiver.endpoint)
        with pytest.raises(ValueError, match="answered 404"):
            post_run(directory, f"{receiver.url}/elsewhere")
    assert sent == len(receiver.spans) == export_run(directory, tmp_path / "run.otlp")
    written = [(span["traceId"], span["spanId"], span.get("parentSpanId"), span["name"],
                {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]})
               for line in (tmp_path / "run.otlp").read_text().splitlines()
               for resource in json.loads(line)["resourceSpans"] for scope in resource["scopeSpans"]
               for span in scope["spans"]]
    posted = [(span["trace_id"], span["span_id"], span["parent_id"], span["name"], span["attributes"])
              for span in receiver.spans]
    assert posted == written


def test_the_command_writes_sends_and_says_in_one_line_what_went_wrong(make: Make, tmp_path: Path) -> None:
    directory, _ = exported_debate(make)
    run = ("--log-dir", str(directory.parent), "export", directory.name)
    written = actorsim(tmp_path, *run, "--format", "chrome")
    assert written.returncode == 0 and f"to {directory.name}.trace.json" in written.stdout
    assert json.loads((tmp_path / f"{directory.name}.trace.json").read_text())["traceEvents"]
    with OtlpReceiver() as receiver:
        sent = actorsim(tmp_path, *run, "--endpoint", receiver.url)  # a base URL: /v1/traces is added
    assert sent.returncode == 0 and f"to {receiver.endpoint}" in sent.stdout
    assert f"sent {len(receiver.spans)} spans" in sent.stdout
    unreachable = actorsim(tmp_path, *run, "--endpoint", receiver.url)  # stopped now
    assert unreachable.returncode == 1 and unreachable.stderr.strip().startswith("Error: cannot reach")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    first = next(iter(sorted(directory.glob("driver-*.jsonl")))).read_text().splitlines()[0]
    (broken / "driver-1.jsonl").write_text(f"{first}\nnot json\n")  # a line damaged by hand
    corrupt = actorsim(tmp_path, "export", str(broken))
    assert corrupt.returncode == 1 and "driver-1.jsonl:2" in corrupt.stderr


def test_a_failed_model_call_is_an_error_span_under_the_step_delivered_again(make: Make) -> None:
    """The server fails the first call for good (one attempt): the agent crashes, is restarted and answers; its
    step's span holds both calls, the first with its error, the second with the reply (asked for: `content`)."""
    with OpenAIServer(["A rocket."], failures=[503]) as server:
        center = make(TaskCenter, "failing")
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "max_attempts": 1}
        center.add_agents([make(RolePlay, "ann", llm=llm)])
        task = center.send_task_request("how?")
        assert texts_by_role(center.step()) == {"ann": "A rocket."}
    directory = center.runtime.log_config.directory
    [reply] = [m for m in read_run(directory).messages if m.trace_id == task.trace_id and m.parent_ids]
    spans = run_spans(directory, content=True)
    [step] = [s for s in spans if s.span_id == span_id("reply", reply.message_id)]
    failed, answered = sorted((s for s in spans if s.parent_span_id == step.span_id), key=lambda s: s.start)
    assert failed.name == answered.name == "chat m"
    assert failed.attributes["error.type"] == "TransientServerError" and "error.type" not in answered.attributes
    assert json.loads(answered.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "A rocket."
    assert "gen_ai.output.messages" not in next(s for s in run_spans(directory) if s.span_id == answered.span_id
                                                 ).attributes, "no text without content=True"
