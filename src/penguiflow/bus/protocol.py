"""The message-bus protocols: what the runtime publishes to, and what workers consume.

`BusEnvelope` and `MessageBus` are the spec'd names: the runtime publishes one
envelope per edge delivery to any object with `publish(envelope)`.

`ConsumerBus` is what a broker-backed bus offers on top (both `RedisStreamsBus` and
`NatsJetStreamBus` implement it, and `penguiflow.bus.worker` needs nothing else):
publish under a caller-chosen id, consume an edge as one member of a group with
at-least-once delivery, report a group's backlog, count its broker round trips.

Trace context: the shipped buses send the publisher's current trace context with
every envelope, and a consumer finds it in `envelope.meta["traceparent"]`
(`penguiflow.tracing.propagation.extract` reads it). A `MessageBus` of your own can
do the same with `with_trace_context(envelope)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = [
    "BusEnvelope",
    "BatchHandler",
    "BusStats",
    "ConsumerBus",
    "Delivery",
    "GroupStatus",
    "Handler",
    "MessageBus",
    "with_trace_context",
]


@dataclass(slots=True)
class BusEnvelope:
    """One message crossing one edge (`edge` reads `"source->target"`)."""

    edge: str
    source: str | None
    target: str | None
    trace_id: str | None
    payload: Any
    headers: Mapping[str, Any] | None
    meta: Mapping[str, Any] | None


def with_trace_context(envelope: BusEnvelope) -> BusEnvelope:
    """`envelope` with the current trace context (`traceparent`, `tracestate`) in its meta.

    A copy; `envelope` itself is returned when there is no current context. The
    shipped buses do this on `publish`; use it for a `MessageBus` of your own.
    """
    from ..tracing.propagation import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    if not carrier:
        return envelope
    return replace(envelope, meta={**(envelope.meta or {}), **carrier})


class MessageBus(Protocol):
    """Receives an envelope for every message the runtime enqueues."""

    async def publish(self, envelope: BusEnvelope) -> None:
        """Publish one envelope."""


@dataclass(slots=True)
class Delivery:
    """One envelope handed to a consumer's handler.

    `msg_id` is the id it was published under (the same on every redelivery, so a
    handler can make its effect idempotent); `deliveries` counts the attempts, 1 on
    the first.
    """

    msg_id: str
    envelope: BusEnvelope
    deliveries: int


Handler = Callable[[Delivery], Awaitable[None]]
"""A consumer's handler: returning acknowledges the delivery, raising retries it."""

BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[BaseException | None]]]
"""A batch consumer's handler: one outcome per delivery, in order; `None`
acknowledges that delivery, an exception retries it (raising retries them all)."""


@dataclass(slots=True)
class BusStats:
    """Counters of one bus object, in this process (they only grow).

    `round_trips` counts the waits for a broker reply: one per pipeline, script call,
    fetch or batch of publish confirmations, however many messages it carried.
    Broker calls that get no reply (NATS acks) are not round trips.
    """

    round_trips: int = 0
    published: int = 0  # envelopes the broker confirmed it stored
    delivered: int = 0  # deliveries handed to handlers
    acked: int = 0  # deliveries acknowledged after their handler returned
    dead_lettered: int = 0  # deliveries moved to the dead-letter stream or subject


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """The backlog of one consumer group on one edge.

    `unacked`: delivered to a member, not yet acknowledged. `undelivered`: on the
    edge, not yet delivered to any member. `unacked_by_consumer`: `unacked` per
    member name where the broker tracks it (Redis), `None` where it does not (NATS).
    """

    unacked: int
    undelivered: int
    unacked_by_consumer: Mapping[str, int] | None = field(default=None)

    @property
    def outstanding(self) -> int:
        """Messages the group has not finished: `unacked + undelivered`."""
        return self.unacked + self.undelivered


class ConsumerBus(MessageBus, Protocol):
    """A `MessageBus` that workers can also consume from, with at-least-once delivery.

    Concurrent `publish` calls are sent together (one broker round trip per batch);
    each returns once the broker confirmed its envelope.
    """

    @property
    def stats(self) -> BusStats:
        """This object's counters (round trips, published, delivered, acked)."""
        ...

    async def publish(self, envelope: BusEnvelope, *, msg_id: str | None = None) -> None:
        """Publish one envelope under `msg_id` (default: a fresh unique id).

        A consumer sees `msg_id` as `Delivery.msg_id`. Publishing the same id twice
        is stored once where the broker de-duplicates (NATS, inside its window) and
        twice, recognisably, where it does not (Redis). Raises `PublishError`.
        """
        ...

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
        """Run `handler` for the edge's messages as one member of `group`, until `stop`.

        A delivery is acknowledged after its handler returns; one that is never
        acknowledged (its handler raised, or its consumer died) is delivered again
        after `claim_idle_ms` (a raising handler on NATS: at once), and after
        `max_deliveries` attempts it goes to the edge's dead-letter stream. Up to
        `batch` messages are read per broker call and `concurrency` handlers run at
        once (with 1, in delivery order); a consumer holds at most
        `max(batch, concurrency)` messages unacknowledged, so keep that many handler
        runs well inside `claim_idle_ms`. `consumer` names this member (default
        `<hostname>-<pid>`); `poll_ms` is how long one read waits for messages, and
        so how soon `stop` is noticed. On `stop`, the messages already read are
        handled and acknowledged before it returns.
        """
        ...

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
        """Like `consume`, but `handler` takes what one read brought (up to `batch`).

        Each delivery is acknowledged or retried by its own outcome. `concurrency`
        batches are handled at once, so a consumer holds at most `batch * concurrency`
        messages unacknowledged.
        """
        ...

    async def publish_many(
        self, envelopes: Sequence[BusEnvelope], *, msg_ids: Sequence[str | None] | None = None
    ) -> list[BaseException | None]:
        """Publish several envelopes together; one outcome per envelope, in order.

        `None` means the broker confirmed it stored that envelope, a `PublishError`
        that it did not. Nothing is raised for a failed envelope.
        """
        ...

    async def group_status(self, edge: str, group: str) -> GroupStatus:
        """The backlog of `group` on `edge` (see `GroupStatus`)."""
        ...

    async def close(self) -> None:
        """Wait for publishes in progress, then close the connection."""
        ...
