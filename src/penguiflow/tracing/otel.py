"""`OTelExporter`: recorded spans as OpenTelemetry spans, in the GenAI conventions.

A `SpanSink`: attach it where spans are emitted (`planner.hooks.span`, a flow's
tracer) and every span becomes an OpenTelemetry span as it starts and ends, on the
tracer provider you pass (the global one by default):

* planner run → `invoke_agent {name}`, an LLM call → `chat {model}` (tokens as
  `gen_ai.usage.*`, cost as `penguiflow.cost_usd`), a tool or join → `execute_tool
  {tool}`, a flow trace → `flow {name}`, a node attempt → `node {name}`, and a step,
  pause, resume or summary → `penguiflow.{kind}`;
* an error sets status ERROR and `error.type`;
* a root span whose `attributes["traceparent"]` names a context from another
  process (see `penguiflow.tracing.propagation`) is its child, so a run that spans
  processes is one trace.

While a run, step, tool, join, LLM or node span is open, its OpenTelemetry span is
the current one of the task that opened it: an instrumented HTTP client, or
`A2AHttpTransport`, called inside a tool or node carries it on.

Content (LLM messages and replies, tool arguments and results, the run's query and
answer, a step's thought) is exported only when `capture_content` is on; by
default it follows `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (off unless
`true`), as the GenAI conventions ask of instrumentations.

Usage::

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    planner.hooks.span.append(OTelExporter(provider))
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from ..spans import Span

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span as OTelSpan
    from opentelemetry.trace import SpanContext, Tracer, TracerProvider

__all__ = ["CAPTURE_CONTENT_ENV", "OTelExporter"]

logger = logging.getLogger("penguiflow.tracing")

#: The environment variable that turns content capture on (`true`) or off (`false`).
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Kinds whose span starts and ends in one task: their context becomes current there.
_ATTACHED = frozenset({"run", "step", "tool", "join", "llm", "node"})
# Attributes that are content (exported only with capture on), or mapped by hand.
_CONTENT_ATTRIBUTES = frozenset({"query", "answer", "thought"})
_MAPPED = frozenset(
    {
        "traceparent",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "model",
        "tool",
        "call_id",
        "node",
        "node_id",
    }
)
_SCALARS = (str, bool, int, float)
_MAX_ENDED = 10_000


@dataclass(slots=True)
class _Open:
    span: OTelSpan
    token: Token[Context] | None  # from `context.attach`, for kinds in `_ATTACHED`
    owner: tuple[int, object]  # (thread, task) that attached it
    attributes: dict[str, Any]  # as set at the start (the end sets only what changed)


class OTelExporter:
    """A `SpanSink` that exports spans to OpenTelemetry (see the module docstring).

    `tracer_provider`: where the spans go (default: the global provider).
    `capture_content`: export captured content; `None` reads
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (default off).
    Raises `MissingExtraError` without OpenTelemetry (`pip install 'penguiflow[otel]'`).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | None = None,
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise MissingExtraError(
                "OTelExporter needs OpenTelemetry: pip install 'penguiflow[otel]'", extra="otel"
            ) from exc
        from importlib.metadata import version  # not `penguiflow.__version__`: no import up

        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer: Tracer = provider.get_tracer("penguiflow", version("penguiflow"))
        self.capture_content = _capture_from_env() if capture_content is None else capture_content
        self._open: dict[str, _Open] = {}
        self._ended: dict[int, _Open] = {}  # ended, context still attached (by id of span)
        self._recent: dict[str, SpanContext] = {}  # ended spans, for children that start late
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OTelExporter(capture_content={self.capture_content}, open={len(self._open)})"

    def span_started(self, span: Span) -> None:
        """Start the OpenTelemetry span of `span` (current in this task for most kinds)."""
        self._start(span, attach=span.kind in _ATTACHED)

    def _start(self, span: Span, *, attach: bool) -> None:
        context, trace, _, _ = _api()

        with self._lock:
            if span.span_id in self._open:  # told twice: the first one stands
                return
            parent: OTelSpan | SpanContext | None = None
            if span.parent_id is not None:
                opened = self._open.get(span.parent_id)
                parent = opened.span if opened else self._recent.get(span.parent_id)
        attributes = self._attributes(span)
        otel_span = self._tracer.start_span(
            _name(span),
            context=self._parent_context(span, parent),
            kind=trace.SpanKind.CLIENT if span.kind == "llm" else trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_nanos(span.start),
        )
        token = None
        if attach:
            token = context.attach(trace.set_span_in_context(otel_span))
        with self._lock:
            self._open[span.span_id] = _Open(otel_span, token, _owner(), attributes)

    def span_ended(self, span: Span) -> None:
        """End the OpenTelemetry span of `span`, with its final attributes and status."""
        _, _, Status, StatusCode = _api()

        with self._lock:
            entry = self._open.pop(span.span_id, None)
        if entry is None:  # started before this exporter was attached
            self._start(span, attach=False)
            with self._lock:
                entry = self._open.pop(span.span_id, None)
            if entry is None:
                return
        otel_span = entry.span
        started = entry.attributes
        changed = {
            key: value
            for key, value in self._attributes(span).items()
            if key not in started or started[key] != value
        }
        if changed:
            otel_span.set_attributes(changed)
        if span.kind == "llm":  # the model may be known only from the reply
            otel_span.update_name(_name(span))
        if span.status == "error":
            otel_span.set_attribute("error.type", span.error_type or "_OTHER")
            otel_span.set_status(Status(StatusCode.ERROR, span.error_message or span.error_type))
        otel_span.end(end_time=_nanos(span.end) if span.end is not None else None)
        with self._lock:
            self._recent[span.span_id] = otel_span.get_span_context()
            while len(self._recent) > _MAX_ENDED:
                del self._recent[next(iter(self._recent))]
        if entry.token is not None:
            self._release(entry, span)

    def _release(self, entry: _Open, span: Span) -> None:
        """Detach `entry`'s context, once it is the current one of the task that owns it.

        Spans usually end innermost first, so the ended span is current and is
        detached at once. One that ends while a span it enclosed is still current
        waits until that one ends (then both are detached, in order); one that ends
        in another task waits for its own task to end something else. A detach that
        fails anyway is logged at debug level.
        """
        context, trace, _, _ = _api()

        owner = _owner()
        if entry.owner != owner and _finished(entry.owner):
            logger.debug(
                "otel_context_not_detached",
                extra={"span_kind": span.kind, "run_id": span.run_id, "reason": "task ended"},
            )
            return
        with self._lock:
            self._ended[id(entry.span)] = entry
            while len(self._ended) > _MAX_ENDED:  # whose tasks never unwound them
                del self._ended[next(iter(self._ended))]
        while True:
            with self._lock:
                current = self._ended.get(id(trace.get_current_span()))
                if current is None or current.owner != owner or current.token is None:
                    return
                del self._ended[id(current.span)]
            try:
                context.detach(current.token)
            except Exception:
                logger.debug("otel_context_detach_failed", exc_info=True)
                return

    # -- mapping ---------------------------------------------------------------------

    def _parent_context(self, span: Span, parent: OTelSpan | SpanContext | None) -> Context | None:
        from opentelemetry import trace

        if isinstance(parent, trace.SpanContext):  # the parent has ended already
            return trace.set_span_in_context(trace.NonRecordingSpan(parent))
        if parent is not None:
            return trace.set_span_in_context(parent)
        traceparent = span.attributes.get("traceparent") if span.is_root else None
        if isinstance(traceparent, str):
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            from .propagation import extract

            valid = extract({"traceparent": traceparent})
            if valid is not None:
                return TraceContextTextMapPropagator().extract({"traceparent": valid})
        return None  # the current context: a run inside the caller's span joins it

    def _attributes(self, span: Span) -> dict[str, Any]:
        attributes: dict[str, Any] = {"penguiflow.run_id": span.run_id}
        if span.status != "running":
            attributes["penguiflow.status"] = span.status
        for key, value in span.attributes.items():
            if key in _MAPPED or key in _CONTENT_ATTRIBUTES or not isinstance(value, _SCALARS):
                continue
            attributes[f"penguiflow.{key}"] = value
        attributes.update(_kind_attributes(span))
        if self.capture_content:
            attributes.update(_content_attributes(span))
        return attributes


