"""Opening and closing spans, and the sinks that see them.

A `SpanSink` is told when a span starts and when it ends (`Recorder` writes them to
a store, `OTelExporter` turns them into OpenTelemetry spans, the CLI draws them).
A `SpanEmitter` holds a list of sinks; the planner has one (`planner.hooks.span`)
and so does each flow's `FlowTracer`. With no sink attached, opening a span costs
one truth test and nothing is built.

The span that is running in the current task is `current_span` (a context
variable): a planner run started inside a tool or a flow node becomes a child of
that span, in the same run, so nested work reads as one tree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextvars import ContextVar, Token
from typing import Any, Protocol, runtime_checkable

from ..spans import Span, new_id

__all__ = ["SpanEmitter", "SpanSink", "current_span", "end_span"]

logger = logging.getLogger("penguiflow.tracing")

#: The span running in this task, if any (set while a run, step or tool is open).
current_span: ContextVar[Span | None] = ContextVar("penguiflow_current_span", default=None)


@runtime_checkable
class SpanSink(Protocol):
    """Sees spans start and end. Called inline: it must be quick and must not block.

    The same `Span` object is passed to both calls; between them its fields change
    (end, status, attributes). A sink that raises is logged and skipped.
    """

    def span_started(self, span: Span) -> None:
        """`span` has just started (its `end` is `None`)."""

    def span_ended(self, span: Span) -> None:
        """`span` has just ended (its `end` and `status` are set)."""


class SpanEmitter:
    """Opens and closes spans for a list of sinks (`sinks`, live: append to attach)."""

    __slots__ = ("sinks",)

    def __init__(self, sinks: list[SpanSink] | None = None) -> None:
        self.sinks: list[SpanSink] = sinks if sinks is not None else []

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def open(
        self,
        kind: str,
        name: str,
        *,
        parent: Span | None,
        run_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        content: dict[str, Any] | None = None,
        attempt: int = 1,
        span_id: str | None = None,
        start: float | None = None,
    ) -> Span:
        """Start a span (a child of `parent`, or a root of `run_id`) and tell the sinks."""
        span = Span(
            run_id=parent.run_id if parent is not None else (run_id or new_id()),
            span_id=span_id or new_id(),
            parent_id=parent.span_id if parent is not None else None,
            kind=kind,
            name=name,
            start=time.time() if start is None else start,
            attempt=attempt,
            attributes=attributes if attributes is not None else {},
            content=content if content is not None else {},
        )
        self.started(span)
        return span

    def started(self, span: Span) -> None:
        """Tell the sinks that `span` (built elsewhere, or reopened) has started."""
        _notify(self.sinks, "span_started", span)

    def close(
        self,
        span: Span,
        status: str = "ok",
        *,
        error: BaseException | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        end: float | None = None,
    ) -> None:
        """End `span` with `status` (and the error, if any) and tell the sinks."""
        end_span(span, status, error=error, error_type=error_type, error_message=error_message)
        if end is not None:
            span.end = end
        _notify(self.sinks, "span_ended", span)

    @staticmethod
    def enter(span: Span) -> Token[Span | None]:
        """Make `span` the current span of this task; `exit` restores the previous one."""
        return current_span.set(span)

    @staticmethod
    def exit(token: Token[Span | None]) -> None:
        """Undo `enter`."""
        current_span.reset(token)


def end_span(
    span: Span,
    status: str = "ok",
    *,
    error: BaseException | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
) -> None:
    """Set `span`'s end time, status and error fields (no sink is told)."""
    span.end = time.time()
    span.status = status
    if error is not None:
        span.error_type = type(error).__name__
        span.error_message = str(error)
    if error_type is not None:
        span.error_type = error_type
    if error_message is not None:
        span.error_message = error_message


def _notify(sinks: Iterable[SpanSink], method: str, span: Span) -> None:
    for sink in list(sinks):
        try:
            getattr(sink, method)(span)
        except Exception:
            logger.exception(
                "span_sink_error",
                extra={"sink": type(sink).__name__, "span_kind": span.kind, "run_id": span.run_id},
            )
