"""The state-store protocol the runtime writes events and remote bindings to."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..metrics import FlowEvent
    from ..spans import RunSummary, Span

__all__ = [
    "StateStore",
    "StoredEvent",
    "RemoteBinding",
    "PlannerStateStore",
    "SpanStore",
    "timeout_option",
]


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


@runtime_checkable
class SpanStore(Protocol):
    """Where recorded runs are kept: their spans, and a list of runs to browse.

    Every store in `penguiflow.state` offers these methods (the recorder writes
    through them; `penguiflow trace` and the viewer read through them).

    * `save_spans` upserts by `(run_id, span_id)`: a span is saved when it starts
      and again when it ends, and a run's root again when the run resumes. A root
      span (`parent_id is None`) also updates the run's entry in the run list.
    * `list_runs` gives the newest runs first (by root `start`), filtered by exact
      `status` and `kind`, and by `text`: a case-insensitive substring of the run's
      id, name, status, error message, query, answer and finish reason. `offset`
      and `limit` page the list (`InvalidArgumentError` for negative values).
    * `load_run` gives a run's spans ordered by `start` (an empty list for an
      unknown run id).
    """

    async def save_spans(self, spans: Sequence[Span]) -> None:
        """Insert or replace each span; root spans also update the run list."""

    async def list_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int | None = 50,
    ) -> Sequence[RunSummary]:
        """Summaries of the stored runs, newest first."""
        ...

    async def load_run(self, run_id: str) -> Sequence[Span]:
        """Every span of the run, by start time; `[]` for an unknown run."""
        ...


def timeout_option(value: object) -> float | None:
    """A store's `timeout_s`, checked: a positive number of seconds, or `None` for no
    limit on a call. A store may name its limit so; callers such as the planner then
    bound their calls to it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidArgumentError(
            f"timeout_s must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)
