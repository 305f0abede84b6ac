"""Per-request task records: what a request is waiting for, and what became of it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from penguiflow.errors import InvalidArgumentError
from penguiflow.types import Message, StreamChunk

__all__ = [
    "Outcome",
    "StreamItem",
    "TERMINAL_STATES",
    "TaskRecord",
    "TaskState",
    "TaskTable",
    "DEFAULT_MAX_FINISHED_BYTES",
    "outcome_error",
]

TaskState = Literal["submitted", "working", "completed", "canceled", "failed"]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "canceled", "failed"})


@dataclass(slots=True)
class Outcome:
    """How a task ended.

    `kind` is `result` (with `output`/`meta`), `no_result` (the trace finished
    without producing anything), `failed` (`error` is the FlowError payload),
    `cancelled`, `timeout`, `shutdown` or `internal` (`error["message"]`).
    """

    kind: Literal["result", "no_result", "failed", "cancelled", "timeout", "shutdown", "internal"]
    output: Any = None
    meta: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(slots=True, eq=False)
class TaskRecord:
    """One A2A task: the flow trace serving it, its owner and its progress.

    Items routed to the trace (chunks and results) are buffered here; a waiter is
    woken when one arrives, when the trace is cancelled or when the runtime's
    bookkeeping for the trace changes.
    """

    task_id: str
    context_id: str
    trace_id: str
    owner: str | None
    message: Message
    request: dict[str, Any] | None = None  # the A2A message that created it (JSON-RPC)
    state: TaskState = "submitted"
    outcome: Outcome | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    items: deque[Any] = field(default_factory=deque)
    cancelled: bool = False
    started: bool = False  # run_task began (the message may have been emitted)
    released: bool = False
    waiter: asyncio.Future[None] | None = None
    runner: asyncio.Task[Any] | None = None
    kept_bytes: int = 0  # what a finished record holds, as JSON (set on release)

    def put(self, item: Any) -> None:
        """Buffer an item for the waiting request (ignored once released)."""
        if self.released:
            return
        self.items.append(item)
        self.wake()

    def mark_cancelled(self) -> None:
        """The trace was cancelled: wake the waiting request."""
        if not self.released:
            self.cancelled = True
            self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def new_waiter(self) -> asyncio.Future[None]:
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def finish(self, state: TaskState, outcome: Outcome) -> None:
        """Record the terminal state (first call wins)."""
        if self.state in TERMINAL_STATES:
            return
        self.state = state
        self.outcome = outcome
        self.updated_at = time.time()


DEFAULT_MAX_FINISHED_BYTES = 64 * 1024 * 1024


def _json_size(value: Any) -> int:
    if value is None:
        return 0
    try:
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):
        return len(repr(value))


class TaskTable:
    """Active tasks by task id and trace id, plus a bounded history of finished ones.

    The history is bounded by count (`max_finished`) and by the bytes its records
    hold (`max_finished_bytes`, measured as JSON); the oldest go first. A finished
    record keeps only what `tasks/get` answers: the request message that is its
    history and the outcome, not the flow message it was sent as.
    """

    def __init__(
        self, max_finished: int = 10_000, max_finished_bytes: int = DEFAULT_MAX_FINISHED_BYTES
    ) -> None:
        if max_finished < 0:
            raise InvalidArgumentError(f"max_finished must be >= 0, got {max_finished}")
        if max_finished_bytes < 0:
            raise InvalidArgumentError(f"max_finished_bytes must be >= 0, got {max_finished_bytes}")
        self.active: dict[str, TaskRecord] = {}
        self.by_trace: dict[str, TaskRecord] = {}
        self.finished: OrderedDict[str, TaskRecord] = OrderedDict()
        self._max_finished = max_finished
        self._max_finished_bytes = max_finished_bytes
        self.finished_bytes = 0

    def lookup(self, task_id: str, owner: str | None) -> TaskRecord | None:
        """The task if it exists and belongs to `owner` (otherwise `None`, either way)."""
        record = self.active.get(task_id) or self.finished.get(task_id)
        if record is None or record.owner != owner:
            return None
        return record

    def release(self, record: TaskRecord) -> None:
        """Forget an active task; keep it (bounded) for `tasks/get`."""
        if record.released:
            return
        record.released = True
        record.items.clear()
        if self.active.get(record.task_id) is record:
            del self.active[record.task_id]
        if self.by_trace.get(record.trace_id) is record:
            del self.by_trace[record.trace_id]
        # Keep what tasks/get answers, not the flow message (its payload and meta).
        record.message = record.message.model_copy(update={"payload": None, "meta": {}})
        if not self._max_finished:
            return
        outcome = record.outcome
        record.kept_bytes = _json_size(record.request) + (
            _json_size(outcome.output) + _json_size(outcome.meta) + _json_size(outcome.error)
            if outcome is not None
            else 0
        )
        previous = self.finished.pop(record.task_id, None)
        if previous is not None:
            self.finished_bytes -= previous.kept_bytes
        self.finished[record.task_id] = record
        self.finished_bytes += record.kept_bytes
        while self.finished and (
            len(self.finished) > self._max_finished
            or self.finished_bytes > self._max_finished_bytes
        ):
            _, dropped = self.finished.popitem(last=False)
            self.finished_bytes -= dropped.kept_bytes

    def clear(self) -> list[TaskRecord]:
        """Drop every active task (on shutdown); returns them."""
        records = list(self.active.values())
        self.active.clear()
        self.by_trace.clear()
        return records


@dataclass(slots=True)
class StreamItem:
    """One step of a task: accepted (message emitted), a chunk, the outcome (last),
    or none of them (a heartbeat: nothing happened for a while)."""

    chunk: StreamChunk | None = None
    outcome: Outcome | None = None
    accepted: bool = False


def outcome_error(outcome: Outcome) -> dict[str, Any]:
    """The error payload of an outcome that is not a result: `code`, `message`, ...

    A failure gives its FlowError payload; the others a code and a fixed message.
    """
    if outcome.kind == "failed":
        return dict(outcome.error or {})
    if outcome.kind == "cancelled":
        return {"code": "TRACE_CANCELLED", "message": "Trace cancelled"}
    if outcome.kind == "timeout":
        return {"code": "TIMEOUT", "message": "no result within the time limit"}
    if outcome.kind == "shutdown":
        return {"code": "INTERNAL_ERROR", "message": "flow is shutting down"}
    message = (outcome.error or {}).get("message") or "internal error"
    return {"code": "INTERNAL_ERROR", "message": str(message)}
