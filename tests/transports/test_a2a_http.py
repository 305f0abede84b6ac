"""`A2AHttpTransport`: a `RemoteNode` calls a flow served by `create_a2a_app` over
HTTP — in another process, streaming, cancelled mid-stream — and the transport's
outbound safety rules hold across redirects."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("httpx_sse", reason="the a2a-client extra is not installed")

from penguiflow import Headers, Message, NodePolicy, RemoteNode, create
from penguiflow.metrics import FlowEvent
from penguiflow.remote import RemoteCallRequest
from penguiflow.transports import A2AHttpTransport, RemoteCallError, UnsafeURLError
from penguiflow.types import StreamChunk
from penguiflow_a2a import create_a2a_app

from ..a2a.conftest import adapter_for, chatter_flow, free_port, served

ROOT = Path(__file__).resolve().parents[2]
NO_VALIDATION = NodePolicy(validate="none")


def message(payload: Any, trace_id: str = "t-1") -> Message:
    return Message(payload=payload, headers=Headers(tenant="local"), trace_id=trace_id)


@contextlib.contextmanager
def agent_process(app: str) -> Iterator[str]:
    """Serve `tests.transports.agent_app:<app>` in a separate uvicorn process."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "penguiflow_a2a.serve",
            f"tests.transports.agent_app:{app}",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"agent process exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/.well-known/agent-card.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class Recorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.event_type for e in self.events if e.event_type.startswith("remote_")]


@contextlib.asynccontextmanager
async def calling_flow(
    transport: A2AHttpTransport, url: str, *, streaming: bool = False, recorder: Any = None
) -> AsyncIterator[Any]:
    """A running flow of one `RemoteNode` calling the agent at `url`; stopped on exit."""
    remote = RemoteNode(
        transport=transport,
        skill="skill",
        agent_url=f"{url}/",
        name="remote",
        policy=NO_VALIDATION,
        streaming=streaming,
    )
    flow = create(remote.to(), middlewares=[recorder] if recorder is not None else None)
    flow.run()
    try:
        yield flow
    finally:
        await flow.stop()


async def wait_idle(adapter: Any) -> None:
    """Wait (up to 3 s) until the agent has no task and no trace left."""
    for _ in range(300):
        if adapter.active_tasks == 0 and not adapter.flow.traces.active():
            return
        await asyncio.sleep(0.01)


async def test_a_remote_node_calls_a_flow_served_in_another_process() -> None:
    with agent_process("echo_app") as url:
        async with A2AHttpTransport(allow_private=True) as transport:
            recorder = Recorder()
            async with calling_flow(transport, url, recorder=recorder) as flow:
                await flow.emit(message({"q": "hello"}))
                result = await asyncio.wait_for(flow.fetch(), 10)
    assert result == {"echo": {"q": "hello"}}
    assert recorder.kinds() == ["remote_call_start", "remote_call_success"]
    success = next(e for e in recorder.events if e.event_type == "remote_call_success").extra
    assert success["remote_transport"] == "A2AHttpTransport"
    assert success["remote_task_id"]


async def test_streaming_chunks_arrive_in_order_with_no_gaps() -> None:
    adapter = adapter_for(chatter_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        A2AHttpTransport(allow_private=True) as transport,
    ):
        async with calling_flow(transport, url, streaming=True) as flow:
            await flow.emit(message({"chunks": 50}))
            received: list[Any] = []
            while not received or isinstance(received[-1], Message):
                received.append(await asyncio.wait_for(flow.fetch(), 10))
    chunks = [item.payload for item in received[:-1]]
    assert all(isinstance(chunk, StreamChunk) for chunk in chunks)
    assert [chunk.text for chunk in chunks] == [f"part {i}" for i in range(50)]
    assert [chunk.seq for chunk in chunks] == list(range(50))
    assert chunks[-1].done
    assert received[-1] == {"chunks": 50}


async def test_cancelling_the_trace_mid_stream_cancels_the_remote_task() -> None:
    adapter = adapter_for(chatter_flow())
    remote_flow = adapter.flow
    async with (
        served(create_a2a_app(adapter)) as url,
        A2AHttpTransport(allow_private=True) as transport,
    ):
        recorder = Recorder()
        async with calling_flow(transport, url, streaming=True, recorder=recorder) as flow:
            await flow.emit(message({"chunks": 500, "gap": 0.02}, trace_id="to-cancel"))
            for _ in range(3):
                chunk = await asyncio.wait_for(flow.fetch(), 10)
                assert isinstance(chunk.payload, StreamChunk)
            assert adapter.active_tasks == 1
            assert await flow.cancel("to-cancel")
            await wait_idle(adapter)
            assert adapter.active_tasks == 0
            assert not remote_flow.traces.active()  # the remote trace stopped too
    assert "remote_call_success" not in recorder.kinds()


