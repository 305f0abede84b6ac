"""A worker running several messages through its flow at once matches every result
to its own message, and a message whose flow fails stays unacknowledged."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.bus import BusEnvelope, Delivery
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.bus.worker import consume_edge, run_worker
from penguiflow.errors import FlowError

from .worker_flow import build_flow


def envelope(payload: Any, edge: str = "in") -> BusEnvelope:
    message = Message(payload=payload, headers=Headers(tenant="t"), trace_id=uuid.uuid4().hex)
    return BusEnvelope(
        edge=edge,
        source=None,
        target=None,
        trace_id=message.trace_id,
        payload=message,
        headers=None,
        meta=None,
    )


async def collect(bus: RedisStreamsBus, edge: str, count: int) -> list[Message]:
    results: list[Message] = []
    done = asyncio.Event()

    async def keep(delivery: Delivery) -> None:
        results.append(delivery.envelope.payload)
        if len(results) >= count:
            done.set()

    task = asyncio.create_task(consume_edge(bus, edge, "collector", keep, batch=64, stop=done))
    await asyncio.wait_for(task, 20)
    return results


async def test_concurrent_messages_each_get_their_own_result(bus: RedisStreamsBus) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            bus, build_flow(), ingress="in", egress="out", batch=16, concurrency=16, stop=stop
        )
    )
    sent = {}
    for value in range(60):
        env = envelope(value)
        sent[env.trace_id] = value
        await bus.publish(env)
    results = await collect(bus, "out", 60)
    stop.set()
    await asyncio.wait_for(worker, 10)
    assert sorted(sent) == sorted(r.trace_id for r in results)
    for result in results:  # the result of trace t is computed from t's own input
        assert result.payload == sent[result.trace_id] * 2 + 1


async def test_a_failing_flow_leaves_the_message_unacknowledged(bus: RedisStreamsBus) -> None:
    async def boom(message: Message, _ctx: Any) -> Message:
        raise RuntimeError("no")

    flow = create(Node(boom, name="boom", policy=NodePolicy(validate="none")).to())
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            bus,
            flow,
            ingress="in",
            egress="out",
            concurrency=4,
            claim_idle_ms=50,
            max_deliveries=2,
            stop=stop,
        )
    )
    sent = envelope(1)
    await bus.publish(sent)
    client = await bus.redis()
    dead = bus.dead_letter_stream("in")
    for _ in range(200):
        if await client.xlen(dead):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(worker, 10)
    assert await client.xlen(dead) == 1  # retried, then dead-lettered; never acked as done
    # No result reaches the egress edge: only the report of the last attempt's failure.
    assert await client.xlen(bus.stream("out")) == 1
    (report,) = await collect(bus, "out", 1)
    assert isinstance(report, FlowError)
    assert (report.trace_id, report.node_name, report.code) == (
        sent.trace_id,
        "boom",
        "NODE_EXCEPTION",
    )


async def test_the_worker_shares_the_flow_failure_hook_with_other_subscribers(
    bus: RedisStreamsBus,
) -> None:
    async def boom(message: Message, _ctx: Any) -> Message:
        raise RuntimeError("no")

    flow = create(Node(boom, name="boom", policy=NodePolicy(validate="none")).to())
    seen: list[FlowError] = []
    flow.hooks.node_failed.append(seen.append)  # a subscriber of our own, first
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            bus, flow, ingress="in", egress="out", claim_idle_ms=50, max_deliveries=2, stop=stop
        )
    )
    sent = envelope(1)
    await bus.publish(sent)
    client = await bus.redis()
    for _ in range(200):
        if await client.xlen(bus.dead_letter_stream("in")):
            break
        await asyncio.sleep(0.02)
    assert len(flow.hooks.node_failed) == 2  # ours and the worker's, side by side
    stop.set()
    await asyncio.wait_for(worker, 10)
    assert flow.hooks.node_failed == [seen.append]  # the worker removed only its own
    assert [(e.trace_id, e.node_name) for e in seen] == [(sent.trace_id, "boom")] * 2
