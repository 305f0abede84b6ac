"""Flows to serve, and a real uvicorn server on 127.0.0.1 for them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

uvicorn = pytest.importorskip("uvicorn", reason="the a2a-server extra is not installed")

from penguiflow import Headers, Message, Node, NodePolicy, create  # noqa: E402
from penguiflow.core import PenguiFlow  # noqa: E402
from penguiflow_a2a import A2AServerAdapter, create_a2a_app  # noqa: E402

CARD_FIELDS = [  # A2AAgentCard.to_payload(): declared fields, in order
    "name",
    "description",
    "version",
    "schema_version",
    "tags",
    "capabilities",
    "skills",
    "contact_url",
    "documentation_url",
]

CARD = {
    "name": "echo-agent",
    "description": "Echoes what it gets",
    "skills": [{"name": "echo", "description": "echo the payload"}],
}


CALLS: list[Any] = []  # every payload the echo node was invoked with


async def echo(message: Message, _ctx: Any) -> Message:
    """Echo the payload back, as `{"echo": payload}`; `{"sleep": s}` sleeps first."""
    payload = message.payload
    CALLS.append(payload)
    if isinstance(payload, dict) and "sleep" in payload:
        await asyncio.sleep(float(payload["sleep"]))
    if isinstance(payload, dict) and payload.get("fail"):
        raise ValueError("asked to fail")
    if isinstance(payload, dict) and payload.get("whoami"):
        return message.model_copy(update={"payload": {"tenant": message.headers.tenant}})
    if isinstance(payload, dict) and payload.get("nothing"):
        return None  # type: ignore[return-value]
    return message.model_copy(update={"payload": {"echo": payload}})


async def chatter(message: Message, ctx: Any) -> Message:
    """Stream `payload["chunks"]` chunks (pausing `payload["gap"]` s each), then answer."""
    payload = message.payload
    count = int(payload.get("chunks", 3))
    gap = float(payload.get("gap", 0.0))
    for index in range(count):
        await ctx.emit_chunk(parent=message, text=f"part {index}", done=index == count - 1)
        if gap:
            await asyncio.sleep(gap)
    return message.model_copy(update={"payload": {"chunks": count}})


def echo_flow() -> PenguiFlow:
    return create(Node(echo, name="echo", policy=NodePolicy(validate="none")).to())


def chatter_flow() -> PenguiFlow:
    return create(Node(chatter, name="chatter", policy=NodePolicy(validate="none")).to())


def adapter_for(
    flow: PenguiFlow, url: str = "http://127.0.0.1", **options: Any
) -> A2AServerAdapter:
    return A2AServerAdapter(
        flow,
        agent_card=CARD,
        agent_url=url,
        default_headers={"tenant": "default"},
        **options,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in this event loop; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


ROOT = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    """In the child: be killed when the test process dies (Linux), so a killed
    test run leaves no server behind."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _spawn(factory: str, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--factory", factory]
    options = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    linux = sys.platform.startswith("linux")
    return subprocess.Popen(
        [*command, *options], env=env, cwd=ROOT, preexec_fn=_die_with_parent if linux else None
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        raise AssertionError(f"server pid {process.pid} did not stop on SIGTERM") from None


@contextlib.asynccontextmanager
async def served_in_process(
    factory: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve the app made by `factory` (`tests.a2a.apps:NAME`) with uvicorn in a
    process of its own on 127.0.0.1; yields its base URL and the process."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        **(env or {}),
    }
    process = _spawn(factory, port, environment)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as client:
            for _ in range(400):
                if process.poll() is not None:
                    raise AssertionError(f"{factory} exited with {process.returncode}")
                try:
                    if (await client.get("/.well-known/agent-card.json")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{factory} did not start at {base}")
        yield base, process
    finally:
        _stop(process)


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, A2AServerAdapter]]:
    adapter = adapter_for(echo_flow())
    async with served(create_a2a_app(adapter)) as url:
        adapter.agent_url = url
        yield url, adapter


@pytest.fixture
async def chatter_server() -> AsyncIterator[tuple[str, A2AServerAdapter]]:
    adapter = adapter_for(chatter_flow())
    async with served(create_a2a_app(adapter)) as url:
        adapter.agent_url = url
        yield url, adapter


__all__ = ["Headers"]
