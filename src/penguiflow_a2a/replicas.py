"""`TaskSync`: an A2A server's task records in a shared state store, so that every
replica behind a load balancer answers `tasks/get`, `tasks/cancel` and
`tasks/resubscribe` for any task.

The replica that runs a task writes its record at each change of state (before the
client hears of it), and every `poll_s` takes the cancel requests other replicas
queued for it. Another replica reads the record, queues a cancel request, or polls
the record for a resubscription. A store that fails never fails a task: the error
is logged and counted (`errors`), and the task goes on, only unshared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Sequence
from typing import TypeVar

from penguiflow.errors import InvalidArgumentError, exception_text
from penguiflow.state import StoredTask, TaskStore
from penguiflow.state.protocol import timeout_option

from .tasks import TERMINAL_STATES, TaskRecord, record_data, record_from_data

__all__ = ["DEFAULT_POLL_S", "TaskSync", "default_replica_name"]

logger = logging.getLogger("penguiflow_a2a")

T = TypeVar("T")

DEFAULT_POLL_S = 0.25
"""How often a replica takes its cancel requests, and a resubscription re-reads."""


def default_replica_name() -> str:
    """This process, uniquely: `<host>-<pid>-<random>`."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class TaskSync:
    """Shares one server's task records through `store` (a `TaskStore`)."""

    def __init__(
        self,
        store: TaskStore,
        *,
        replica: str | None = None,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        if not isinstance(store, TaskStore):
            raise InvalidArgumentError(
                f"task_store must offer save_task, load_task, request_task_cancel, "
                f"take_task_cancels and delete_task (penguiflow.state.TaskStore); "
                f"{type(store).__name__} does not"
            )
        self.store = store
        self.replica = replica or default_replica_name()
        self.poll_s = poll_s
        self.errors = 0
        self._timeout_s = timeout_option(getattr(store, "timeout_s", None)) or 30.0

    async def _call(self, what: str, call: Awaitable[T]) -> T | None:
        """`call`'s result, or `None` when the store fails (logged and counted)."""
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except Exception as exc:  # a store failure must not fail the task
            self.errors += 1
            logger.warning("a2a: task store %s failed: %s", what, exception_text(exc))
            return None

    async def save(self, record: TaskRecord) -> None:
        """Write the record as it stands (its state, outcome and history), unless it
        was written in this state of this turn already."""
        version = (record.state, record.turns)
        if record.shared_as == version:
            return
        task = StoredTask(
            task_id=record.task_id,
            context_id=record.context_id,
            owner=record.owner,
            replica=self.replica,
            state=record.state,
            updated_at=time.time(),
            data=record_data(record),
        )
        saved = await self._call(f"save of task {record.task_id!r}", self._save(task))
        if saved:
            record.shared_as = version

    async def _save(self, task: StoredTask) -> bool:
        await self.store.save_task(task)
        return True

    async def load(self, task_id: str, owner: str | None) -> TaskRecord | None:
        """Another replica's task as its record says, if `owner` may see it."""
        stored = await self._call(f"load of task {task_id!r}", self.store.load_task(task_id))
        if stored is None or stored.owner != owner:
            return None
        try:
            return record_from_data(
                stored.task_id,
                stored.context_id,
                stored.owner,
                stored.state,
                stored.updated_at,
                stored.replica,
                stored.data,
            )
        except (ValueError, TypeError, KeyError) as exc:
            self.errors += 1
            logger.warning("a2a: task %r in the store is not a task record: %s", task_id, exc)
            return None

    async def request_cancel(self, record: TaskRecord) -> TaskRecord | None:
        """Ask the replica running `record` to cancel it; the record once it ended
        (`None` if it did not end within the store's time limit)."""
        queued = await self._call(
            f"cancel request for task {record.task_id!r}",
            self.store.request_task_cancel(record.task_id),
        )
        if not queued:
            return None
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(self.poll_s / 2)
            current = await self.load(record.task_id, record.owner)
            if current is not None and current.state in TERMINAL_STATES:
                return current
        return None

    async def take_cancels(self) -> Sequence[str]:
        """The task ids other replicas asked this one to cancel."""
        taken = await self._call(
            "taking cancel requests", self.store.take_task_cancels(self.replica)
        )
        return list(taken or ())

    async def watch(self, record: TaskRecord) -> AsyncGenerator[TaskRecord, None]:
        """The record each time its state changes, until it ends or waits for input."""
        seen = (record.state, record.turns)
        while record.state not in TERMINAL_STATES and record.state != "input-required":
            await asyncio.sleep(self.poll_s)
            current = await self.load(record.task_id, record.owner)
            if current is None:
                return
            record = current
            if (record.state, record.turns) != seen:
                seen = (record.state, record.turns)
                yield record

    async def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records no replica keeps any more (evicted from the history)."""
        for task_id in task_ids:
            await self._call(f"delete of task {task_id!r}", self.store.delete_task(task_id))
