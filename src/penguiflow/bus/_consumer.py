"""The consume loop both buses run: read in batches, handle, acknowledge in batches.

A backend supplies an `Inbox` (read, ack, retry, dead-letter on its broker); the
loop is the same for every backend. One reader keeps up to `window` messages
unacknowledged; `concurrency` handler tasks take them in read order; a message is
acknowledged only after its handler returned, in one broker call per batch of acks,
and its place in the window is freed once the broker took the ack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .._logfmt import LogLine
from ._batching import Batcher
from ._codec import decode_body
from .errors import InvalidBusOptionError
from .protocol import BatchHandler, BusStats, Delivery, Handler

__all__ = ["Inbox", "Received", "check_consume_options", "default_consumer", "run_consumer"]

logger = logging.getLogger("penguiflow.bus")

R = TypeVar("R")


@dataclass(slots=True)
class Received(Generic[R]):
    """One message as read from the broker, before decoding."""

    handle: R  # what the backend needs to ack, retry or dead-letter it
    msg_id: str
    body: str | bytes
    deliveries: int


class Inbox(Protocol[R]):
    """One consumer's view of one edge on a broker."""

    async def read(self, count: int) -> Sequence[Received[R]]:
        """Up to `count` messages; waits up to the poll time, then returns `[]`."""
        ...

    async def ack(self, handles: list[R]) -> None:
        """Acknowledge every handle, in one broker call where the broker allows."""
        ...

    async def retry(self, received: Received[R]) -> None:
        """Its handler failed: have it delivered again (at once, or once idle)."""
        ...

    async def dead_letter(self, received: Received[R], reason: str) -> None:
        """Move it to the edge's dead-letter stream and acknowledge it."""
        ...


def default_consumer() -> str:
    """A consumer name unique across hosts: `<hostname>-<pid>`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def check_consume_options(**options: int) -> None:
    """Raise `InvalidBusOptionError` for any option below 1."""
    for option, value in options.items():
        if value < 1:
            raise InvalidBusOptionError(
                f"{option} must be >= 1, got {value}", option=option, value=value
            )


class _Window:
    """How many messages this consumer holds unacknowledged, out of `size`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wanted = 1

    def take(self, count: int) -> None:
        self.held += count
        if self.size - self.held < self._wanted:
            self._room.clear()

    def release(self, count: int = 1) -> None:
        self.held -= count
        if self.size - self.held >= self._wanted:
            self._room.set()

    def wake(self) -> None:
        self._room.set()

    async def room(self, wanted: int) -> int:
        """Wait until `wanted` places are free (or `wake`); the number free."""
        self._wanted = wanted
        if self.size - self.held < wanted:
            self._room.clear()
            await self._room.wait()
        return self.size - self.held