async def test_loopback_agents_are_refused_by_default() -> None:
    request = RemoteCallRequest(message=message(1), skill="s", agent_url="http://127.0.0.1:9/")
    async with A2AHttpTransport() as transport:
        with pytest.raises(UnsafeURLError, match=r"non-public address 127\.0\.0\.1"):
            await transport.send(request)
        with pytest.raises(UnsafeURLError):
            async for _ in transport.stream(request):
                pass
        with pytest.raises(UnsafeURLError):
            await transport.cancel(agent_url="http://10.0.0.1/", task_id="x")


@contextlib.asynccontextmanager
async def recording_agent() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A minimal A2A agent answering every call with a Message; records request headers."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict[str, str]] = []

    async def answer(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        body = await request.json()
        reply = {
            "kind": "message",
            "role": "agent",
            "messageId": "r",
            "parts": [{"kind": "text", "text": "hi"}],
        }
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": reply})

    async with served(Starlette(routes=[Route("/", answer, methods=["POST"])])) as url:
        yield url, seen


@contextlib.asynccontextmanager
async def redirector(target: str) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """Answers every POST with a 307 to `target`; records request headers."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    seen: list[dict[str, str]] = []

    async def move(request: Request) -> RedirectResponse:
        seen.append(dict(request.headers))
        return RedirectResponse(target, status_code=307)

    app = Starlette(routes=[Route("/{path:path}", move, methods=["POST"])])
    async with served(app) as url:
        yield url, seen


async def test_credentials_are_not_sent_across_a_redirect_to_another_origin() -> None:
    async with (
        recording_agent() as (agent_url, agent_seen),
        redirector(f"{agent_url}/") as (start_url, start_seen),
    ):
        transport = A2AHttpTransport(
            headers={"Authorization": "Bearer secret"}, allowed_hosts=["127.0.0.1"]
        )
        async with transport:
            result = await transport.send(
                RemoteCallRequest(message=message(1), skill="s", agent_url=f"{start_url}/")
            )
            direct = await transport.send(
                RemoteCallRequest(message=message(2), skill="s", agent_url=f"{agent_url}/")
            )
    assert result.result == "hi"
    assert direct.result == "hi"
    assert start_seen[0]["authorization"] == "Bearer secret"  # the origin we called
    assert "authorization" not in agent_seen[0]  # the other origin it sent us to
    assert agent_seen[1]["authorization"] == "Bearer secret"  # called directly: sent


async def test_a_redirect_to_a_private_target_is_refused() -> None:
    async with redirector("http://10.255.255.1/") as (start_url, _):
        async with A2AHttpTransport(allowed_hosts=["127.0.0.1"]) as transport:
            with pytest.raises(UnsafeURLError, match=r"10\.255\.255\.1"):
                await transport.send(
                    RemoteCallRequest(message=message(1), skill="s", agent_url=f"{start_url}/")
                )


async def test_redirect_loops_end_with_an_error() -> None:
    async with redirector("/again") as (start_url, seen):
        async with A2AHttpTransport(allowed_hosts=["127.0.0.1"], max_redirects=3) as transport:
            with pytest.raises(RemoteCallError, match="more than 3 redirects"):
                await transport.send(
                    RemoteCallRequest(message=message(1), skill="s", agent_url=f"{start_url}/")
                )
    assert len(seen) == 4


async def test_remote_failures_and_http_errors_raise_remote_call_error() -> None:
    adapter = adapter_for(chatter_flow())
    async with served(create_a2a_app(adapter, auth=_deny)) as url:
        async with A2AHttpTransport(allow_private=True) as transport:
            with pytest.raises(RemoteCallError, match="HTTP 401") as info:
                await transport.send(
                    RemoteCallRequest(message=message({"chunks": 1}), skill="s", agent_url=url)
                )
            assert info.value.code == 401
            # Cancelling a task the agent does not know is not an error (already over).
    open_adapter = adapter_for(chatter_flow())
    async with served(create_a2a_app(open_adapter)) as url:
        async with A2AHttpTransport(allow_private=True) as transport:
            await transport.cancel(agent_url=f"{url}/", task_id="never-existed")
            with pytest.raises(RemoteCallError, match=r"remote task .* failed"):
                await transport.send(
                    RemoteCallRequest(
                        message=message({"chunks": "not a number"}), skill="s", agent_url=f"{url}/"
                    )
                )


async def _deny(_headers: Any) -> None:
    return None


async def test_cancelling_a_unary_remote_call_cancels_the_remote_trace() -> None:
    from ..a2a.conftest import echo_flow

    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        A2AHttpTransport(allow_private=True) as transport,
    ):
        async with calling_flow(transport, url) as flow:
            await flow.emit(message({"sleep": 30}, trace_id="unary"))
            while adapter.active_tasks == 0:
                await asyncio.sleep(0.01)
            assert await flow.cancel("unary")
            await wait_idle(adapter)
            assert adapter.active_tasks == 0
            assert not adapter.flow.traces.active()
