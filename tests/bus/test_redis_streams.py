"""RedisStreamsBus on the real Redis: publish from a flow, consume with acks, reclaim
what a dead consumer left pending, dead-letter what keeps failing."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.bus import BusEnvelope, Delivery
from penguiflow.bus.redis_streams import RedisStreamsBus


async def consume_until(
    bus: RedisStreamsBus, edge: str, consumer: str, handler: Any, done: asyncio.Event, **kw: Any
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        bus.consume(edge, "workers", handler, consumer=consumer, poll_ms=20, stop=stop, **kw)
    )
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_flow_publishes_every_edge_and_a_group_consumes_with_acks(
    bus: RedisStreamsBus,
) -> None:
    async def shout(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": message.payload.upper()})

    node = Node(shout, name="shout", policy=NodePolicy(validate="none"))
    flow = create(node.to(), message_bus=bus)
    flow.run()
    sent = [Message(payload=f"m{i}", headers=Headers(tenant="acme")) for i in range(5)]
    try:
        for message in sent:
            await flow.emit(message)
        results = [await flow.fetch() for _ in sent]
    finally:
        await flow.stop()
    assert [r.payload for r in results] == ["M0", "M1", "M2", "M3", "M4"]

    seen: list[Delivery] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery)
        if len(seen) == 5:
            done.set()

    await consume_until(bus, "OpenSea->shout", "c1", handle, done)
    assert [d.envelope.payload.payload for d in seen] == ["m0", "m1", "m2", "m3", "m4"]
    assert all(isinstance(d.envelope.payload, Message) for d in seen)
    assert seen[0].envelope.trace_id == sent[0].trace_id
    assert seen[0].envelope.headers == {"tenant": "acme", "topic": None, "priority": 0}
    assert len({d.msg_id for d in seen}) == 5
    client = await bus.redis()
    pending = await client.xpending(bus.stream("OpenSea->shout"), "workers")
    assert pending["pending"] == 0
    assert await client.xlen(bus.stream("shout->Rookery")) == 5


async def test_entries_a_dead_consumer_left_pending_are_reclaimed(bus: RedisStreamsBus) -> None:
    edge = "a->b"
    for i in range(3):
        await bus.publish(BusEnvelope(edge, "a", "b", f"t{i}", {"n": i}, None, None))
    await bus.ensure_group(edge, "workers")
    client = await bus.redis()
    # A consumer takes everything, then dies before acknowledging.
    await client.xreadgroup("workers", "dead", {bus.stream(edge): ">"}, count=10)

    got: list[Delivery] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        got.append(delivery)
        if len(got) == 3:
            done.set()

    await consume_until(bus, edge, "alive", handle, done, claim_idle_ms=50)
    assert sorted(d.envelope.payload["n"] for d in got) == [0, 1, 2]
    assert all(d.deliveries == 2 for d in got)
    assert (await client.xpending(bus.stream(edge), "workers"))["pending"] == 0


async def test_an_entry_that_keeps_failing_goes_to_the_dead_letter_stream(
    bus: RedisStreamsBus,
) -> None:
    edge = "a->poison"
    await bus.publish(BusEnvelope(edge, "a", "poison", "t", {"bad": True}, None, None))
    attempts: list[int] = []
    done = asyncio.Event()
    client = await bus.redis()

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise RuntimeError("cannot handle this")

    async def watch() -> None:
        while not await client.xlen(bus.dead_letter_stream(edge)):
            await asyncio.sleep(0.01)
        done.set()

    watcher = asyncio.create_task(watch())
    await consume_until(bus, edge, "c", handle, done, claim_idle_ms=10, max_deliveries=3)
    await watcher
    assert attempts == [1, 2, 3]
    assert (await client.xpending(bus.stream(edge), "workers"))["pending"] == 0


async def test_duplicates_are_recognisable_by_msg_id(bus: RedisStreamsBus) -> None:
    edge = "a->idem"
    await bus.publish(BusEnvelope(edge, "a", "idem", "t", {"n": 1}, None, None))
    await bus.ensure_group(edge, "workers")
    client = await bus.redis()
    await client.xreadgroup("workers", "crashed", {bus.stream(edge): ">"}, count=1)
    effects: dict[str, int] = {}
    deliveries: list[str] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        deliveries.append(delivery.msg_id)
        effects.setdefault(delivery.msg_id, delivery.envelope.payload["n"])  # idempotent
        done.set()

    await consume_until(bus, edge, "c", handle, done, claim_idle_ms=10)
    assert len(effects) == 1
    assert deliveries[0] in effects
