"""NatsJetStreamBus on the real NATS server: durable consumers with explicit acks,
redelivery after a dead consumer, de-duplication by message id, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.bus import BusEnvelope, Delivery
from penguiflow.bus.nats_jetstream import NatsJetStreamBus

from .conftest import nats_bus


@pytest.fixture
async def bus() -> AsyncIterator[NatsJetStreamBus]:
    async for value in nats_bus():
        yield value


async def consume_until(
    bus: NatsJetStreamBus, edge: str, handler: Any, done: asyncio.Event, **kw: Any
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(edge, "workers", handler, stop=stop, **kw))
    try:
        await asyncio.wait_for(done.wait(), 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_flow_publishes_and_a_durable_consumer_acks(bus: NatsJetStreamBus) -> None:
    async def echo(message: Message, ctx: Any) -> Message:
        return message

    node = Node(echo, name="node.with.dots", policy=NodePolicy(validate="none"))
    flow = create(node.to(), message_bus=bus)
    flow.run()
    sent = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(4)]
    try:
        for message in sent:
            await flow.emit(message)
        for _ in sent:
            await flow.fetch()
    finally:
        await flow.stop()
    got: list[Delivery] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        got.append(delivery)
        if len(got) == 4:
            done.set()

    await consume_until(bus, "OpenSea->node.with.dots", handle, done)
    assert [d.envelope.payload.payload for d in got] == [0, 1, 2, 3]
    assert [d.envelope.trace_id for d in got] == [m.trace_id for m in sent]
    assert all(d.deliveries == 1 for d in got)


async def test_a_message_id_published_twice_is_stored_once(bus: NatsJetStreamBus) -> None:
    envelope = BusEnvelope("a->b", "a", "b", "t", {"n": 1}, None, None)
    await bus.publish(envelope, msg_id="same-id")
    await bus.publish(envelope, msg_id="same-id")
    await bus.publish(envelope, msg_id="other-id")
    js = await bus.jetstream()
    info = await js.stream_info(bus.stream_name)
    assert info.state.messages == 2


async def test_unacknowledged_messages_are_redelivered(bus: NatsJetStreamBus) -> None:
    await bus.publish(BusEnvelope("a->b", "a", "b", "t", {"n": 7}, None, None))
    seen: list[int] = []
    done = asyncio.Event()

    async def crash_first(delivery: Delivery) -> None:
        seen.append(delivery.deliveries)
        if delivery.deliveries == 1:
            raise RuntimeError("consumer died mid-handler")
        done.set()

    await consume_until(bus, "a->b", crash_first, done, claim_idle_ms=1000)
    assert seen == [1, 2]


async def test_a_message_that_keeps_failing_is_dead_lettered(bus: NatsJetStreamBus) -> None:
    await bus.publish(BusEnvelope("a->poison", "a", "poison", "t", {"bad": True}, None, None))
    attempts: list[int] = []
    done = asyncio.Event()

    async def always_fail(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        if len(attempts) == 3:
            asyncio.get_running_loop().call_later(0.3, done.set)
        raise RuntimeError("poison")

    await consume_until(bus, "a->poison", always_fail, done, max_deliveries=3)
    assert attempts == [1, 2, 3]
    js = await bus.jetstream()
    message = await js.get_last_msg(bus.stream_name, bus.dead_letter_subject("a->poison"))
    assert b'"bad": true' in message.data


async def test_a_stopped_consumer_strands_nothing_for_the_ack_wait(bus: NatsJetStreamBus) -> None:
    """A consumer that stops while its pull request is open (nothing to read yet) must
    not leave that request to swallow the next messages until their ack wait ends."""
    edge = "stranding"
    stop = asyncio.Event()

    async def never(delivery: Delivery) -> None:
        raise AssertionError("the stopped consumer must not handle anything")

    first = asyncio.create_task(
        bus.consume(edge, "workers", never, batch=64, claim_idle_ms=30_000, stop=stop)
    )
    await asyncio.sleep(0.3)  # its pull request is open on the server
    stop.set()
    await asyncio.wait_for(first, 5)
    sent = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(8)]
    for message in sent:
        await bus.publish(BusEnvelope(edge, "t", edge, message.trace_id, message, None, None))
    got: list[Any] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        got.append(delivery.envelope.payload.payload)
        if len(got) == len(sent):
            done.set()

    started = asyncio.get_running_loop().time()
    await consume_until(bus, edge, handle, done, claim_idle_ms=30_000)
    assert sorted(got) == list(range(8))
    assert asyncio.get_running_loop().time() - started < 5  # not the 30 s ack wait


async def test_a_backlog_is_read_in_whole_batches(bus: NatsJetStreamBus) -> None:
    """Messages already on the edge come in full batches, not a few at a time."""
    edge = "backlog"
    sent = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(300)]
    envelopes = [BusEnvelope(edge, "t", edge, m.trace_id, m, None, None) for m in sent]
    assert await bus.publish_many(envelopes) == [None] * len(sent)
    sizes: list[int] = []
    done = asyncio.Event()

    async def handle(deliveries: Any) -> list[None]:
        sizes.append(len(deliveries))
        if sum(sizes) == len(sent):
            done.set()
        return [None] * len(deliveries)

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume_batches(edge, "workers", handle, batch=128, stop=stop))
    try:
        await asyncio.wait_for(done.wait(), 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sizes == [128, 128, 44]
