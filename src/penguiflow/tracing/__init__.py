"""Recorded traces: every planner run and flow trace as a tree of spans.

* `Span`, `RunSummary`: what a recorded run is made of (`spans`).
* `SpanSink`, `SpanEmitter`, `current_span`: how spans are observed (`emitter`);
  a planner's sinks are `planner.hooks.span`, a flow's come through `FlowTracer`.
* `Recorder`: a sink that writes spans to a state store, batched behind a bounded
  queue; it never slows or fails the run it records.
* `ContentPolicy`: what captured content is kept (redacted, capped).
* `OTelExporter`: OpenTelemetry spans (GenAI conventions; extra `otel`).

Usage::

    store = SQLiteStateStore(".penguiflow/state.db")
    async with Recorder(store) as recorder:
        recorder.attach(planner)
        result = await planner.run("...")

Everything except the span model loads on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..spans import RunSummary, Span
from .emitter import SpanEmitter, SpanSink, current_span

if TYPE_CHECKING:
    from .content import ContentPolicy as ContentPolicy
    from .flow import FlowTracer as FlowTracer
    from .otel import OTelExporter as OTelExporter
    from .recorder import Recorder as Recorder

__all__ = [
    "ContentPolicy",
    "FlowTracer",
    "OTelExporter",
    "Recorder",
    "RunSummary",
    "Span",
    "SpanEmitter",
    "SpanSink",
    "current_span",
]

_LAZY = {
    "ContentPolicy": "content",
    "FlowTracer": "flow",
    "OTelExporter": "otel",
    "Recorder": "recorder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
