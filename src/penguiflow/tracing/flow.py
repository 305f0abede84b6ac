"""`FlowTracer`: a flow's traces as spans, built from its public hooks.

Each flow trace becomes a run (`run_id` = the trace id): a `trace` root span, opened
at the trace's first node event and closed when the trace is done, with one `node`
span per attempt of each node invocation. While a node runs, its span is the
current span of the node's worker task, so a planner run inside the node (or an
HTTP call carrying trace context) hangs under it.

A root span takes its remote parent (`attributes["traceparent"]`) from
`propagation.take(trace_id)`, where the A2A server and the bus worker leave the
context a message arrived with.
"""

from __future__ import annotations

import logging
import weakref
from contextvars import Token
from typing import Any

from ..metrics import FlowEvent
from ..spans import Span
from . import propagation
from .emitter import SpanEmitter, SpanSink, current_span

__all__ = ["FlowTracer", "MAX_OPEN_TRACES"]

logger = logging.getLogger("penguiflow.tracing")

#: Traces a tracer follows at once; beyond it the oldest open trace is let go.
MAX_OPEN_TRACES = 10_000

_TRACERS: weakref.WeakKeyDictionary[Any, FlowTracer] = weakref.WeakKeyDictionary()

# Events that end a node attempt, and the status the attempt ends with.
_ENDS = {
    "node_success": "ok",
    "node_error": "error",
    "node_timeout": "error",
    "node_trace_cancelled": "cancelled",
}


class FlowTracer:
    """The spans of one flow's traces, for its `sinks` (append a `SpanSink`).

    Get the tracer of a flow with `FlowTracer.of(flow)` (one per flow); it
    subscribes to `flow.hooks` (`event`, `trace_done`, `trace_cancelled`) on
    creation and `close()` unsubscribes it. With no sink it does nothing.
    """

    def __init__(self, flow: Any, *, name: str = "flow") -> None:
        self.flow = flow
        self.name = name
        self.sinks: list[SpanSink] = []
        self.emitter = SpanEmitter(self.sinks)
        self._roots: dict[str, Span] = {}
        self._failed: set[str] = set()
        self._open: dict[tuple[str, str], tuple[Span, Token[Span | None]]] = {}
        hooks = flow.hooks
        hooks.event.append(self._on_event)
        hooks.trace_done.append(self._on_trace_done)
        hooks.trace_cancelled.append(self._on_trace_cancelled)

    @classmethod
    def of(cls, flow: Any) -> FlowTracer:
        """The tracer of `flow`, created on first use."""
        tracer = _TRACERS.get(flow)
        if tracer is None:
            tracer = cls(flow)
            _TRACERS[flow] = tracer
        return tracer

    def close(self) -> None:
        """Unsubscribe from the flow's hooks (open spans are left as they are)."""
        hooks = self.flow.hooks
        for hook_list, hook in (
            (hooks.event, self._on_event),
            (hooks.trace_done, self._on_trace_done),
            (hooks.trace_cancelled, self._on_trace_cancelled),
        ):
            if hook in hook_list:
                hook_list.remove(hook)
        _TRACERS.pop(self.flow, None)

    # -- hooks -------------------------------------------------------------------

    def _root(self, trace_id: str) -> Span:
        root = self._roots.get(trace_id)
        if root is None:
            attributes: dict[str, Any] = {"trace_id": trace_id}
            parent = propagation.take(trace_id)
            if parent is not None:
                attributes["traceparent"] = parent
            root = self.emitter.open(
                "trace", self.name, parent=None, run_id=trace_id, attributes=attributes
            )
            roots = self._roots
            roots[trace_id] = root
            if len(roots) > MAX_OPEN_TRACES:
                # A trace that never finishes (its results never fetched) must not
                # grow this table forever: the oldest is let go, still "running".
                oldest = next(iter(roots))
                del roots[oldest]
                self._failed.discard(oldest)
                logger.warning(
                    "flow_tracer_trace_abandoned trace=%s open=%d",
                    oldest,
                    MAX_OPEN_TRACES,
                    extra={"trace_id": oldest},
                )
        return root

    def _on_event(self, event: FlowEvent) -> None:
        if not self.sinks:
            return
        trace_id = event.trace_id
        if trace_id is None:
            return
        kind = event.event_type
        key = (trace_id, event.node_id or event.node_name or "")
        if kind == "node_start":
            root = self._root(trace_id)
            span = self.emitter.open(
                "node",
                event.node_name or "node",
                parent=root,
                attempt=event.attempt + 1,
                attributes={"node": event.node_name, "node_id": event.node_id},
            )
            self._open[key] = (span, current_span.set(span))
            return
        status = _ENDS.get(kind)
        if status is not None:
            entry = self._open.pop(key, None)
            if entry is None:
                return
            span, token = entry
            try:
                current_span.reset(token)
            except ValueError:  # ended in another context: nothing to restore there
                pass
            if event.latency_ms is not None:
                span.attributes["latency_ms"] = event.latency_ms
            error = event.extra.get("exception") if status == "error" else None
            self.emitter.close(
                span,
                status,
                error_type=_type_of(error) if error else None,
                error_message=str(error) if error else None,
            )
            return
        if kind == "node_failed":
            self._failed.add(trace_id)
            failed_root = self._roots.get(trace_id)
            if failed_root is not None:
                payload = event.error_payload or {}
                failed_root.error_type = _type_of(str(event.extra.get("exception") or ""))
                failed_root.error_message = str(
                    payload.get("message") or event.extra.get("exception")
                )

    def _on_trace_done(self, trace_id: str) -> None:
        root = self._roots.pop(trace_id, None)
        failed = trace_id in self._failed
        self._failed.discard(trace_id)
        if root is None or root.end is not None:
            return
        self.emitter.close(root, "error" if failed else "ok")

    def _on_trace_cancelled(self, trace_id: str) -> None:
        root = self._roots.pop(trace_id, None)
        self._failed.discard(trace_id)
        if root is not None and root.end is None:
            self.emitter.close(root, "cancelled")


def _type_of(text: str | None) -> str | None:
    """The exception class name in a `repr(exc)` text (`"ValueError('x')"` → ValueError)."""
    if not text:
        return None
    head = text.split("(", 1)[0].strip()
    return head if head.isidentifier() else None
