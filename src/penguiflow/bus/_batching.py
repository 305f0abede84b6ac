"""`Batcher`: what concurrent callers submit goes to the broker in one call per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")

Send = Callable[[list[T]], Awaitable[Sequence[BaseException | None] | None]]
ErrorFor = Callable[[T, BaseException], BaseException]
Sent = Callable[[int, BaseException | None], None]


class Batcher(Generic[T]):
    """Sends queued items in batches, one batch in flight at a time.

    Items queued while the event loop runs one step go out together; items queued
    while a batch is in flight go out in the next one (group commit: the slower the
    broker, the larger the batches). `send(items)` makes one broker call and returns
    one outcome per item (`None` for success), or `None` when all succeeded; if it
    raises, every item of the batch fails.

    `submit(item)` returns a future per item; `error_for(item, exc)` turns a failure
    into the exception that item's submitter sees (each caller gets its own,
    chained to the broker's). `put(item)` queues without a future: `sent(count,
    error)` is called once per batch instead (cheaper for fire-and-forget items).
    """

    def __init__(
        self,
        send: Send[T],
        error_for: ErrorFor[T] | None = None,
        *,
        sent: Sent | None = None,
        limit: int = 512,
    ) -> None:
        self._send = send
        self._error_for = error_for
        self._sent = sent
        self._limit = limit
        self._items: list[T] = []
        self._futures: list[asyncio.Future[None] | None] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[None]:
        """Queue `item`; the future completes when its batch was sent (or failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue(item, future)
        return future

    def put(self, item: T) -> None:
        """Queue `item` without a future; its batch is reported to `sent`."""
        self._queue(item, None)

    def _queue(self, item: T, future: asyncio.Future[None] | None) -> None:
        self._items.append(item)
        self._futures.append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def drain(self) -> None:
        """Wait until everything queued so far was sent."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        """Stop sending: items not yet sent fail with `CancelledError`."""
        if self._task is not None:
            self._task.cancel()

    async def _flush(self) -> None:
        try:
            while self._items:
                limit = self._limit
                items, self._items = self._items[:limit], self._items[limit:]
                futures, self._futures = self._futures[:limit], self._futures[limit:]
                try:
                    outcomes = await self._send(items)
                except asyncio.CancelledError:
                    _cancel(futures)
                    raise
                except Exception as exc:
                    outcomes = [exc] * len(items)
                self._settle(items, futures, outcomes)
        except asyncio.CancelledError:
            _cancel(self._futures)
            self._items.clear()
            self._futures.clear()
            raise
        finally:
            self._task = None

    def _settle(
        self,
        items: list[T],
        futures: list[asyncio.Future[None] | None],
        outcomes: Sequence[BaseException | None] | None,
    ) -> None:
        failures = [None] * len(items) if outcomes is None else outcomes
        plain = 0  # items queued with put()
        first_error: BaseException | None = None
        for item, future, outcome in zip(items, futures, failures):
            if future is None:
                plain += 1
                first_error = first_error or outcome
            elif future.done():  # its submitter was cancelled; the item went anyway
                continue
            elif outcome is None:
                future.set_result(None)
            else:
                error_for = self._error_for
                future.set_exception(error_for(item, outcome) if error_for else outcome)
        if plain and self._sent is not None:
            self._sent(plain, first_error)


def _cancel(futures: list[asyncio.Future[None] | None]) -> None:
    for future in futures:
        if future is not None:
            future.cancel()
