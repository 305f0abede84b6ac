"""`BrokerBus`: what both broker-backed buses share, so each backend writes only its
broker calls.

Here: the counters, publishing through a `Batcher` (one broker call per batch, each
envelope with the publisher's trace context),
counting and translating every broker call in one place, and the `consume` entry
point (options checked, then the shared consume loop on the backend's `Inbox`).
A backend supplies `connect`, `ensure_group`, `delete_group` and `group_status` (the
public broker calls), `_translated` (its error mapping), `_send` (one batch of
publishes), `_inbox` (one consumer's view of an edge) and `_disconnect`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from ..tracing.propagation import inject
from ._batching import Batcher
from ._codec import check_msg_id, encode_body, new_msg_id
from ._consumer import Inbox, check_consume_options, default_consumer, run_consumer
from .errors import InvalidBusOptionError, PublishError
from .protocol import BatchHandler, BusEnvelope, BusStats, GroupStatus, Handler

__all__ = ["BrokerBus", "BrokerCall", "Outgoing"]

T = TypeVar("T")


class BrokerCall(Protocol):
    """A bus's counted, translated broker call (`BrokerBus._call`), handed to its inbox."""

    async def __call__(self, operation: str, edge: str | None, call: Awaitable[T]) -> T: ...


@dataclass(slots=True)
class Outgoing:
    """One envelope on its way to the broker."""

    edge: str
    msg_id: str
    body: str


