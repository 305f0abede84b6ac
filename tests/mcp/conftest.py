"""Real MCP servers for the toolset tests: the demo server on stdio (a subprocess) or
over streamable HTTP (in-process uvicorn on 127.0.0.1, checking a bearer token)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from penguiflow.mcp import MCPToolset

from .servers.demo_server import Stats, http_app

SERVER = Path(__file__).parent / "servers" / "demo_server.py"
TOKEN = "s3cret"


def act(thought: str = "t", **fields: Any) -> str:
    """An LLM reply: a PlannerAction as JSON."""
    return json.dumps({"thought": thought, **fields})


def stdio_toolset(**options: Any) -> MCPToolset:
    """The demo server as a stdio subprocess (started on connect)."""
    return MCPToolset.stdio(sys.executable, [str(SERVER)], name="demo", **options)


@pytest.fixture
async def demo() -> AsyncIterator[MCPToolset]:
    async with stdio_toolset() as toolset:
        yield toolset


async def server_saw(toolset: MCPToolset) -> dict[str, Any]:
    """The demo server's own log: its calls, peak concurrency, cancellations."""
    seen: dict[str, Any] = await toolset.call("calls")
    return seen


class HTTPServer:
    """The demo server served over HTTP by uvicorn in this process (`stop`, `start`)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.stats = Stats()
        self._served: tuple[Any, asyncio.Task[None]] | None = None

    async def start(self) -> None:
        """Serve (again): a restarted server knows none of its earlier sessions."""
        import uvicorn

        self.stats = Stats()
        config = uvicorn.Config(
            http_app(TOKEN, self.stats), host="127.0.0.1", port=self.port, log_level="error"
        )
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        self._served = (server, task)
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._served is not None:
            server, task = self._served
            self._served = None
            server.should_exit = True
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def http_server() -> AsyncIterator[HTTPServer]:
    served = HTTPServer()
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
def http_toolset(http_server: HTTPServer) -> Callable[..., MCPToolset]:
    def build(token: str = TOKEN, **options: Any) -> MCPToolset:
        return MCPToolset.http(
            http_server.url, headers={"Authorization": f"Bearer {token}"}, name="demo", **options
        )

    return build
