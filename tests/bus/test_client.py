"""`BusClient` on the real Redis and NATS servers, through public names only: send a
payload to a flow served by workers and await its result by trace id; a failed trace
raises its `FlowError`, a late one `ResultTimeoutError`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from penguiflow import Headers, Message, Node, NodePolicy, PenguiFlow, create
from penguiflow.bus import (
    BrokerUnavailableError,
    BusClient,
    BusError,
    InvalidBusOptionError,
    ResultTimeoutError,
)
from penguiflow.bus.nats_jetstream import NatsJetStreamBus, durable_name
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.bus.worker import run_worker
from penguiflow.errors import FlowError, PenguiflowError

from ..state.conftest import REDIS_URL
from .conftest import NATS_URL, nats_bus, redis_bus
from .worker_flow import build_flow

ROOT = Path(__file__).resolve().parents[2]
Bus = RedisStreamsBus | NatsJetStreamBus


@pytest.fixture(params=["redis", "nats"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    make = redis_bus if request.param == "redis" else nats_bus
    async for value in make():
        yield value


@asynccontextmanager
async def serving(bus: Bus, flow: PenguiFlow, **options: Any) -> AsyncIterator[None]:
    """A worker (in this process) running `flow` on edge `in`, results to `out`."""
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(bus, flow, ingress="in", egress="out", stop=stop, **options)
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(worker, 15)


def failing_flow(attempts: list[str], **options: Any) -> PenguiFlow:
    async def boom(message: Message, _ctx: Any) -> Message:
        attempts.append(message.trace_id)
        raise RuntimeError(f"cannot handle {message.payload!r}")

    return create(Node(boom, name="boom", policy=NodePolicy(validate="none")).to(), **options)


async def group_names(bus: Bus, edge: str) -> set[str]:
    """The consumer groups on `edge` (NATS: the durables' names)."""
    if isinstance(bus, RedisStreamsBus):
        client = await bus.redis()
        if not await client.exists(bus.stream(edge)):
            return set()
        return {g["name"] for g in await client.xinfo_groups(bus.stream(edge))}
    js = await bus.jetstream()
    return {info.name for info in await js.consumers_info(bus.stream_name)}


async def test_call_returns_the_result_message(bus: Bus) -> None:
    async with serving(bus, build_flow()), BusClient(bus, ingress="in", egress="out") as client:
        reply = await client.call(20, timeout_s=15)
        assert reply.payload == 41  # doubled, plus one
        assert reply.headers.tenant == "default"
        assert reply.meta["ingress_deliveries"] == 1
        assert reply.meta["ingress_msg_id"]
        mine = Message(payload=1, headers=Headers(tenant="acme"), meta={"order": 7})
        reply = await client.call(mine, timeout_s=15)
        assert (reply.payload, reply.trace_id) == (3, mine.trace_id)
        assert (reply.headers.tenant, reply.meta["order"]) == ("acme", 7)


async def test_results_are_awaited_by_trace_id_in_any_order(bus: Bus) -> None:
    async with (
        serving(bus, build_flow(), batch=8, concurrency=8),
        BusClient(bus, ingress="in", egress="out", headers=Headers(tenant="t1")) as client,
    ):
        trace_ids = {await client.submit(n): n for n in range(30)}
        assert len(trace_ids) == 30
        custom = await client.submit(100, trace_id="my-trace-1")
        assert custom == "my-trace-1"
        for trace_id in reversed(list(trace_ids)):
            reply = await client.result(trace_id, timeout_s=15)
            assert reply.trace_id == trace_id
            assert reply.payload == trace_ids[trace_id] * 2 + 1
            assert reply.headers.tenant == "t1"
        assert (await client.result("my-trace-1", timeout_s=15)).payload == 201


async def test_a_trace_that_fails_in_the_worker_raises_its_flow_error(bus: Bus) -> None:
    attempts: list[str] = []
    flow = failing_flow(attempts)
    options = {"max_deliveries": 2, "claim_idle_ms": 100}
    async with serving(bus, flow, **options), BusClient(bus, ingress="in", egress="out") as client:
        trace_id = await client.submit("poison")
        with pytest.raises(FlowError) as raised:
            await client.result(trace_id, timeout_s=15)
    error = raised.value
    assert attempts == [trace_id, trace_id]  # reported once its last attempt failed
    assert (error.trace_id, error.node_name, error.code) == (trace_id, "boom", "NODE_EXCEPTION")
    assert error.exception_type == "RuntimeError"
    assert "cannot handle 'poison'" in error.message
    status = await bus.group_status("in", "workers")
    assert status.outstanding == 0  # dead-lettered, not left pending


async def test_a_flow_delivering_its_errors_as_results_raises_them_too(bus: Bus) -> None:
    attempts: list[str] = []
    flow = failing_flow(attempts, emit_errors_to_rookery=True)
    async with serving(bus, flow), BusClient(bus, ingress="in", egress="out") as client:
        with pytest.raises(FlowError) as raised:
            await client.call({"n": 1}, timeout_s=15)
    assert raised.value.node_name == "boom"
    assert len(attempts) == 1  # the error was the result: acknowledged, not retried
    assert (await bus.group_status("in", "workers")).outstanding == 0


async def test_no_result_in_time_raises_a_typed_timeout_and_waiting_again_works(
    bus: Bus,
) -> None:
    async with BusClient(bus, ingress="in", egress="out") as client:
        trace_id = await client.submit(5)
        with pytest.raises(ResultTimeoutError) as raised:
            await client.result(trace_id, timeout_s=0.2)  # no worker yet
        error = raised.value
        assert isinstance(error, TimeoutError)
        assert isinstance(error, BusError)
        assert isinstance(error, PenguiflowError)
        assert (error.trace_id, error.timeout_s) == (trace_id, 0.2)
        assert "'in'" in str(error)
        async with serving(bus, build_flow()):
            assert (await client.result(trace_id, timeout_s=15)).payload == 11
        with pytest.raises(ResultTimeoutError):
            await client.call(1, timeout_s=0.2)


async def test_two_clients_on_the_same_edges_each_get_their_own_results(bus: Bus) -> None:
    async with (
        serving(bus, build_flow(), concurrency=4, batch=4),
        BusClient(bus, ingress="in", egress="out") as first,
        BusClient(bus, ingress="in", egress="out") as second,
    ):
        assert first.group != second.group
        ones = [await first.submit(n) for n in range(10)]
        twos = [await second.submit(n + 100) for n in range(10)]
        got_first = [(await first.result(t, timeout_s=15)).payload for t in ones]
        got_second = [(await second.result(t, timeout_s=15)).payload for t in twos]
    assert got_first == [n * 2 + 1 for n in range(10)]
    assert got_second == [(n + 100) * 2 + 1 for n in range(10)]


async def test_closing_a_client_deletes_its_group_and_ends_its_waits(bus: Bus) -> None:
    client = BusClient(bus, ingress="in", egress="out")
    await client.start()
    name = client.group if isinstance(bus, RedisStreamsBus) else durable_name(client.group, "out")
    assert name in await group_names(bus, "out")
    trace_id = await client.submit(1)
    waiting = asyncio.create_task(client.result(trace_id))
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(BusError, match="closed"):
        await waiting
    assert name not in await group_names(bus, "out")
    with pytest.raises(BusError, match="closed"):
        await client.submit(2)
    await client.close()  # twice is fine


@contextmanager
def worker_process(options: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "penguiflow.bus.worker", "--flow"]
    command += ["tests.bus.worker_flow:build_flow", *options, "--ingress", "in", "--egress", "out"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


async def test_a_client_opened_from_a_url_calls_a_worker_process(bus: Bus) -> None:
    if isinstance(bus, RedisStreamsBus):
        url, stream = REDIS_URL, None
        options = ["--redis", url, "--prefix", bus.prefix]
    else:
        url, stream = NATS_URL, bus.stream_name
        options = ["--nats", url, "--stream", stream, "--prefix", bus.prefix]
    with worker_process(options) as process:
        client = BusClient(url, prefix=bus.prefix, stream=stream, ingress="in", egress="out")
        async with client:
            assert type(client.bus) is type(bus)
            replies = [await client.call(n, timeout_s=30) for n in range(3)]
        assert process.poll() is None
    assert [r.payload for r in replies] == [1, 3, 5]
    assert process.returncode == 0


async def test_wrong_uses_are_typed_errors(bus: Bus) -> None:
    with pytest.raises(InvalidBusOptionError, match="RedisStreamsBus, a NatsJetStreamBus"):
        BusClient(object(), ingress="in", egress="out")  # type: ignore[arg-type]
    with pytest.raises(InvalidBusOptionError, match="redis://HOST"):
        BusClient("http://127.0.0.1:6379", ingress="in", egress="out")
    with pytest.raises(InvalidBusOptionError, match="own"):
        BusClient(bus, prefix="other", ingress="in", egress="out")
    with pytest.raises(InvalidBusOptionError, match="egress"):
        BusClient(bus, ingress="in", egress="")
    client = BusClient(bus, ingress="in", egress="out")
    with pytest.raises(BusError, match="not started"):
        await client.submit(1)
    async with client:
        message = Message(payload=1, headers=Headers(tenant="a"))
        with pytest.raises(InvalidBusOptionError, match="brings its own"):
            await client.submit(message, trace_id="x")
        await client.submit(message)
        with pytest.raises(InvalidBusOptionError, match="already waiting"):
            await client.submit(message)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "nats://127.0.0.1:1"])
async def test_an_unreachable_broker_fails_start(url: str) -> None:
    client = BusClient(url, ingress="in", egress="out")
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1"):
        await client.start()
    await client.close()
