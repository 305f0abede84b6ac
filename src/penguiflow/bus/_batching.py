"""`Batcher`: what concurrent callers submit goes to the broker in one call per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")

Send = Callable[[list[T]], Awaitable[Sequence[BaseException | None] | None]]
ErrorFor = Callable[[T, BaseException], BaseException]


class Batcher(Generic[T]):
    """Sends submitted items in batches, one batch in flight at a time.

    Items submitted while the event loop runs one step go out together; items
    submitted while a batch is in flight go out in the next one (group commit: the
    slower the broker, the larger the batches). `send(items)` makes one broker call
    and returns one outcome per item (`None` for success) or `None` for all
    succeeded; if it raises, every item of the batch fails. `error_for(item, exc)`
    turns a failure into the exception that item's submitter sees (so each caller
    gets its own exception, chained to the broker's).
    """

    def __init__(self, send: Send[T], error_for: ErrorFor[T], *, limit: int = 512) -> None:
        self._send = send
        self._error_for = error_for
        self._limit = limit
        self._items: list[T] = []
        self._futures: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[None]:
        """Queue `item`; the future completes when its batch was sent (or failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())
        return future

    async def drain(self) -> None:
        """Wait until everything submitted so far was sent."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        """Stop sending: batches not yet sent fail with `CancelledError`."""
        if self._task is not None:
            self._task.cancel()

    async def _flush(self) -> None:
        try:
            while self._items:
                items, self._items = self._items[: self._limit], self._items[self._limit :]
                futures, self._futures = (
                    self._futures[: self._limit],
                    self._futures[self._limit :],
                )
                try:
                    outcomes = await self._send(items)
                except asyncio.CancelledError:
                    for future in futures:
                        future.cancel()
                    raise
                except Exception as exc:
                    outcomes = [exc] * len(items)
                for item, future, outcome in zip(items, futures, outcomes or [None] * len(items)):
                    if future.done():  # its submitter was cancelled; the item went anyway
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(self._error_for(item, outcome))
        except asyncio.CancelledError:
            for future in self._futures:
                future.cancel()
            self._items.clear()
            self._futures.clear()
            raise
        finally:
            self._task = None
