"""The state-store protocol the runtime writes events and remote bindings to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..metrics import FlowEvent

__all__ = ["StateStore", "StoredEvent", "RemoteBinding"]


@dataclass(slots=True)
class StoredEvent:
    """A persisted `FlowEvent`."""

    trace_id: str | None
    ts: float
    kind: str
    node_name: str | None
    node_id: str | None
    payload: Mapping[str, Any]

    @classmethod
    def from_flow_event(cls, event: FlowEvent) -> StoredEvent:
        """Snapshot `event` for storage."""
        return cls(
            trace_id=event.trace_id,
            ts=event.ts,
            kind=event.event_type,
            node_name=event.node_name,
            node_id=event.node_id,
            payload=event.to_payload(),
        )


@dataclass(slots=True)
class RemoteBinding:
    """Links a local trace to a task running on a remote agent."""

    trace_id: str
    context_id: str | None
    task_id: str
    agent_url: str


class StateStore(Protocol):
    """Durable storage for trace history and remote bindings.

    Implementations should tolerate duplicate events and return history in order.
    """

    async def save_event(self, event: StoredEvent) -> None:
        """Persist one event."""

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """Return the events of a trace in the order they were saved."""
        ...

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Persist a remote binding."""
