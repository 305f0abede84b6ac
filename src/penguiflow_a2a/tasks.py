"""Per-request task records: what a request is waiting for, and what became of it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from penguiflow.errors import InvalidArgumentError
from penguiflow.types import Headers, Message, StreamChunk

__all__ = [
    "DEFAULT_MAX_LOG_ITEMS",
    "EventLog",
    "Outcome",
    "StreamItem",
    "TERMINAL_STATES",
    "TaskRecord",
    "TaskState",
    "TaskTable",
    "DEFAULT_MAX_FINISHED_BYTES",
    "outcome_error",
    "record_data",
    "record_from_data",
]

logger = logging.getLogger("penguiflow_a2a")

TaskState = Literal["submitted", "working", "input-required", "completed", "canceled", "failed"]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "canceled", "failed"})


@dataclass(slots=True)
class Outcome:
    """How a task ended.

    `kind` is `result` (with `output`/`meta`), `paused` (a planner paused: `output`
    is its `PlannerPause` without the resume token), `no_result` (the trace finished
    without producing anything), `failed` (`error` is the FlowError payload),
    `cancelled`, `timeout`, `shutdown` or `internal` (`error["message"]`).
    """

    kind: Literal[
        "result", "paused", "no_result", "failed", "cancelled", "timeout", "shutdown", "internal"
    ]
    output: Any = None
    meta: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    resume_token: str | None = None  # `paused`: what resumes the planner (never sent to A2A)


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
    request: dict[str, Any] | None = None  # the A2A message of the current turn (JSON-RPC)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier turns' messages
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
    resume_token: str | None = None  # a paused planner's, while input is required
    log: EventLog | None = None  # every step, for streams that (re)attach
    turns: int = 0  # follow-up messages that continued the task
    grace: asyncio.TimerHandle | None = None  # cancels the task if nobody re-attaches
    replica: str | None = None  # another server process runs it (loaded from the store)
    shared_as: tuple[str, int] | None = None  # (state, turn) last written to the store

    def cancel_grace(self) -> None:
        """Somebody attached again: the task no longer runs for nobody."""
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None

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
        """Record how this turn ended (first call wins; a pause ends a turn too)."""
        if self.state in TERMINAL_STATES or self.state == "input-required":
            return
        self.state = state
        self.outcome = outcome
        self.updated_at = time.time()

    def messages(self) -> list[dict[str, Any]]:
        """The task's history: each turn's A2A message, oldest first."""
        current = [self.request] if self.request is not None else []
        return [*self.history, *current]


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
        self._evicted: list[str] = []

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
        record.cancel_grace()
        if self.active.get(record.task_id) is record:
            del self.active[record.task_id]
        if self.by_trace.get(record.trace_id) is record:
            del self.by_trace[record.trace_id]
        # Keep what tasks/get answers, not the flow message (its payload and meta).
        record.message = record.message.model_copy(update={"payload": None, "meta": {}})
        if not self._max_finished:
            return
        outcome = record.outcome
        record.kept_bytes = sum(_json_size(item) for item in record.messages()) + (
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
            self._evicted.append(dropped.task_id)

    def take_evicted(self) -> list[str]:
        """The finished tasks dropped from the history since the last call."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def register(self, record: TaskRecord) -> None:
        """Make `record` an active task (a finished one of the same id is forgotten)."""
        previous = self.finished.pop(record.task_id, None)
        if previous is not None:
            self.finished_bytes -= previous.kept_bytes
        self.active[record.task_id] = record
        self.by_trace[record.trace_id] = record

    def reactivate(self, record: TaskRecord) -> None:
        """Make a finished (paused) task active again, for its next turn."""
        record.released = False
        record.state = "submitted"
        record.outcome = None
        record.cancelled = False
        record.started = False
        record.items.clear()
        self.register(record)

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


DEFAULT_MAX_LOG_ITEMS = 10_000


