"""`OTelExporter`: recorded spans become OpenTelemetry spans in the GenAI conventions,
with the right parents, statuses, timestamps and (only when asked) content; the
open span is the current OpenTelemetry span of its task; and the spans reach a real
OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import StatusCode

from penguiflow.errors import MissingExtraError
from penguiflow.spans import Span
from penguiflow.tracing.emitter import SpanEmitter
from penguiflow.tracing.otel import CAPTURE_CONTENT_ENV, OTelExporter
from penguiflow.tracing.propagation import inject

from .otel_fixtures import Memory, memory_provider, otlp_receiver

QUERY = "What is 2 + 2? (secret-query)"
ANSWER = "It is 4 (secret-answer)"
MESSAGES = [
    {"role": "system", "content": "You plan tool calls."},
    {"role": "user", "content": QUERY},
]
REPLY = '{"thought": "add them (secret-reply)", "next_node": "add"}'


@pytest.fixture
def memory() -> Iterator[Memory]:
    with memory_provider() as value:
        yield value
    # Every test leaves the context as it found it: no span stays current.
    assert not trace.get_current_span().get_span_context().is_valid


def planner_run(emitter: SpanEmitter) -> Span:
    """Emit the spans of a planner run: an LLM call and a tool, then a parallel plan
    whose second branch fails, a join, and the final answer."""
    run = emitter.open("run", "ReactPlanner", parent=None, attributes={"query": QUERY})
    run_token = emitter.enter(run)
    step = emitter.open(
        "step", "step", parent=run, attributes={"step": 0, "thought": "add (secret-thought)"}
    )
    step_token = emitter.enter(step)
    llm = emitter.open(
        "llm",
        "gpt-4o-mini",
        parent=step,
        attributes={"model": "gpt-4o-mini", "purpose": "action"},
        content={"messages": MESSAGES},
    )
    llm.attributes.update(
        prompt_tokens=120, completion_tokens=30, total_tokens=150, cost_usd=0.0012, latency_ms=5.0
    )
    llm.content["reply"] = REPLY
    emitter.close(llm)
    tool = emitter.open(
        "tool",
        "add",
        parent=step,
        attributes={"tool": "add", "call_id": "call-1"},
        content={"args": {"a": 2, "b": 2}},
    )
    tool.content["result"] = {"sum": 4}
    emitter.close(tool)
    step.attributes["action"] = "tool"
    emitter.exit(step_token)
    emitter.close(step)

    parallel = emitter.open("step", "step", parent=run, attributes={"step": 1})
    branches = []
    for index, name in enumerate(["search", "lookup"]):
        branch = emitter.open(
            "tool",
            name,
            parent=parallel,
            attributes={"tool": name, "call_id": f"call-{index + 2}", "branch": index},
            content={"args": {"q": "penguins"}},
        )
        branches.append(branch)
    branches[0].content["result"] = ["emperor"]
    emitter.close(branches[0])
    emitter.close(branches[1], "error", error=TimeoutError("lookup timed out"))
    join = emitter.open("join", "merge", parent=parallel, attributes={"tool": "merge"})
    emitter.close(join)
    parallel.attributes["action"] = "parallel"
    emitter.close(parallel)

    run.attributes.update(
        answer=ANSWER,
        reason="answer_complete",
        llm_calls=1,
        prompt_tokens=120,
        completion_tokens=30,
        total_tokens=150,
        cost_usd=0.0012,
        tool_calls=3,
    )
    emitter.exit(run_token)
    emitter.close(run)
    return run


def tree(spans: list[ReadableSpan]) -> list[tuple[str, str | None]]:
    """(name, parent name) of every span, in the order they ended."""
    names = {span.context.span_id: span.name for span in spans}
    return [
        (span.name, names.get(span.parent.span_id) if span.parent is not None else None)
        for span in spans
    ]


def gen_ai(span: ReadableSpan) -> dict[str, Any]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("gen_ai.")}


def test_a_planner_run_becomes_one_trace_of_genai_spans(memory: Memory) -> None:
    run = planner_run(SpanEmitter([OTelExporter(memory.provider, capture_content=False)]))
    spans = memory.spans()
    assert tree(spans) == [
        ("chat gpt-4o-mini", "penguiflow.step"),
        ("execute_tool add", "penguiflow.step"),
        ("penguiflow.step", "invoke_agent ReactPlanner"),
        ("execute_tool search", "penguiflow.step"),
        ("execute_tool lookup", "penguiflow.step"),
        ("execute_tool merge", "penguiflow.step"),
        ("penguiflow.step", "invoke_agent ReactPlanner"),
        ("invoke_agent ReactPlanner", None),
    ]
    assert len({span.context.trace_id for span in spans}) == 1
    by_name = memory.by_name()
    assert gen_ai(by_name["invoke_agent ReactPlanner"]) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "ReactPlanner",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    chat = by_name["chat gpt-4o-mini"]
    assert gen_ai(chat) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    assert chat.kind is trace.SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["penguiflow.cost_usd"] == 0.0012
    assert chat.attributes["penguiflow.purpose"] == "action"
    assert gen_ai(by_name["execute_tool add"]) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call-1",
    }
    assert by_name["execute_tool search"].attributes["penguiflow.branch"] == 0  # type: ignore[index]
    root = by_name["invoke_agent ReactPlanner"]
    assert root.attributes is not None
    assert root.attributes["penguiflow.run_id"] == run.run_id
    assert root.attributes["penguiflow.reason"] == "answer_complete"
    assert root.start_time == round(run.start * 1e9)
    assert root.end_time == round((run.end or 0) * 1e9)


def test_errors_set_status_and_error_type(memory: Memory) -> None:
    planner_run(SpanEmitter([OTelExporter(memory.provider)]))
    by_name = memory.by_name()
    failed = by_name["execute_tool lookup"]
    assert (failed.status.status_code, failed.status.description) == (
        StatusCode.ERROR,
        "lookup timed out",
    )
    assert failed.attributes is not None
    assert (failed.attributes["error.type"], failed.attributes["penguiflow.status"]) == (
        "TimeoutError",
        "error",
    )
    ok = by_name["execute_tool search"]
    assert ok.status.status_code is StatusCode.UNSET
    assert "error.type" not in (ok.attributes or {})


def test_content_is_exported_only_when_capture_is_on(memory: Memory) -> None:
    planner_run(SpanEmitter([OTelExporter(memory.provider, capture_content=False)]))
    everything = repr([dict(span.attributes or {}) for span in memory.spans()])
    assert "secret" not in everything
    assert "gen_ai.input.messages" not in everything
    memory.exporter.clear()

    planner_run(SpanEmitter([OTelExporter(memory.provider, capture_content=True)]))
    by_name = memory.by_name()
    chat = by_name["chat gpt-4o-mini"].attributes or {}
    assert __import__("json").loads(chat["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You plan tool calls."}]},
        {"role": "user", "parts": [{"type": "text", "content": QUERY}]},
    ]
    assert __import__("json").loads(chat["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": REPLY}],
            "finish_reason": "stop",
        }
    ]
    tool = by_name["execute_tool add"].attributes or {}
    assert (tool["gen_ai.tool.call.arguments"], tool["gen_ai.tool.call.result"]) == (
        '{"a": 2, "b": 2}',
        '{"sum": 4}',
    )
    root = by_name["invoke_agent ReactPlanner"].attributes or {}
    assert ANSWER in root["gen_ai.output.messages"]
    assert QUERY in root["gen_ai.input.messages"]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, False), ("true", True), ("TRUE", True), ("false", False)]
)
def test_capture_content_defaults_to_the_genai_environment_variable(
    memory: Memory, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, value)
    assert OTelExporter(memory.provider).capture_content is expected
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    assert OTelExporter(memory.provider, capture_content=False).capture_content is False


def test_an_invalid_capture_variable_warns_and_stays_off(
    memory: Memory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "sometimes")
    with caplog.at_level(logging.WARNING, logger="penguiflow.tracing"):
        assert OTelExporter(memory.provider).capture_content is False
    assert [r.message for r in caplog.records] == ["otel_capture_content_env_invalid"]


def test_flow_traces_and_node_attempts(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    root = emitter.open("trace", "orders", parent=None, run_id="ab" * 16)
    first = emitter.open("node", "enrich", parent=root, attributes={"node": "enrich"})
    emitter.close(first, "error", error=ValueError("flaky"))
    second = emitter.open("node", "enrich", parent=root, attributes={"node": "enrich"}, attempt=2)
    emitter.close(second)
    emitter.close(root)
    spans = memory.spans()
    assert tree(spans) == [
        ("node enrich", "flow orders"),
        ("node enrich", "flow orders"),
        ("flow orders", None),
    ]
    facts = [
        {k: v for k, v in (s.attributes or {}).items() if k.startswith("penguiflow.node")}
        for s in spans[:2]
    ]
    assert facts == [
        {"penguiflow.node.name": "enrich", "penguiflow.node.attempt": 1},
        {"penguiflow.node.name": "enrich", "penguiflow.node.attempt": 2},
    ]
    assert (spans[0].attributes or {})["error.type"] == "ValueError"
    assert (spans[2].attributes or {})["penguiflow.trace_id"] == "ab" * 16


def test_pause_resume_and_summary_spans(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider, capture_content=True)])
    run = emitter.open("run", "ReactPlanner", parent=None)
    summary = emitter.open("summary", "summary", parent=run)
    emitter.close(summary)
    pause = emitter.open(
        "pause", "pause", parent=run, attributes={"reason": "approval"}, content={"payload": 1}
    )
    emitter.close(pause, "paused")
    resume = emitter.open("resume", "resume", parent=run, content={"user_input": "yes"})
    emitter.close(resume)
    emitter.close(run, "paused")
    by_name = memory.by_name()
    assert set(by_name) == {
        "penguiflow.summary",
        "penguiflow.pause",
        "penguiflow.resume",
        "invoke_agent ReactPlanner",
    }
    assert by_name["penguiflow.pause"].attributes == {
        "penguiflow.run_id": run.run_id,
        "penguiflow.status": "paused",
        "penguiflow.reason": "approval",
        "penguiflow.pause.payload": "1",
    }
    assert (by_name["penguiflow.resume"].attributes or {})["penguiflow.resume.user_input"] == (
        '"yes"'
    )


def test_a_root_with_a_remote_traceparent_continues_that_trace(memory: Memory) -> None:
    remote_trace, remote_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    root = emitter.open(
        "trace",
        "flow",
        parent=None,
        attributes={"traceparent": f"00-{remote_trace}-{remote_span}-01"},
    )
    node = emitter.open("node", "work", parent=root)
    emitter.close(node)
    emitter.close(root)
    node_span, root_span = memory.spans()
    assert root_span.parent is not None
    assert (f"{root_span.context.trace_id:032x}", f"{root_span.parent.span_id:016x}") == (
        remote_trace,
        remote_span,
    )
    assert root_span.parent.is_remote
    assert node_span.context.trace_id == root_span.context.trace_id
    assert "penguiflow.traceparent" not in (root_span.attributes or {})


def test_an_invalid_remote_traceparent_starts_a_new_trace(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    root = emitter.open("run", "agent", parent=None, attributes={"traceparent": "00-zz-11-01"})
    emitter.close(root)
    (span,) = memory.spans()
    assert span.parent is None


def test_open_spans_are_the_current_context_of_their_task(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    assert not trace.get_current_span().get_span_context().is_valid
    flow_root = emitter.open("trace", "flow", parent=None)
    assert not trace.get_current_span().get_span_context().is_valid  # a trace root: never
    node = emitter.open("node", "call_agent", parent=flow_root)
    current = trace.get_current_span().get_span_context()
    headers: dict[str, str] = {}
    inject(headers)  # what an HTTP call made inside the node sends
    flags = int(current.trace_flags)
    assert headers == {
        "traceparent": f"00-{current.trace_id:032x}-{current.span_id:016x}-{flags:02x}"
    }
    emitter.close(node)
    assert not trace.get_current_span().get_span_context().is_valid
    emitter.close(flow_root)
    (node_span, _root) = memory.spans()
    assert node_span.context.span_id == current.span_id


async def test_parallel_branches_each_have_their_own_current_span(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    run = emitter.open("run", "ReactPlanner", parent=None)
    step = emitter.open("step", "step", parent=run)
    seen: dict[str, int] = {}

    async def branch(name: str) -> None:
        span = emitter.open("tool", name, parent=step, attributes={"tool": name})
        await asyncio.sleep(0.01)  # both branches are open at once
        seen[name] = trace.get_current_span().get_span_context().span_id
        emitter.close(span)

    await asyncio.gather(branch("a"), branch("b"))
    step_context = trace.get_current_span().get_span_context()
    emitter.close(step)
    emitter.close(run)
    by_name = memory.by_name()
    assert seen == {
        "a": by_name["execute_tool a"].context.span_id,
        "b": by_name["execute_tool b"].context.span_id,
    }
    assert step_context.span_id == by_name["penguiflow.step"].context.span_id
    assert by_name["execute_tool a"].parent.span_id == step_context.span_id  # type: ignore[union-attr]
    assert not trace.get_current_span().get_span_context().is_valid


def test_spans_ending_out_of_order_unwind_the_context_in_order(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    step = emitter.open("step", "step", parent=None)
    first = emitter.open("tool", "first", parent=step)
    second = emitter.open("tool", "second", parent=step)
    emitter.close(first)  # ends while `second` is still current
    assert trace.get_current_span().name == "execute_tool second"  # type: ignore[attr-defined]
    emitter.close(second)  # both unwind: the step is current again
    assert trace.get_current_span().name == "penguiflow.step"  # type: ignore[attr-defined]
    emitter.close(step)


async def test_a_span_ended_in_another_task_is_not_detached_there(
    memory: Memory, caplog: pytest.LogCaptureFixture
) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])

    async def opener() -> Span:
        return emitter.open("tool", "orphan", parent=None)

    span = await asyncio.create_task(opener())
    with caplog.at_level(logging.DEBUG, logger="penguiflow.tracing"):
        emitter.close(span)  # here, not in the task that attached its context
    assert [r.message for r in caplog.records] == ["otel_context_not_detached"]
    assert [s.name for s in memory.spans()] == ["execute_tool orphan"]
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_child_that_starts_after_its_parent_ended_keeps_its_parent(memory: Memory) -> None:
    emitter = SpanEmitter([OTelExporter(memory.provider)])
    run = emitter.open("run", "ReactPlanner", parent=None)
    emitter.close(run)
    late = emitter.open("summary", "summary", parent=run)
    emitter.close(late)
    by_name = memory.by_name()
    assert by_name["penguiflow.summary"].parent.span_id == (  # type: ignore[union-attr]
        by_name["invoke_agent ReactPlanner"].context.span_id
    )


def test_a_span_that_started_before_the_exporter_is_still_exported(memory: Memory) -> None:
    emitter = SpanEmitter()
    span = emitter.open("tool", "early", parent=None)
    emitter.sinks.append(OTelExporter(memory.provider))
    emitter.close(span)
    (exported,) = memory.spans()
    assert exported.name == "execute_tool early"
    assert exported.start_time == round(span.start * 1e9)
    assert not trace.get_current_span().get_span_context().is_valid


def test_without_opentelemetry_the_exporter_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'penguiflow\[otel\]'") as caught:
        OTelExporter()
    assert caught.value.extra == "otel"


def test_importing_penguiflow_does_not_load_opentelemetry() -> None:
    code = (
        "import sys, penguiflow, penguiflow.tracing.otel, penguiflow.tracing.propagation, "
        "penguiflow.bus, penguiflow.bus.worker, penguiflow.transports.a2a_http, "
        "penguiflow_a2a.server; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_spans_reach_an_otlp_http_receiver() -> None:
    with otlp_receiver() as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "planner-svc"}))
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url, timeout=5))
        provider.add_span_processor(processor)
        try:
            run = planner_run(SpanEmitter([OTelExporter(provider, capture_content=True)]))
            assert processor.force_flush(10_000)
        finally:
            provider.shutdown()
        spans = receiver.wait_for(8)
    assert set(receiver.paths) == {"/v1/traces"}
    assert sorted(span.name for span in spans) == sorted(
        [
            "invoke_agent ReactPlanner",
            "penguiflow.step",
            "penguiflow.step",
            "chat gpt-4o-mini",
            "execute_tool add",
            "execute_tool search",
            "execute_tool lookup",
            "execute_tool merge",
        ]
    )
    assert {span.service for span in spans} == {"planner-svc"}
    assert len({span.trace_id for span in spans}) == 1
    by_name = {span.name: span for span in spans}
    root = by_name["invoke_agent ReactPlanner"]
    assert (root.parent_span_id, root.attributes["penguiflow.run_id"]) == ("", run.run_id)
    chat = by_name["chat gpt-4o-mini"]
    assert {k: v for k, v in chat.attributes.items() if k.startswith("gen_ai.usage")} == {
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    }
    assert QUERY in chat.attributes["gen_ai.input.messages"]
    failed = by_name["execute_tool lookup"]
    assert (failed.status_code, failed.status_message, failed.attributes["error.type"]) == (
        2,  # STATUS_CODE_ERROR
        "lookup timed out",
        "TimeoutError",
    )
