"""An MCP tool call through the planner's path against a bare SDK call to the same server.

The server (this script with `--serve`) is built with the MCP SDK's server API and
has one tool, `echo(text) -> str`. Over stdio and over streamable HTTP (uvicorn on
127.0.0.1, in a child process), the subject is what a planner step does with an
`MCPToolset` tool: validate the LLM's arguments against the server's schema
(`ToolRunner.validate_args`), call the tool over the toolset's session and turn the
result into an observation checked by the tool's out model (`ToolRunner.call`).
The floor is `ClientSession.call_tool` on a bare SDK session to the same server.
Both run sequential batches of calls, interleaved; the figure is time per call and
the ratio subject/floor (target: at most 1.2x).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _common import Result, interleave_async, run_cli

HERE = Path(__file__).resolve().parent
TARGET = 1.2


def _server() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="ERROR")

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    return server


def _serve(kind: str, port: int) -> None:
    server = _server()
    if kind == "stdio":
        asyncio.run(server.run_stdio_async())
        return
    import uvicorn

    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="error")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _bare_session(transport: Any) -> AsyncIterator[Any]:
    from mcp import ClientSession

    async with transport as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        yield session


async def _pair(kind: str, calls: int, repeats: int, url: str | None) -> Result:
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    from mcp import StdioServerParameters
    from penguiflow.mcp import MCPToolset
    from penguiflow.planner.models import Trajectory
    from penguiflow.planner.tools import PlannerContext, ToolRunner

    serve = [str(HERE / "bench_mcp.py"), "--serve", "stdio", "0"]
    if kind == "stdio":
        toolset = MCPToolset.stdio(sys.executable, serve, name="bench")
        transport = stdio_client(StdioServerParameters(command=sys.executable, args=serve))
    else:
        assert url is not None
        toolset = MCPToolset.http(url, name="bench")
        transport = streamable_http_client(url)

    class Gate:
        pause_enabled = False

    ctx = PlannerContext(Gate(), Trajectory(query="bench"))
    llm_args = {"text": "hello"}
    async with toolset, _bare_session(transport) as session:
        (spec,) = toolset.specs

        async def subject() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                args = ToolRunner.validate_args(spec, llm_args)
                assert not isinstance(args, str), args
                outcome = await ToolRunner.call(spec, args, ctx)
                assert outcome.observation is not None, outcome.error
            return (time.perf_counter() - start) / calls

        async def floor() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                result = await session.call_tool("echo", dict(llm_args))
                assert not result.is_error
            return (time.perf_counter() - start) / calls

        paired = await interleave_async(subject, floor, repeats=repeats)
    us = 1e6
    return Result(
        name=f"MCP tool call over {kind}",
        subject=paired.subject_median * us,
        floor=paired.floor_median * us,
        unit="us",
        ratio=paired.ratio,
        target=f"<= {TARGET}x",
        met=paired.ratio <= TARGET,
        note=f"{repeats} x {calls} calls each side; per-call overhead "
        f"{(paired.subject_median - paired.floor_median) * us:.0f} us over a bare "
        f"SDK call_tool (spread {paired.spread:.0%})",
    )


async def _measure(quick: bool, http_port: int) -> list[Result]:
    calls, repeats = (20, 3) if quick else (200, 9)
    results = [await _pair("stdio", calls, repeats, None)]
    await _wait_for_port(http_port)
    url = f"http://127.0.0.1:{http_port}/mcp"
    results.append(await _pair("http", calls, repeats, url))
    return results


async def _wait_for_port(port: int) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"the MCP bench server did not listen on port {port}")


def main(quick: bool = False) -> list[Result]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent / 'src'}"}
    server = subprocess.Popen(
        [sys.executable, str(HERE / "bench_mcp.py"), "--serve", "http", str(port)], env=env
    )
    try:
        return asyncio.run(_measure(quick, port))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(run_cli(__doc__ or "", main, "MCP tool calls"))
