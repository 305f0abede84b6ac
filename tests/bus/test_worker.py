"""Three worker processes share one flow's load through a bus (Redis Streams and NATS
JetStream); killing one mid-run with SIGKILL loses nothing (its unacknowledged messages
are delivered again to the others)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from penguiflow import Headers, Message
from penguiflow.bus import BusEnvelope, Delivery
from penguiflow.bus.nats_jetstream import NatsJetStreamBus
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.bus.worker import Bus, consume_edge, durable_name, main

from ..state.conftest import REDIS_URL
from .conftest import NATS_URL, nats_bus, redis_bus

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 90


@dataclass
class Backend:
    name: str
    bus: Bus
    cli: list[str]  # the worker options selecting this bus


async def _redis_backend() -> AsyncIterator[Backend]:
    async for bus in redis_bus():
        yield Backend("redis", bus, ["--redis", REDIS_URL, "--prefix", bus.prefix])


async def _nats_backend() -> AsyncIterator[Backend]:
    async for bus in nats_bus():
        cli = ["--nats", NATS_URL, "--stream", bus.stream_name, "--prefix", bus.prefix]
        yield Backend("nats", bus, cli)


@pytest.fixture(params=["redis", "nats"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    make = _redis_backend if request.param == "redis" else _nats_backend
    async for value in make():
        yield value


def start_worker(backend: Backend, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = [
        sys.executable,
        "-m",
        "penguiflow.bus.worker",
        "--flow",
        "tests.bus.worker_flow:build_flow",
        *backend.cli,
        "--ingress",
        "jobs",
        "--egress",
        "results",
        "--consumer",
        name,
        "--claim-idle-ms",
        "300",
    ]
    with log.open("wb") as stderr:
        return subprocess.Popen(command, env=env, stderr=stderr)


async def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def pending(backend: Backend) -> int:
    """Messages of the ingress edge delivered but not acknowledged, or not delivered."""
    status = await backend.bus.group_status("jobs", "workers")
    return status.outstanding


async def test_three_workers_process_every_message_even_when_one_is_killed(
    backend: Backend, tmp_path: Path
) -> None:
    bus = backend.bus
    results: dict[str, Message] = {}  # by ingress message id: duplicates dropped here
    deliveries: list[int] = []

    async def collect(delivery: Delivery) -> None:
        message = delivery.envelope.payload
        results.setdefault(message.meta["ingress_msg_id"], message)
        deliveries.append(message.meta["ingress_deliveries"])

    stop = asyncio.Event()
    collector = asyncio.create_task(consume_edge(bus, "results", "collector", collect, stop=stop))
    names = ["w0", "w1", "w2"]
    workers = [start_worker(backend, n, tmp_path / f"{n}.log") for n in names]
    try:
        logs = [tmp_path / f"{n}.log" for n in names]
        await wait_until(lambda: all(b"consuming" in log.read_bytes() for log in logs))
        sent = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(MESSAGES)]
        for message in sent:
            await bus.publish(
                BusEnvelope("jobs", "client", "jobs", message.trace_id, message, None, None)
            )

        def w0_busy() -> bool:
            return sum(m.meta["worker"] == "w0" for m in results.values()) >= 3

        await wait_until(w0_busy)
        assert w0_busy(), "worker w0 never got going"
        assert len(results) < MESSAGES  # killed mid-run
        workers[0].send_signal(signal.SIGKILL)  # dies, usually holding a message
        workers[0].wait(timeout=10)
        # Did w0 die holding a message? Redis knows exactly; on NATS each live worker
        # (batch 1) holds at most one, so more than two unacknowledged means yes.
        status = await bus.group_status("jobs", "workers")
        if status.unacked_by_consumer is not None:
            held = status.unacked_by_consumer.get("w0", 0)
        else:
            held = max(0, status.unacked - 2)

        await wait_until(lambda: len(results) >= MESSAGES)
        by_trace = {m.trace_id: m for m in results.values()}
        assert len(by_trace) == MESSAGES  # 0 lost
        assert {by_trace[m.trace_id].payload for m in sent} == {i * 2 + 1 for i in range(MESSAGES)}
        workers_seen = {m.meta["worker"] for m in results.values()}
        assert {"w1", "w2"} <= workers_seen  # the load was shared
        if held and isinstance(bus, RedisStreamsBus):  # w0's messages were delivered again
            assert max(deliveries) >= 2
        elif held:  # (on NATS a repeated result is dropped by its Nats-Msg-Id; count deliveries)
            assert isinstance(bus, NatsJetStreamBus)
            js = await bus.jetstream()
            info = await js.consumer_info(bus.stream_name, durable_name("workers", "jobs"))
            assert info.delivered.consumer_seq > MESSAGES
        deadline = time.monotonic() + 5
        while await pending(backend) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await pending(backend) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        stop.set()
        await asyncio.wait_for(collector, 5)
    assert [w.returncode for w in workers[1:]] == [0, 0], [
        (tmp_path / f"{n}.log").read_text()[-2000:] for n in names[1:]
    ]


def test_the_worker_needs_exactly_one_bus(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--flow", "tests.bus.worker_flow:build_flow", "--ingress", "a", "--egress", "b"]
    with pytest.raises(SystemExit) as exc_info:
        main(base)
    assert exc_info.value.code == 2
    assert "one of the arguments --redis --nats is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--redis", REDIS_URL, "--nats", NATS_URL])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--redis", REDIS_URL, "--stream", "S"])
    assert "--stream applies to --nats only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--nats", NATS_URL, "--prefix", "not.one.token"])
    assert "prefix must be one NATS token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base[2:], "--flow", "nope", "--redis", REDIS_URL])
    assert "module:callable" in capsys.readouterr().err


def test_each_edge_gets_its_own_nats_durable() -> None:
    assert durable_name("workers", "jobs") == "workers_jobs"
    odd = durable_name("workers", "a->b.c")
    assert odd.startswith("workers_a-_b_c-")
    assert odd != durable_name("workers", "a->b_c")
