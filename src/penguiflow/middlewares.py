"""Middleware protocol and the logging middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .metrics import FlowEvent

__all__ = ["Middleware", "FlowEvent", "log_flow_events", "LatencyCallback"]

LatencyCallback = Callable[[str, float, FlowEvent], None]

_LOGGED = ("node_start", "node_success", "node_error")


class Middleware(Protocol):
    """An async callable receiving every `FlowEvent`; return values are ignored."""

    async def __call__(self, event: FlowEvent) -> None: ...


def log_flow_events(
    logger: logging.Logger | None = None,
    *,
    start_level: int = logging.INFO,
    success_level: int = logging.INFO,
    error_level: int = logging.ERROR,
    latency_callback: LatencyCallback | None = None,
) -> Middleware:
    """Log `node_start`, `node_success` and `node_error` events with their payload.

    `latency_callback(event_type, latency_ms, event)` is called for successes and
    errors that carry a latency; its exceptions are logged, never raised.
    """
    log = logger or logging.getLogger("penguiflow.flow")
    levels = {"node_start": start_level, "node_success": success_level, "node_error": error_level}

    async def _middleware(event: FlowEvent) -> None:
        kind = event.event_type
        if kind not in levels:
            return
        payload = event.to_payload()
        if kind == "node_error" and event.error_payload is not None:
            payload = dict(payload)
            payload["error_payload"] = dict(event.error_payload)
        log.log(levels[kind], kind, extra=payload)
        if latency_callback is None or kind == "node_start" or event.latency_ms is None:
            return
        try:
            latency_callback(kind, float(event.latency_ms), event)
        except Exception:
            log.exception(
                "log_flow_events_latency_callback_error",
                extra={
                    "event": "log_flow_events_latency_callback_error",
                    "node_name": event.node_name,
                    "node_id": event.node_id,
                    "trace_id": event.trace_id,
                },
            )

    return _middleware