class EventLog:
    """Every step of one task turn, in order, for any number of followers.

    The stream that started the task is one follower; each `tasks/resubscribe` is
    another, and reads the log from the start, so nothing is missed. The log holds
    at most `max_items` steps: beyond that the oldest go, and a follower that had
    not read them starts at the oldest kept (logged).
    """

    def __init__(self, max_items: int = DEFAULT_MAX_LOG_ITEMS) -> None:
        self._items: deque[StreamItem] = deque()
        self._max_items = max(1, max_items)
        self._dropped = 0
        self._changed = asyncio.Event()
        self.closed = False
        self.followers = 0

    def append(self, item: StreamItem) -> None:
        """Add a step and wake the followers."""
        self._items.append(item)
        if len(self._items) > self._max_items:
            self._items.popleft()
            self._dropped += 1
        self._wake()

    def close(self) -> None:
        """No more steps will come (the turn ended)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def size(self) -> int:
        """How many steps were appended (kept or dropped)."""
        return self._dropped + len(self._items)

    async def follow(
        self, start: int = 0, *, heartbeat_s: float | None = None
    ) -> AsyncGenerator[StreamItem, None]:
        """Every step from position `start` on, waiting for new ones until the log
        closes; an empty `StreamItem` whenever `heartbeat_s` passes with nothing new."""
        position = start
        self.followers += 1
        try:
            while True:
                if position < self._dropped:
                    logger.warning(
                        "a2a: a follower missed %d steps over the log's limit of %d",
                        self._dropped - position,
                        self._max_items,
                    )
                    position = self._dropped
                if position < self.size:
                    item = self._items[position - self._dropped]
                    position += 1
                    yield item
                    continue
                if self.closed:
                    return
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), heartbeat_s)
                except TimeoutError:
                    yield StreamItem()
        finally:
            self.followers -= 1


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


def record_data(record: TaskRecord) -> dict[str, Any]:
    """What a task record shares with the other replicas, as JSON data: everything
    `tasks/get` answers, and the headers a follow-up turn is sent with. Never the
    resume token: a paused task is continued on the replica holding it."""
    outcome = record.outcome
    data = {
        "trace_id": record.trace_id,
        "headers": record.message.headers.model_dump(mode="json"),
        "request": record.request,
        "history": record.history,
        "created_at": record.created_at,
        "turns": record.turns,
        "outcome": None
        if outcome is None
        else {
            "kind": outcome.kind,
            "output": outcome.output,
            "meta": outcome.meta,
            "error": outcome.error,
        },
    }
    shared: dict[str, Any] = to_jsonable_python(data, fallback=repr)
    return shared


def record_from_data(
    task_id: str,
    context_id: str,
    owner: str | None,
    state: str,
    updated_at: float,
    replica: str,
    data: Any,
) -> TaskRecord:
    """A read-only view of a task that another replica runs (from `record_data`).

    Raises `ValueError`, `TypeError` or `KeyError` for data that is not such a record.
    """
    if state not in _STATES:
        raise ValueError(f"unknown task state {state!r}")
    saved = data["outcome"]
    outcome = None
    if saved is not None:
        outcome = Outcome(saved["kind"], saved["output"], saved["meta"], saved["error"])
    headers = Headers.model_validate(data["headers"])
    record = TaskRecord(
        task_id=task_id,
        context_id=context_id,
        trace_id=str(data["trace_id"]),
        owner=owner,
        message=Message(payload=None, headers=headers, trace_id=str(data["trace_id"])),
        request=data["request"],
        history=list(data["history"]),
        state=state,  # type: ignore[arg-type]
        outcome=outcome,
        created_at=float(data["created_at"]),
        updated_at=updated_at,
        turns=int(data["turns"]),
        replica=replica,
    )
    record.released = True
    return record


_STATES = frozenset({"submitted", "working", "input-required", *TERMINAL_STATES})