@cache
def _api() -> tuple[Any, Any, Any, Any]:
    """OpenTelemetry's `context` and `trace` modules, `Status` and `StatusCode`, imported
    once (an import statement per span costs more than the rest of some spans)."""
    from opentelemetry import context, trace
    from opentelemetry.trace import Status, StatusCode

    return context, trace, Status, StatusCode


def _kind_attributes(span: Span) -> dict[str, Any]:
    """The GenAI (and penguiflow) attributes of `span`'s kind."""
    facts = span.attributes
    kind = span.kind
    attributes: dict[str, Any] = {}
    if kind == "run":
        attributes["gen_ai.operation.name"] = "invoke_agent"
        attributes["gen_ai.agent.name"] = span.name
    elif kind == "llm":
        model = _model(span)
        attributes["gen_ai.operation.name"] = "chat"
        attributes["gen_ai.request.model"] = model
        attributes["gen_ai.response.model"] = facts.get("response_model") or model
        attributes["penguiflow.attempt"] = span.attempt
    elif kind in ("tool", "join"):
        attributes["gen_ai.operation.name"] = "execute_tool"
        attributes["gen_ai.tool.name"] = _tool(span)
        attributes["gen_ai.tool.type"] = "function"
        call_id = facts.get("call_id")
        if isinstance(call_id, str | int):
            attributes["gen_ai.tool.call.id"] = str(call_id)
    elif kind == "node":
        attributes["penguiflow.node.name"] = span.name
        attributes["penguiflow.node.attempt"] = span.attempt
        node_id = facts.get("node_id")
        if isinstance(node_id, str):
            attributes["penguiflow.node.id"] = node_id
    elif kind == "trace":
        attributes["penguiflow.trace_id"] = span.run_id
    if kind in ("run", "llm"):
        for ours, theirs in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            value = facts.get(ours)
            if isinstance(value, int) and not isinstance(value, bool):
                attributes[theirs] = value
    cost = facts.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        attributes["penguiflow.cost_usd"] = float(cost)
    return attributes


