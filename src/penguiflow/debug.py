"""Helpers for inspecting flow events."""

from __future__ import annotations

from typing import Any

from .metrics import FlowEvent

__all__ = ["format_flow_event"]


def format_flow_event(event: FlowEvent) -> dict[str, Any]:
    """Flatten an event for structured logs, spreading any `flow_error` into `flow_error_*`."""
    payload = event.to_payload()
    error = event.error_payload
    if error is not None:
        payload["flow_error"] = dict(error)
        for key, value in error.items():
            payload[f"flow_error_{key}"] = value
    return payload