def _one_at_a_time(handler: Handler | None) -> BatchHandler:
    """A per-delivery handler as a batch handler (each batch holds one delivery)."""
    if handler is None:
        raise TypeError("run_consumer needs a handler or a batch_handler")
    single = handler

    async def run(deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        try:
            await single(deliveries[0])
        except Exception as exc:
            return [exc]
        return [None]

    return run


async def run_consumer(
    inbox: Inbox[R],
    handler: Handler | None = None,
    *,
    batch_handler: BatchHandler | None = None,
    edge: str,
    batch: int,
    concurrency: int,
    max_deliveries: int,
    stop: asyncio.Event | None,
    stats: BusStats,
) -> None:
    """Consume until `stop` is set; see `ConsumerBus.consume` for the guarantees.

    With `handler`, `concurrency` handler runs take one delivery each; with
    `batch_handler` (`ConsumerBus.consume_batches`), each takes what one read brought.
    """
    stop = stop or asyncio.Event()
    batched = batch_handler is not None
    window = _Window(batch * concurrency if batched else max(batch, concurrency))
    run_batch = batch_handler or _one_at_a_time(handler)
    queue: asyncio.Queue[list[Received[R]]] = asyncio.Queue()
    fatal: list[BaseException] = []
    loop = asyncio.get_running_loop()

    def fail(exc: BaseException) -> None:
        if not fatal:
            fatal.append(exc)
        window.wake()

    def acked(count: int, error: BaseException | None) -> None:
        window.release(count)
        if error is None:
            stats.acked += count
        else:
            fail(error)

    acks: Batcher[R] = Batcher(inbox.ack, sent=acked)

    def admit(received: Received[R]) -> Delivery | str:
        """The delivery to hand over, or why it goes to the dead letters instead."""
        if received.deliveries > max_deliveries:  # its consumers kept dying mid-handler
            return "max_deliveries"
        try:
            envelope = decode_body(received.body)
        except ValueError as exc:
            fields = {"edge": edge, "error": repr(exc)}
            logger.error(LogLine("bus_undecodable_entry"), fields, extra=fields)
            return "undecodable"
        stats.delivered += 1
        return Delivery(received.msg_id, envelope, received.deliveries)

    async def failed(received: Received[R], error: BaseException) -> None:
        """Its handler failed: retry it, or dead-letter it after its last attempt."""
        fields = {"edge": edge, "msg_id": received.msg_id, "error": repr(error)}
        logger.warning(LogLine("bus_handler_failed"), fields, extra=fields)
        if received.deliveries >= max_deliveries:
            await dead_letter(received, "handler_failed")
        else:
            await inbox.retry(received)
            window.release()

    async def finish(items: list[Received[R]]) -> None:
        admitted: list[tuple[Received[R], Delivery]] = []
        for item in items:
            delivery = admit(item)
            if isinstance(delivery, str):
                await dead_letter(item, delivery)
            else:
                admitted.append((item, delivery))
        if not admitted:
            return
        outcomes: Sequence[BaseException | None]
        try:
            outcomes = await run_batch([delivery for _, delivery in admitted])
        except Exception as exc:
            outcomes = [exc] * len(admitted)
        if len(outcomes) != len(admitted):
            wrong = TypeError(
                f"a batch handler must return one outcome per delivery: "
                f"got {len(outcomes)} for {len(admitted)}"
            )
            outcomes = [wrong] * len(admitted)
        for (item, _), outcome in zip(admitted, outcomes):
            if outcome is None:
                acks.put(item.handle)
            else:
                await failed(item, outcome)

    async def dead_letter(received: Received[R], reason: str) -> None:
        await inbox.dead_letter(received, reason)
        stats.dead_lettered += 1
        window.release()
        fields = {
            "edge": edge,
            "msg_id": received.msg_id,
            "deliveries": received.deliveries,
            "reason": reason,
        }
        logger.error(LogLine("bus_dead_letter"), fields, extra=fields)

    async def work() -> None:
        while True:
            items = await queue.get()
            try:
                await finish(items)
            except Exception as exc:  # a broker call failed: the consumer stops
                fail(exc)
                raise
            finally:
                queue.task_done()

    workers = [loop.create_task(work()) for _ in range(concurrency)]
    watch_stop = loop.create_task(stop.wait())
    watch_stop.add_done_callback(lambda _task: window.wake())
    try:
        wanted = max(1, batch // 2)  # read when a good part of a batch fits
        while not stop.is_set() and not fatal:
            free = await window.room(min(wanted, window.size))
            if stop.is_set() or fatal:
                break
            if free < 1:  # woken with no room
                continue
            received = list(await inbox.read(min(batch, free)))
            window.take(len(received))
            if batched:
                if received:
                    queue.put_nowait(received)
            else:
                for item in received:
                    queue.put_nowait([item])
        if not fatal:  # stopping: handle what was read, then its acks
            drained = loop.create_task(queue.join())
            await asyncio.wait([drained, *workers], return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()
            if not fatal:
                await acks.drain()
        if fatal:
            raise fatal[0]
    finally:
        watch_stop.cancel()
        acks.cancel()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, watch_stop, return_exceptions=True)
