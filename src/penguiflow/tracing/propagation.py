"""Trace context across processes: W3C `traceparent` headers in and out.

Pure Python; OpenTelemetry is used only when it is already loaded and has a span
running. What crosses a process boundary is a `traceparent` (and `tracestate`):

* `inject(carrier)` writes the current context into outgoing headers or meta: the
  current OpenTelemetry span if there is a valid one, else penguiflow's own
  `current_span` (the run id as the trace id, the span id's first 16 hex characters
  as the parent id), else nothing. `A2AHttpTransport` calls it for every request
  and the buses for every envelope they publish.
* `extract(carrier)` reads a valid `traceparent` back (any key case), else `None`.
* `adopt(trace_id, traceparent)` / `take(trace_id)`: a small bounded registry that
  hands the context a request or envelope arrived with to the flow trace it starts
  (the A2A server and the bus worker adopt; the flow's tracer takes when it opens
  the trace's root span, whose OpenTelemetry parent becomes that remote context).
* `incoming_traceparent`: the `traceparent` of the request this task serves (the
  A2A app sets it per HTTP request).

Usage::

    headers: dict[str, str] = {}
    inject(headers)              # {"traceparent": "00-<trace>-<span>-01"} or nothing
    parent = extract(request_headers)
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from ..spans import hex_id
from .emitter import current_span

__all__ = ["MAX_ADOPTED", "adopt", "extract", "incoming_traceparent", "inject", "take"]

logger = logging.getLogger("penguiflow.tracing")

#: How many adopted contexts the registry keeps (the oldest is dropped first).
MAX_ADOPTED = 10_000

#: The `traceparent` of the request being served in this task, if it carried one.
incoming_traceparent: ContextVar[str | None] = ContextVar(
    "penguiflow_incoming_traceparent", default=None
)

# version-traceid-parentid-flags; a later version may append fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

_adopted: dict[str, str] = {}
_current_otel_span: Callable[[], Any] | None = None  # opentelemetry's, once it is loaded
_lock = threading.Lock()


def inject(carrier: MutableMapping[str, str]) -> None:
    """Add `traceparent` (and `tracestate`, if any) for the current context to `carrier`.

    The current OpenTelemetry span wins when OpenTelemetry is loaded and the span
    is valid; otherwise penguiflow's `current_span`; with neither, `carrier` is left
    as it is.
    """
    if "opentelemetry" in sys.modules and _inject_otel(carrier):
        return
    span = current_span.get()
    if span is None:
        return
    trace_id, parent_id = hex_id(span.run_id, 32), hex_id(span.span_id, 16)
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        logger.debug("traceparent_not_injected", extra={"run_id": span.run_id})
        return
    carrier["traceparent"] = f"00-{trace_id}-{parent_id}-01"


def extract(carrier: Mapping[str, object]) -> str | None:
    """The valid `traceparent` in `carrier` (its key in any case), else `None`.

    Invalid values are ignored (logged at debug level).
    """
    for key, value in carrier.items():
        if isinstance(key, str) and key.lower() == "traceparent":
            return _valid(value)
    return None


def adopt(trace_id: str, traceparent: str | None) -> None:
    """Remember `traceparent` as the remote parent of the flow trace `trace_id`.

    `None` (or an invalid value) forgets what was adopted for `trace_id` before.
    The registry keeps the latest `MAX_ADOPTED` entries; `take` removes one.
    """
    value = None if traceparent is None else _valid(traceparent)
    with _lock:
        _adopted.pop(trace_id, None)
        if value is None:
            return
        _adopted[trace_id] = value
        while len(_adopted) > MAX_ADOPTED:
            del _adopted[next(iter(_adopted))]


def take(trace_id: str) -> str | None:
    """The `traceparent` adopted for `trace_id` (removing it), or `None`."""
    with _lock:
        return _adopted.pop(trace_id, None)


def _valid(value: object) -> str | None:
    if not isinstance(value, str):
        logger.debug("traceparent_ignored", extra={"traceparent": repr(value)[:100]})
        return None
    text = value.strip()
    match = _TRACEPARENT.fullmatch(text)
    if (
        match is None
        or match.group(1) == "ff"
        or (match.group(1) == "00" and match.group(5) is not None)
        or match.group(2) == _ZERO_TRACE
        or match.group(3) == _ZERO_SPAN
    ):
        logger.debug("traceparent_ignored", extra={"traceparent": text[:100]})
        return None
    return text


def _inject_otel(carrier: MutableMapping[str, str]) -> bool:
    global _current_otel_span
    if _current_otel_span is None:
        try:
            from opentelemetry.trace import get_current_span
        except ImportError:  # a partial install: fall back to our own span
            return False
        _current_otel_span = get_current_span
    context = _current_otel_span().get_span_context()
    if not context.is_valid:
        return False
    flags = int(context.trace_flags)
    carrier["traceparent"] = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    state = context.trace_state.to_header() if context.trace_state else ""
    if state:
        carrier["tracestate"] = state
    return True
