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
    "StoredTask",
    "TaskStore",
    "TraceListStore",
    "TraceSummary",
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


@dataclass(slots=True)
class StoredTask:
    """The shared record of one A2A task, so that every replica of a server sees it.

    `replica` names the server process running the task (cancel requests are queued
    for it); `owner` is the principal that may see it (`None`: anyone without one);
    `data` is the server's own JSON view of the task (its status, artifacts, history).
    """

    task_id: str
    context_id: str
    owner: str | None
    replica: str
    state: str
    updated_at: float
    data: Mapping[str, Any]


@runtime_checkable
class TaskStore(Protocol):
    """Where an A2A server keeps its task records, shared by its replicas.

    Every store in `penguiflow.state` offers these methods.

    * `save_task` inserts or replaces the record by `task_id`; it never clears a
      pending cancel request.
    * `load_task` gives the record, or `None` for an unknown task id.
    * `request_task_cancel` queues a cancel request for the replica named in the
      record and returns `True`; `False` (nothing queued) for an unknown task.
    * `take_task_cancels` returns the task ids queued for `replica` since its last
      call, each once, and forgets them.
    * `delete_task` forgets a record and any request queued for it.
    """

    async def save_task(self, task: StoredTask) -> None:
        """Insert or replace the record of `task.task_id`."""

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The record, or `None`."""
        ...

    async def request_task_cancel(self, task_id: str) -> bool:
        """Queue a cancel request for the task's replica; `False` for an unknown task."""
        ...

    async def take_task_cancels(self, replica: str) -> Sequence[str]:
        """The task ids whose cancellation was requested for `replica`, once each."""
        ...

    async def delete_task(self, task_id: str) -> None:
        """Forget the record (and a queued cancel request)."""


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One stored trace, as `list_traces` gives it.

    `event_count` is the number of events its history holds; `last_ts` is the latest
    `ts` among them (`0.0` when no stored event of the trace has a readable time,
    which only rows written around the store can cause).
    """

    trace_id: str
    event_count: int
    last_ts: float


@runtime_checkable
class TraceListStore(Protocol):
    """A store that can list the traces it holds (`penguiflow-admin traces` reads it).

    Every store in `penguiflow.state` offers it. `list_traces` gives the newest traces
    first, by their latest event time (ties by trace id, descending); events saved
    without a trace id are not listed. `offset` and `limit` page the list
    (`InvalidArgumentError` for negative values; `limit=None` lists every trace).
    A deleted trace (`delete_trace`) leaves the list.
    """

    async def list_traces(
        self, *, offset: int = 0, limit: int | None = 50
    ) -> Sequence[TraceSummary]:
        """Summaries of the stored traces, newest first."""
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
