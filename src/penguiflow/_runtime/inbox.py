"""`Inbox`: what waits for one context, its incoming queues plus a FIFO buffer.

A context with several incoming edges waits on one future, woken by whichever
queue receives an item, instead of one `get()` task per edge: that is what makes
fan-in cheap. Taking from the inbox never counts a message out of its trace; the
caller (node worker or fetch) does that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..errors import ContextError
from .waiting import wait_listed, wake_all

__all__ = ["Inbox", "InboxQueue"]

NO_FLOES = "context has no incoming floes to fetch from"


class Inbox:
    """The incoming queues of a context, a buffer of already-received items, waiters."""

    __slots__ = ("_rr", "buffer", "queues", "waiting")

    def __init__(self) -> None:
        self.buffer: deque[Any] = deque()
        self.queues: tuple[asyncio.Queue[Any], ...] = ()
        # Readers waiting in `take_any` for an item: read it, never change it (the
        # queues check it on every put to decide whether to `wake`).
        self.waiting: list[asyncio.Future[None]] = []
        self._rr = 0

    def wake(self) -> None:
        """Wake everyone waiting for an item (they re-check the queues)."""
        wake_all(self.waiting)

    def push(self, item: Any) -> None:
        """Put an item straight into the buffer (it is taken before queued items)."""
        self.buffer.append(item)
        if self.waiting:
            self.wake()

    def take_nowait(self, queues: Sequence[asyncio.Queue[Any]]) -> tuple[bool, Any]:
        """`(True, item)` from the first non-empty queue (round robin), else `(False, None)`.

        The buffer is not consulted: callers look there first.
        """
        count = len(queues)
        start = self._rr % count if count else 0
        for offset in range(count):
            index = (start + offset) % count
            queue = queues[index]
            if queue.qsize():
                self._rr = index + 1
                return True, queue.get_nowait()
        return False, None

    async def take_any(self, queues: Sequence[asyncio.Queue[Any]]) -> Any:
        """The buffer's oldest item, else the first item to reach any of `queues`."""
        while True:
            if self.buffer:
                return self.buffer.popleft()
            found, item = self.take_nowait(queues)
            if found:
                return item
            await wait_listed(self.waiting)

    async def take(self) -> Any:
        """The next item from any incoming queue (the node worker's read)."""
        return await self.take_from(self.queues, any_=False)

    async def take_from(self, queues: Sequence[asyncio.Queue[Any]], *, any_: bool) -> Any:
        """The buffer's oldest item, else the next item of `queues`.

        With one queue and `any_=False`, an item already queued is taken without
        waiting; otherwise the first to arrive on any of them (`take_any`).
        """
        if self.buffer:
            return self.buffer.popleft()
        if not queues:
            raise ContextError(NO_FLOES)
        if len(queues) == 1 and not any_:
            queue = queues[0]
            if isinstance(queue, InboxQueue):
                item = queue.take_ready()
                if item is not EMPTY:
                    return item
            return await queue.get()
        return await self.take_any(queues)


EMPTY: Any = object()
"""What `InboxQueue.take_ready` returns when the queue is empty."""


class InboxQueue(asyncio.Queue[Any]):
    """An edge's queue: an `asyncio.Queue` that wakes its consumer's inbox on arrival.

    `offer` and `take_ready` are `put_nowait`/`get_nowait` for the runtime's hot
    path: the same effects on the queue's waiters and counters, without raising
    and without the layers of method calls. They use asyncio.Queue's own fields
    (present in CPython 3.11 to 3.13), which is why they live here, in the subclass,
    and nowhere else; on an interpreter whose Queue lacks them they fall back to
    the public methods.
    """

    consumer: Inbox | None = None

    # asyncio.Queue's own fields (set by its __init__), declared for the type checker.
    _queue: deque[Any]
    _maxsize: int
    _unfinished_tasks: int
    _finished: asyncio.Event
    _getters: deque[asyncio.Future[None]]
    _putters: deque[asyncio.Future[None]]

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        # The queued items themselves, for a cheap emptiness check (`if queue.items:`);
        # read it, never change it.
        self.items: deque[Any] = self._queue if _FAST_PATH else deque()

    def _put(self, item: Any) -> None:
        # asyncio.Queue's documented override point for storage; the base appends.
        super()._put(item)
        consumer = self.consumer
        if consumer is not None and consumer.waiting:
            consumer.wake()

    def offer(self, item: Any) -> bool:
        """Enqueue `item` if there is room (True), else do nothing (False)."""
        if not _FAST_PATH:
            if self.full():
                return False
            self.put_nowait(item)
            return True
        items = self._queue
        if 0 < self._maxsize <= len(items):
            return False
        items.append(item)
        self._unfinished_tasks += 1
        if self._unfinished_tasks == 1:  # it was 0, so `_finished` was set
            self._finished.clear()
        getters = self._getters
        while getters:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                break
        consumer = self.consumer
        if consumer is not None and consumer.waiting:
            consumer.wake()
        return True

    def take_ready(self) -> Any:
        """The oldest item if one is queued, else `EMPTY` (never waits)."""
        if not _FAST_PATH:
            return self.get_nowait() if self.qsize() else EMPTY
        items = self._queue
        if not items:
            return EMPTY
        item = items.popleft()
        putters = self._putters
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)
                break
        return item


def _has_queue_internals() -> bool:
    probe = asyncio.Queue[Any]()
    fields = ("_queue", "_maxsize", "_getters", "_putters", "_unfinished_tasks", "_finished")
    return all(hasattr(probe, name) for name in fields)


_FAST_PATH = _has_queue_internals()
