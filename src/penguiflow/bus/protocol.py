"""The message-bus protocol the runtime publishes every edge delivery to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["BusEnvelope", "MessageBus"]


@dataclass(slots=True)
class BusEnvelope:
    """One message crossing one edge (`edge` reads `"source->target"`)."""

    edge: str
    source: str | None
    target: str | None
    trace_id: str | None
    payload: Any
    headers: Mapping[str, Any] | None
    meta: Mapping[str, Any] | None


class MessageBus(Protocol):
    """Receives an envelope for every message the runtime enqueues."""

    async def publish(self, envelope: BusEnvelope) -> None:
        """Publish one envelope."""
