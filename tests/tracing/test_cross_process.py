"""One run across three processes is one OpenTelemetry trace: a client's tool calls an
A2A agent (another process) over HTTP and enqueues a job for a bus worker (a third
process, on real Redis); each process exports its spans over OTLP/HTTP to one
receiver, and every span shares the client's trace id, each remote flow hanging
under the client span that called it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("uvicorn", reason="the a2a-server extra is not installed")
pytest.importorskip("httpx_sse", reason="the a2a-client extra is not installed")

from penguiflow import Headers, Message
from penguiflow.bus import BusEnvelope, Delivery
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.bus.worker import consume_edge
from penguiflow.remote import RemoteCallRequest
from penguiflow.tracing.emitter import SpanEmitter
from penguiflow.tracing.otel import OTelExporter
from penguiflow.transports import A2AHttpTransport

from ..a2a.conftest import free_port
from ..bus.conftest import redis_bus
from ..state.conftest import REDIS_URL
from .otel_fixtures import Receiver, otlp_receiver
from .otel_services import otlp_provider

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as value:
        yield value


@pytest.fixture
async def bus() -> AsyncIterator[RedisStreamsBus]:
    async for value in redis_bus():
        yield value


def environment(service: str, receiver: Receiver) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
        "PF_TEST_SERVICE": service,
        "PF_TEST_OTLP_URL": receiver.url,
    }


@contextlib.contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def wait_for(check: object, child: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if child.poll() is not None:
            raise RuntimeError(f"process exited with {child.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"process not ready: {log.read_text()}")
        time.sleep(0.05)


def agent_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/.well-known/agent-card.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def test_a_run_across_three_processes_is_one_trace(
    receiver: Receiver, bus: RedisStreamsBus, tmp_path: Path
) -> None:
    port = free_port()
    agent_url = f"http://127.0.0.1:{port}"
    agent_log, worker_log = tmp_path / "agent.log", tmp_path / "worker.log"
    agent_command = [
        sys.executable,
        "-m",
        "penguiflow_a2a.serve",
        "tests.tracing.otel_services:agent_app",
        "--port",
        str(port),
    ]
    worker_command = [
        sys.executable,
        "-m",
        "penguiflow.bus.worker",
        "--flow",
        "tests.tracing.otel_services:worker_flow",
        "--redis",
        REDIS_URL,
        "--prefix",
        bus.prefix,
        "--ingress",
        "jobs",
        "--egress",
        "results",
    ]
    provider = otlp_provider("client", receiver.url)
    emitter = SpanEmitter([OTelExporter(provider)])
    with (
        process(agent_command, environment("agent", receiver), agent_log) as agent,
        process(worker_command, environment("worker", receiver), worker_log) as worker,
    ):
        wait_for(lambda: agent_ready(agent_url), agent, agent_log)
        wait_for(lambda: b"consuming" in worker_log.read_bytes(), worker, worker_log)

        results: list[Message] = []
        got_result = asyncio.Event()

        async def keep(delivery: Delivery) -> None:
            results.append(delivery.envelope.payload)
            got_result.set()

        run = emitter.open("run", "client", parent=None)
        run_token = emitter.enter(run)
        call = emitter.open("tool", "ask_agent", parent=run, attributes={"tool": "ask_agent"})
        call_token = emitter.enter(call)
        async with A2AHttpTransport(allow_private=True) as transport:
            message = Message(payload="hi", headers=Headers(tenant="t"))
            reply = await transport.send(
                RemoteCallRequest(message=message, skill="answer", agent_url=agent_url)
            )
        emitter.exit(call_token)
        emitter.close(call)
        enqueue = emitter.open("tool", "enqueue", parent=run, attributes={"tool": "enqueue"})
        enqueue_token = emitter.enter(enqueue)
        job = Message(payload=21, headers=Headers(tenant="t"))
        await bus.publish(BusEnvelope("jobs", "client", "jobs", job.trace_id, job, None, None))
        emitter.exit(enqueue_token)
        emitter.close(enqueue)
        await asyncio.wait_for(consume_edge(bus, "results", "collector", keep, stop=got_result), 30)
        emitter.exit(run_token)
        emitter.close(run)
        provider.shutdown()
        # client: run + 2 tools; agent: flow + node; worker: flow + node
        spans = receiver.wait_for(7, timeout=20)

    assert reply.result == {"answer": "hi"}
    assert [m.payload for m in results] == [42]
    named = {(span.service, span.name): span for span in spans}
    assert sorted(named) == [
        ("agent", "flow flow"),
        ("agent", "node answer"),
        ("client", "execute_tool ask_agent"),
        ("client", "execute_tool enqueue"),
        ("client", "invoke_agent client"),
        ("worker", "flow flow"),
        ("worker", "node double"),
    ]
    assert len({span.trace_id for span in spans}) == 1, "the spans are not one trace"
    parent_of = {key: span.parent_span_id for key, span in named.items()}
    span_id = {key: span.span_id for key, span in named.items()}
    assert parent_of[("agent", "flow flow")] == span_id[("client", "execute_tool ask_agent")]
    assert parent_of[("worker", "flow flow")] == span_id[("client", "execute_tool enqueue")]
    assert parent_of[("agent", "node answer")] == span_id[("agent", "flow flow")]
    assert parent_of[("worker", "node double")] == span_id[("worker", "flow flow")]