class BrokerBus(ABC):
    """The shared half of a `ConsumerBus` on a broker (see the module docstring)."""

    backend: ClassVar[str]  # the name errors carry ("redis", "nats")

    def __init__(self) -> None:
        self._stats = BusStats()
        self._publisher: Batcher[Outgoing] = Batcher(self._send, self._publish_error)

    @property
    def stats(self) -> BusStats:
        """This object's counters (see `BusStats`)."""
        return self._stats

    async def publish(self, envelope: BusEnvelope, *, msg_id: str | None = None) -> None:
        """Publish the envelope under `msg_id` (see `ConsumerBus.publish`)."""
        await self._publisher.submit(_outgoing(envelope, msg_id))

    async def publish_many(
        self, envelopes: Sequence[BusEnvelope], *, msg_ids: Sequence[str | None] | None = None
    ) -> list[BaseException | None]:
        """Publish several envelopes together (see `ConsumerBus.publish_many`)."""
        ids = [None] * len(envelopes) if msg_ids is None else msg_ids
        if len(ids) != len(envelopes):
            raise InvalidBusOptionError(
                f"msg_ids must hold one id per envelope: {len(ids)} for {len(envelopes)}",
                option="msg_ids",
                value=len(ids),
            )
        outcomes: list[BaseException | None] = [None] * len(envelopes)
        futures: list[tuple[int, asyncio.Future[None]]] = []
        for index, (envelope, msg_id) in enumerate(zip(envelopes, ids)):
            try:
                item = _outgoing(envelope, msg_id)
            except (ValueError, TypeError) as exc:  # not JSON, or a malformed id
                outcomes[index] = exc
                continue
            futures.append((index, self._publisher.submit(item)))
        done = await asyncio.gather(*(future for _, future in futures), return_exceptions=True)
        for (index, _), outcome in zip(futures, done):
            outcomes[index] = outcome if isinstance(outcome, BaseException) else None
        return outcomes

    async def consume(
        self,
        edge: str,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        batch: int = 16,
        concurrency: int = 1,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        poll_ms: int = 200,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run `handler` for the edge's messages until `stop` (see `ConsumerBus.consume`).

        Raises `InvalidBusOptionError` for an option below 1, and `BusError` (or
        `BrokerUnavailableError`) when the broker fails; handler errors never escape.
        """
        await self._consume(
            edge,
            group,
            handler,
            None,
            consumer=consumer,
            batch=batch,
            concurrency=concurrency,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            poll_ms=poll_ms,
            stop=stop,
        )

    async def consume_batches(
        self,
        edge: str,
        group: str,
        handler: BatchHandler,
        *,
        consumer: str | None = None,
        batch: int = 16,
        concurrency: int = 1,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        poll_ms: int = 200,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run `handler` on each read's deliveries (see `ConsumerBus.consume_batches`)."""
        await self._consume(
            edge,
            group,
            None,
            handler,
            consumer=consumer,
            batch=batch,
            concurrency=concurrency,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            poll_ms=poll_ms,
            stop=stop,
        )

    async def _consume(
        self,
        edge: str,
        group: str,
        handler: Handler | None,
        batch_handler: BatchHandler | None,
        *,
        consumer: str | None,
        batch: int,
        concurrency: int,
        claim_idle_ms: int,
        max_deliveries: int,
        poll_ms: int,
        stop: asyncio.Event | None,
    ) -> None:
        check_consume_options(
            batch=batch,
            concurrency=concurrency,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            poll_ms=poll_ms,
        )
        inbox = self._inbox(
            edge,
            group,
            consumer or default_consumer(),
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            poll_ms=poll_ms,
        )
        async with inbox as opened:
            await run_consumer(
                opened,
                handler,
                batch_handler=batch_handler,
                edge=edge,
                batch=batch,
                concurrency=concurrency,
                max_deliveries=max_deliveries,
                stop=stop,
                stats=self._stats,
            )

    async def close(self) -> None:
        """Wait for publishes in progress, then close the connection."""
        await self._publisher.drain()
        await self._disconnect()

    @abstractmethod
    async def connect(self) -> None:
        """Reach the broker now rather than on first use.

        Raises `BrokerUnavailableError` when it cannot be reached, and the package's
        `MissingExtraError` when the bus's driver is not installed.
        """

    @abstractmethod
    async def ensure_group(
        self,
        edge: str,
        group: str,
        *,
        start: Literal["first", "new"] = "first",
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
    ) -> None:
        """Create the consumer group of `edge` if it is missing (an existing one is kept).

        A new group starts at the edge's first message (`start="first"`) or takes only
        the messages published from now on (`"new"`). `consume` calls this itself; call
        it first to have the group in place (or to fail) before consuming.
        """

    @abstractmethod
    async def delete_group(self, edge: str, group: str) -> None:
        """Remove the consumer group (nothing happens when there is none)."""

    @abstractmethod
    async def group_status(self, edge: str, group: str) -> GroupStatus:
        """The backlog of `group` on `edge` (see `GroupStatus`)."""

    # -- what a backend supplies -------------------------------------------------------

    @abstractmethod
    def _translated(self, operation: str, edge: str | None) -> AbstractContextManager[None]:
        """Raise the broker's errors inside as `BusError`s (`from` the original)."""

    @abstractmethod
    async def _send(self, items: list[Outgoing]) -> Sequence[BaseException | None] | None:
        """Publish one batch in one broker call; one outcome per item (see `Batcher`)."""

    @abstractmethod
    def _inbox(
        self,
        edge: str,
        group: str,
        consumer: str,
        *,
        claim_idle_ms: int,
        max_deliveries: int,
        poll_ms: int,
    ) -> AbstractAsyncContextManager[Inbox[Any]]:
        """One consumer's view of `edge` in `group`, ready while the context is open."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection (publishes are drained already)."""

    # -- shared plumbing ---------------------------------------------------------------

    async def _call(self, operation: str, edge: str | None, call: Awaitable[T]) -> T:
        """Await one broker call: counted as a round trip, its errors translated."""
        self._stats.round_trips += 1
        with self._translated(operation, edge):
            return await call

    def _publish_error(self, item: Outgoing, exc: BaseException) -> BaseException:
        error = PublishError(
            f"{self.backend} did not confirm storing message {item.msg_id} on edge "
            f"{item.edge!r}: {exc}",
            backend=self.backend,
            edge=item.edge,
            msg_id=item.msg_id,
        )
        error.__cause__ = exc
        return error


def _outgoing(envelope: BusEnvelope, msg_id: str | None) -> Outgoing:
    """Encoded in the publisher's task, so its current trace context goes along."""
    trace_context: dict[str, str] = {}
    inject(trace_context)
    return Outgoing(
        envelope.edge,
        new_msg_id() if msg_id is None else check_msg_id(msg_id),
        encode_body(envelope, trace_context),
    )
