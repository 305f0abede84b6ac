"""The state-store protocol the runtime writes events and remote bindings to."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..metrics import FlowEvent

__all__ = ["StateStore", "StoredEvent", "RemoteBinding", "PlannerStateStore"]


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


@runtime_checkable
class PlannerStateStore(Protocol):
    """Where a paused `ReactPlanner` keeps its state until `resume(token)`.

    A store passed as `ReactPlanner(state_store=...)` may offer these methods; each may
    be sync or async (the planner awaits what they return when it is awaitable).
    Every store in `penguiflow.state` offers all three. A store missing some is still
    accepted: without `save_planner_state` pauses stay in memory only, without
    `load_planner_state` only in-memory pauses resume, and without
    `discard_planner_state` a token resumed from memory is not dropped from the store.

    Usage::

        isinstance(store, PlannerStateStore)  # all three methods present
    """

    def save_planner_state(self, token: str, payload: dict[str, Any]) -> Awaitable[None] | None:
        """Keep `payload` (JSON data) under `token`; a re-save replaces it."""

    def load_planner_state(
        self, token: str
    ) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None:
        """The payload saved under `token`, or `None` (or a `KeyError`) when there is none."""

    def discard_planner_state(self, token: str) -> object:
        """Drop the payload saved under `token`, if any (the result is ignored)."""
