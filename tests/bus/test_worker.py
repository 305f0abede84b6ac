"""Three worker processes share one flow's load through Redis Streams; killing one
loses nothing (its pending messages are reclaimed by the others)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from penguiflow import Headers, Message
from penguiflow.bus import BusEnvelope
from penguiflow.bus._codec import decode_envelope

ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ.get("PENGUIFLOW_TEST_REDIS", "redis://127.0.0.1:6379/15")


def start_worker(prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "penguiflow.bus.worker",
            "--flow",
            "tests.bus.worker_flow:build_flow",
            "--redis",
            REDIS,
            "--prefix",
            prefix,
            "--ingress",
            "jobs",
            "--egress",
            "results",
            "--claim-idle-ms",
            "300",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )


async def results(bus: Any, want: int, timeout: float = 30) -> dict[str, Message]:
    client = await bus._redis()
    deadline = time.monotonic() + timeout
    seen: dict[str, Message] = {}
    while time.monotonic() < deadline:
        entries = await client.xrange(bus.stream("results"))
        for _, fields in entries:
            _, envelope = decode_envelope(fields)
            message = envelope.payload
            seen.setdefault(message.meta["ingress_msg_id"], message)
        if len({m.trace_id for m in seen.values()}) >= want:
            break
        await asyncio.sleep(0.05)
    return seen


async def test_three_workers_process_every_message_even_when_one_is_killed(bus: Any) -> None:
    workers = [start_worker(bus._prefix) for _ in range(3)]
    try:
        sent = [Message(payload=i, headers=Headers(tenant="acme")) for i in range(60)]
        for message in sent[:30]:
            await bus.publish(
                BusEnvelope("jobs", "client", "jobs", message.trace_id, message, None, None)
            )
        first = await results(bus, 30)
        assert len({m.trace_id for m in first.values()}) == 30

        workers[0].send_signal(signal.SIGKILL)  # dies, possibly holding pending messages
        workers[0].wait(timeout=10)
        for message in sent[30:]:
            await bus.publish(
                BusEnvelope("jobs", "client", "jobs", message.trace_id, message, None, None)
            )
        done = await results(bus, 60)
        by_trace = {m.trace_id: m for m in done.values()}
        assert len(by_trace) == 60  # 0 lost
        assert {by_trace[m.trace_id].payload for m in sent} == {i * 2 + 1 for i in range(60)}
        assert len({m.meta["worker"] for m in done.values()}) >= 2  # the load was shared
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
    client = await bus._redis()
    pending = await client.xpending(bus.stream("jobs"), "workers")
    assert pending["pending"] == 0
