"""`InMemoryStateStore`: the reference store, kept in process memory.

It follows exactly the rules of the durable stores (JSON only, refused bad data,
single-use hashed resume tokens, expiry), so tests written against it hold for them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._codec import (
    RunRecord,
    check_id,
    check_name,
    check_page,
    check_run_filters,
    decode_binding,
    decode_event,
    decode_span,
    decode_state,
    decode_summary,
    decode_task,
    encode,
    encode_binding,
    encode_event,
    encode_spans,
    encode_task,
    event_key,
    event_ts,
    require_mapping,
    token_digest,
)
from .errors import ResumeTokenError
from .protocol import RemoteBinding, StoredEvent, StoredTask, TraceSummary

if TYPE_CHECKING:
    from ..spans import RunSummary, Span

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore:
    """Trace history (and its list of traces), remote bindings, planner pauses, recorded
    runs and A2A tasks in memory.

    Everything is lost on exit.
    """

    def __init__(
        self, *, ttl_s: float | None = None, time_source: Callable[[], float] = time.time
    ) -> None:
        self._ttl_s = ttl_s
        self._now = time_source
        # Nothing here can block: callers need no limit on a call (the store option
        # the other stores have).
        self.timeout_s: float | None = None
        self._events: dict[str, list[str]] = defaultdict(list)
        self._event_keys: dict[str, set[str]] = defaultdict(set)
        self._last_ts: dict[str, float] = {}  # trace -> latest event ts (named traces only)
        self._bindings: dict[str, dict[str, str]] = defaultdict(dict)
        self._states: dict[str, tuple[str, float | None]] = {}
        self._spans: dict[str, dict[str, tuple[float, str]]] = {}  # run -> span -> (start, body)
        self._runs: dict[str, RunRecord] = {}
        self._tasks: dict[str, tuple[str, str]] = {}  # task -> (replica, body)
        self._task_cancels: dict[str, str] = {}  # task -> replica it is queued for

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored)."""
        text = encode_event(event)
        key = event_key(text)
        trace = event.trace_id or ""
        if key in self._event_keys[trace]:
            return
        self._event_keys[trace].add(key)
        self._events[trace].append(text)
        if trace:
            ts = event_ts(event)
            self._last_ts[trace] = max(self._last_ts.get(trace, ts), ts)

    async def load_history(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[StoredEvent]:
        """The trace's events in the order they were saved (`offset`/`limit` page them)."""
        offset, limit = check_page(offset, limit)
        check_id(trace_id, "trace_id")
        rows = self._events.get(trace_id, [])
        end = None if limit is None else offset + limit
        return [
            decode_event(text, key=f"{trace_id}#{offset + i}")
            for i, text in enumerate(rows[offset:end])
        ]

    async def list_traces(
        self, *, offset: int = 0, limit: int | None = 50
    ) -> Sequence[TraceSummary]:
        """The stored traces, newest first by their latest event time (paged)."""
        offset, limit = check_page(offset, limit)
        order = sorted(self._last_ts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        end = None if limit is None else offset + limit
        return [
            TraceSummary(trace, len(self._events.get(trace, ())), last_ts)
            for trace, last_ts in order[offset:end]
        ]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Record (or replace) the binding of a trace to a remote task."""
        self._bindings[binding.trace_id][binding.task_id] = encode_binding(binding)

    async def load_remote_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        """The remote tasks bound to a trace."""
        check_id(trace_id, "trace_id")
        rows = self._bindings.get(trace_id, {})
        return [decode_binding(rows[task], key=f"{trace_id}/{task}") for task in sorted(rows)]

    async def delete_trace(self, trace_id: str) -> None:
        """Forget a trace's history and bindings."""
        check_id(trace_id, "trace_id")
        self._events.pop(trace_id, None)
        self._event_keys.pop(trace_id, None)
        self._last_ts.pop(trace_id, None)
        self._bindings.pop(trace_id, None)

    async def save_planner_state(
        self, token: str, payload: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        """Keep a paused planner's state under the token's digest (re-save replaces)."""
        text = encode(dict(require_mapping(payload)), what="planner state")
        expires = self._now() + self._ttl_s if self._ttl_s is not None else None
        self._states[token_digest(token, tenant)] = (text, expires)

    async def load_planner_state(self, token: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Take the state for a token, once. Raises `ResumeTokenError` otherwise."""
        digest = token_digest(token, tenant)
        entry = self._states.pop(digest, None)
        if entry is None or (entry[1] is not None and self._now() >= entry[1]):
            raise ResumeTokenError()
        return decode_state(entry[0], key=digest[:12])

    async def discard_planner_state(self, token: str, *, tenant: str | None = None) -> bool:
        """Drop a token's state; True if there was one."""
        return self._states.pop(token_digest(token, tenant), None) is not None

    async def save_spans(self, spans: Sequence[Span]) -> None:
        """Insert or replace each span; root spans also update the run list.

        The whole batch is checked first: `InvalidDataError` leaves the store unchanged.
        """
        batch = encode_spans(spans)
        for record in batch.spans:
            self._spans.setdefault(record.run_id, {})[record.span_id] = (record.start, record.body)
        for run in batch.runs:
            self._runs[run.run_id] = run

    async def list_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int | None = 50,
    ) -> Sequence[RunSummary]:
        """Summaries of the runs whose root was saved, newest first (filtered, paged)."""
        offset, limit = check_page(offset, limit)
        status, kind, needle = check_run_filters(status, kind, text)
        runs = [
            run
            for run in self._runs.values()
            if (status is None or run.status == status)
            and (kind is None or run.kind == kind)
            and (needle is None or needle in run.search)
        ]
        runs.sort(key=lambda run: (run.start, run.run_id), reverse=True)
        end = None if limit is None else offset + limit
        return [
            decode_summary(run.body, len(self._spans.get(run.run_id, {})), key=run.run_id)
            for run in runs[offset:end]
        ]

    async def load_run(self, run_id: str) -> Sequence[Span]:
        """Every span of the run, by start time (ties by span id); `[]` for an unknown run."""
        check_id(run_id, "run_id")
        rows = self._spans.get(run_id, {})
        ordered = sorted(rows.items(), key=lambda item: (item[1][0], item[0]))
        return [decode_span(body, key=f"{run_id}/{span_id}") for span_id, (_, body) in ordered]

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its spans and its entry in the run list."""
        check_id(run_id, "run_id")
        self._spans.pop(run_id, None)
        self._runs.pop(run_id, None)

    # -- A2A tasks -------------------------------------------------------------------

    async def save_task(self, task: StoredTask) -> None:
        """Insert or replace the record of `task.task_id` (a queued cancel request stays).

        `InvalidDataError` (checked before writing) leaves the store unchanged.
        """
        body = encode_task(task)
        self._tasks[task.task_id] = (task.replica, body)

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The record, or `None` for an unknown task id."""
        check_name(task_id, "task_id")
        entry = self._tasks.get(task_id)
        return None if entry is None else decode_task(entry[1], key=task_id)

    async def request_task_cancel(self, task_id: str) -> bool:
        """Queue a cancel request for the replica the record names; `False` if unknown.

        A task has at most one queued request: a repeated request before the take
        queues it once, for the replica the record names now.
        """
        check_name(task_id, "task_id")
        entry = self._tasks.get(task_id)
        if entry is None:
            return False
        self._task_cancels[task_id] = entry[0]
        return True

    async def take_task_cancels(self, replica: str) -> Sequence[str]:
        """The task ids queued for `replica` (sorted), each once; they are forgotten."""
        check_name(replica, "replica")
        taken = sorted(task for task, queued in self._task_cancels.items() if queued == replica)
        for task_id in taken:
            del self._task_cancels[task_id]
        return taken

    async def delete_task(self, task_id: str) -> None:
        """Forget the record and a cancel request queued for it."""
        check_name(task_id, "task_id")
        self._tasks.pop(task_id, None)
        self._task_cancels.pop(task_id, None)

    async def close(self) -> None:
        """Nothing to release (present for symmetry with the durable stores)."""
