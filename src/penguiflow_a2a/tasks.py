"""Per-request task records: what a request is waiting for, and what became of it."""

from __future__ import annotations

import asyncio
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


class TaskTable:
    """Active tasks by task id and trace id, plus a bounded history of finished ones."""

    def __init__(self, max_finished: int = 10_000) -> None:
        if max_finished < 0:
            raise InvalidArgumentError(f"max_finished must be >= 0, got {max_finished}")
        self.active: dict[str, TaskRecord] = {}
        self.by_trace: dict[str, TaskRecord] = {}
        self.finished: OrderedDict[str, TaskRecord] = OrderedDict()
        self._max_finished = max_finished

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
        if self._max_finished:
            self.finished[record.task_id] = record
            self.finished.move_to_end(record.task_id)
            while len(self.finished) > self._max_finished:
                self.finished.popitem(last=False)

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