def _content_attributes(span: Span) -> dict[str, Any]:
    """Captured content in the GenAI conventions' attributes (JSON text)."""
    content, facts = span.content, span.attributes
    attributes: dict[str, Any] = {}
    if span.kind == "llm":
        messages = content.get("messages")
        if isinstance(messages, list):
            attributes["gen_ai.input.messages"] = _json([_message(m) for m in messages])
        reply = content.get("reply")
        if reply is not None:
            attributes["gen_ai.output.messages"] = _json([_output(reply)])
    elif span.kind == "run":
        query = facts.get("query")
        if query is not None:
            attributes["gen_ai.input.messages"] = _json(
                [_message({"role": "user", "content": query})]
            )
        answer = facts.get("answer")
        if answer is not None:
            attributes["gen_ai.output.messages"] = _json([_output(answer)])
    elif span.kind in ("tool", "join"):
        if "args" in content:
            attributes["gen_ai.tool.call.arguments"] = _json(content["args"])
        if "result" in content:
            attributes["gen_ai.tool.call.result"] = _json(content["result"])
    elif span.kind == "step":
        thought = facts.get("thought")
        if thought is not None:
            attributes["penguiflow.thought"] = str(thought)
    for key in ("payload", "user_input"):
        if span.kind in ("pause", "resume") and key in content:
            attributes[f"penguiflow.{span.kind}.{key}"] = _json(content[key])
    return attributes


def _message(message: Any) -> dict[str, Any]:
    """One input message as the GenAI conventions draw it: a role and text parts."""
    if not isinstance(message, Mapping):
        return {"role": "user", "parts": [{"type": "text", "content": _text(message)}]}
    role = str(message.get("role") or "user")
    return {"role": role, "parts": [{"type": "text", "content": _text(message.get("content"))}]}


def _output(reply: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "parts": [{"type": "text", "content": _text(reply)}],
        "finish_reason": "stop",
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _model(span: Span) -> str:
    model = span.attributes.get("model")
    return str(model) if model else span.name


def _tool(span: Span) -> str:
    tool = span.attributes.get("tool")
    return str(tool) if tool else span.name


def _name(span: Span) -> str:
    kind = span.kind
    if kind == "run":
        return f"invoke_agent {span.name}"
    if kind == "llm":
        return f"chat {_model(span)}"
    if kind in ("tool", "join"):
        return f"execute_tool {_tool(span)}"
    if kind == "node":
        return f"node {span.name}"
    if kind == "trace":
        return f"flow {span.name}"
    return f"penguiflow.{kind}"


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _owner() -> tuple[int, object]:
    """The thread and asyncio task running now (a context can be detached only there)."""
    try:
        task: object = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        task = None
    return threading.get_ident(), task


def _finished(owner: tuple[int, object]) -> bool:
    task = owner[1]
    return isinstance(task, asyncio.Task) and task.done()


def _capture_from_env() -> bool:
    raw = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    logger.warning(
        "otel_capture_content_env_invalid",
        extra={"variable": CAPTURE_CONTENT_ENV, "value": raw, "using": False},
    )
    return False
