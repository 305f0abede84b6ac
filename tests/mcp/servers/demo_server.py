"""An MCP server for the toolset tests, built with the SDK's own server API.

Run as a script it serves on stdio: `python demo_server.py`. `build_server()` also
gives the `MCPServer` for an in-process HTTP app (`http_app(token)`), which refuses
requests without `Authorization: Bearer <token>`.

Its tools log every call they receive (`calls` returns the log and the most calls
that ran at once), so tests can check what reached the server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError


class Stats:
    """What the server saw: calls (name and arguments), concurrency, cancellations."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self.cancelled: list[str] = []


def build_server(stats: Stats | None = None) -> MCPServer:
    """The demo server; `stats` records what it saw (a fresh one by default)."""
    seen = stats if stats is not None else Stats()
    server = MCPServer("demo", log_level="ERROR")

    def log(tool: str, **arguments: Any) -> None:
        seen.calls.append({"tool": tool, "args": arguments})

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        log("add", a=a, b=b)
        return a + b

    @server.tool(description="Say hello to someone.", structured_output=False)
    def greet(name: str) -> str:
        log("greet", name=name)
        return f"Hello, {name}!"

    @server.tool(description="Always fails, with the message given.")
    def fail(message: str) -> str:
        log("fail", message=message)
        raise ToolError(message)

    @server.tool(description="Wait `seconds`, then say so.")
    async def wait(seconds: float) -> str:
        log("wait", seconds=seconds)
        seen.active += 1
        seen.max_active = max(seen.max_active, seen.active)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            seen.cancelled.append("wait")
            raise
        finally:
            seen.active -= 1
        return f"waited {seconds}s"

    @server.tool(description="Exits the server process in the middle of the call.")
    async def crash() -> str:
        log("crash")
        await asyncio.sleep(0.05)
        os._exit(3)

    @server.tool(description="Adds the tool `double` and says the tool list changed.")
    async def grow(ctx: Context) -> str:
        log("grow")

        def double(x: int) -> int:
            """Double a number."""
            log("double", x=x)
            return 2 * x

        server.add_tool(double)
        await ctx.session.send_tool_list_changed()
        return "grown"

    @server.tool(description="What the server saw: its call log and peak concurrency.")
    def calls() -> dict[str, Any]:
        return {
            "calls": list(seen.calls),
            "max_active": seen.max_active,
            "cancelled": list(seen.cancelled),
        }

    return server


def http_app(token: str, stats: Stats | None = None) -> Any:
    """The server as a streamable HTTP ASGI app that checks a bearer token."""
    from starlette.responses import JSONResponse

    app = build_server(stats).streamable_http_app()
    expected = f"Bearer {token}"

    async def checked(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != expected:
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return checked


if __name__ == "__main__":
    sys.exit(asyncio.run(build_server().run_stdio_async()))
