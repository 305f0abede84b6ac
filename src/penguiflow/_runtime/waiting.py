"""Waiting in a list of futures: how contexts and traces park their waiters."""

from __future__ import annotations

import asyncio

__all__ = ["wait_listed", "wake_all"]


async def wait_listed(waiters: list[asyncio.Future[None]]) -> None:
    """Wait on a new future kept in `waiters` until someone resolves it (`wake_all`).

    The future leaves the list however the wait ends (cancellation included).
    """
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:
            waiters.remove(waiter)


def wake_all(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve every future in `waiters` and empty the list (the same list object)."""
    pending = waiters[:]
    waiters.clear()
    for fut in pending:
        if not fut.done():
            fut.set_result(None)
