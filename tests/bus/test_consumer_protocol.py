"""What every `ConsumerBus` we ship promises, run on each real broker in turn:
messages keep the id they were published under, publishes and reads go to the broker
in batches, a group's backlog is visible, and misuse raises typed errors."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

import penguiflow.bus.errors as bus_errors
from penguiflow import Headers, Message
from penguiflow.bus import BusEnvelope, ConsumerBus, Delivery, GroupStatus
from penguiflow.bus.errors import (
    BrokerUnavailableError,
    BusError,
    InvalidBusOptionError,
    PublishError,
)
from penguiflow.bus.nats_jetstream import NatsJetStreamBus
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.errors import InvalidArgumentError, PenguiflowError


def envelope(n: int, edge: str = "jobs") -> BusEnvelope:
    message = Message(payload={"n": n}, headers=Headers(tenant="acme"), meta={"k": n})
    return BusEnvelope(
        edge,
        "client",
        edge,
        message.trace_id,
        message,
        message.headers.model_dump(),
        dict(message.meta),
    )


async def consume(
    bus: ConsumerBus,
    edge: str,
    handler: Callable[[Delivery], Awaitable[None]],
    until: Callable[[], bool],
    **options: Any,
) -> None:
    """Consume `edge` as group `workers` until `until()` holds (then stop cleanly)."""
    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(edge, "workers", handler, stop=stop, **options))
    try:
        for _ in range(1000):
            if until() or task.done():
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_delivery_carries_the_id_it_was_published_under(
    consumer_bus: ConsumerBus,
) -> None:
    sent = [envelope(0), envelope(1)]
    await consumer_bus.publish(sent[0], msg_id="order-0")
    await consumer_bus.publish(sent[1])
    got: list[Delivery] = []

    async def keep(delivery: Delivery) -> None:
        got.append(delivery)

    await consume(consumer_bus, "jobs", keep, lambda: len(got) == 2)
    assert [d.envelope for d in got] == sent  # whole envelopes, Message payloads rebuilt
    assert [d.deliveries for d in got] == [1, 1]
    assert got[0].msg_id == "order-0"
    assert len(got[1].msg_id) == 32  # a fresh id


async def test_publishes_reads_and_acks_go_to_the_broker_in_batches(
    consumer_bus: ConsumerBus,
) -> None:
    count = 300
    before = consumer_bus.stats.round_trips
    await asyncio.gather(*(consumer_bus.publish(envelope(n)) for n in range(count)))
    publish_trips = consumer_bus.stats.round_trips - before
    assert consumer_bus.stats.published == count
    assert publish_trips <= 5  # group commit: one trip per batch, not per message

    seen: list[int] = []

    async def keep(delivery: Delivery) -> None:
        seen.append(delivery.envelope.payload.payload["n"])

    before = consumer_bus.stats.round_trips
    await consume(consumer_bus, "jobs", keep, lambda: len(seen) == count, batch=100)
    assert seen == list(range(count))  # concurrency 1: in publication order
    assert consumer_bus.stats.round_trips - before < count / 10
    assert (consumer_bus.stats.delivered, consumer_bus.stats.acked) == (count, count)
    status = await consumer_bus.group_status("jobs", "workers")
    assert (status.unacked, status.undelivered) == (0, 0)


async def test_group_status_shows_what_is_held_and_what_waits(consumer_bus: ConsumerBus) -> None:
    for n in range(5):
        await consumer_bus.publish(envelope(n))
    release = asyncio.Event()
    holding: list[int] = []

    async def hold(delivery: Delivery) -> None:
        holding.append(delivery.envelope.payload.payload["n"])
        await release.wait()

    stop = asyncio.Event()
    task = asyncio.create_task(
        consumer_bus.consume(
            "jobs", "workers", hold, consumer="c1", batch=2, concurrency=2, stop=stop
        )
    )
    for _ in range(500):
        if len(holding) == 2:
            break
        await asyncio.sleep(0.01)
    status = await consumer_bus.group_status("jobs", "workers")
    by_consumer = {"c1": 2} if isinstance(consumer_bus, RedisStreamsBus) else None
    assert status == GroupStatus(unacked=2, undelivered=3, unacked_by_consumer=by_consumer)
    assert status.outstanding == 5
    release.set()
    for _ in range(500):
        if len(holding) == 5:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sorted(holding) == [0, 1, 2, 3, 4]
    assert (await consumer_bus.group_status("jobs", "workers")).outstanding == 0


async def test_options_out_of_range_raise_typed_errors(consumer_bus: ConsumerBus) -> None:
    async def ignore(delivery: Delivery) -> None:
        return None

    with pytest.raises(InvalidBusOptionError) as caught:
        await consumer_bus.consume("jobs", "workers", ignore, batch=0)
    assert (caught.value.option, caught.value.value) == ("batch", 0)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidBusOptionError) as caught:
        await consumer_bus.publish(envelope(0), msg_id="two words")
    assert caught.value.option == "msg_id"


def test_bad_names_are_refused_before_connecting() -> None:
    with pytest.raises(InvalidBusOptionError, match="prefix must be non-empty"):
        RedisStreamsBus(prefix="app:*")
    with pytest.raises(InvalidBusOptionError, match="stream must be one NATS token"):
        NatsJetStreamBus(stream="a.b")


async def test_an_unreachable_broker_fails_the_publish_with_a_typed_error() -> None:
    bus = RedisStreamsBus("redis://127.0.0.1:1/0", prefix="pfbus-unreachable")
    try:
        with pytest.raises(PublishError) as caught:
            await bus.publish(envelope(0), msg_id="m-1")
    finally:
        await bus.close()
    assert (caught.value.edge, caught.value.msg_id, caught.value.backend) == (
        "jobs",
        "m-1",
        "redis",
    )
    assert isinstance(caught.value.__cause__, BrokerUnavailableError)
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_every_bus_error_joins_the_package_root() -> None:
    classes = [
        value
        for _, value in inspect.getmembers(bus_errors, inspect.isclass)
        if value.__module__ == bus_errors.__name__
    ]
    assert {cls.__name__ for cls in classes} == set(bus_errors.__all__)
    assert all(issubclass(cls, BusError) and issubclass(cls, PenguiflowError) for cls in classes)
    assert issubclass(BusError, RuntimeError)
    assert issubclass(InvalidBusOptionError, InvalidArgumentError)
    assert issubclass(InvalidBusOptionError, ValueError)
    assert issubclass(BrokerUnavailableError, ConnectionError)


async def test_a_batch_handler_settles_each_delivery_by_its_own_outcome(
    consumer_bus: ConsumerBus,
) -> None:
    await consumer_bus.publish_many([envelope(n) for n in range(6)])
    batches: list[list[tuple[int, int]]] = []
    done: set[int] = set()

    async def odd_ones_fail_once(deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        seen = [(d.envelope.payload.payload["n"], d.deliveries) for d in deliveries]
        batches.append(seen)
        outcomes: list[BaseException | None] = []
        for n, attempt in seen:
            if n % 2 and attempt == 1:
                outcomes.append(ValueError(f"{n} is odd"))
            else:
                done.add(n)
                outcomes.append(None)
        return outcomes

    stop = asyncio.Event()
    task = asyncio.create_task(
        consumer_bus.consume_batches(
            "jobs", "workers", odd_ones_fail_once, batch=4, claim_idle_ms=50, stop=stop
        )
    )
    for _ in range(1000):
        if len(done) == 6:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert done == set(range(6))
    assert all(len(seen) <= 4 for seen in batches)  # never more than one read's worth
    attempts = sorted(pair for seen in batches for pair in seen)
    assert attempts == [(0, 1), (1, 1), (1, 2), (2, 1), (3, 1), (3, 2), (4, 1), (5, 1), (5, 2)]
    assert consumer_bus.stats.acked == 6
    assert (await consumer_bus.group_status("jobs", "workers")).outstanding == 0


async def test_publish_many_reports_one_outcome_per_envelope(consumer_bus: ConsumerBus) -> None:
    unencodable = BusEnvelope("jobs", None, None, None, object(), None, None)
    before = consumer_bus.stats.round_trips
    outcomes = await consumer_bus.publish_many(
        [envelope(0), unencodable, envelope(1)], msg_ids=["a-0", None, "a-1"]
    )
    assert [outcome is None for outcome in outcomes] == [True, False, True]
    assert isinstance(outcomes[1], ValueError | TypeError)  # not JSON: only this one fails
    assert consumer_bus.stats.published == 2
    assert consumer_bus.stats.round_trips - before <= 2  # the batch, plus connecting
    with pytest.raises(InvalidBusOptionError) as caught:
        await consumer_bus.publish_many([envelope(2)], msg_ids=[])
    assert caught.value.option == "msg_ids"
