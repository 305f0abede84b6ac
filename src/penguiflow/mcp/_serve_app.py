"""The pieces every served target shares: the `Entry` a target becomes, the SDK server
around it, the progress relay, and the shape of tool results."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from ..errors import exception_text

logger = logging.getLogger("penguiflow.mcp")

STREAM_PREFIX = "answer: "
"""What starts the progress message of a piece of streamed text (a planner's answer
as it is written, a flow's stream chunk)."""


class Entry(Protocol):
    """What a served planner or flow offers the server: its tools, a way to call them
    and what to do while the server runs."""

    def tools(self) -> list[types.Tool]:
        """The tools listed to clients."""
        ...

    async def call(
        self, tool: str, arguments: Mapping[str, Any], progress: Progress
    ) -> types.CallToolResult:
        """Run `tool` (one of `tools()`) on the client's arguments."""
        ...

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Entered when the server starts serving, left when it stops."""
        ...


class Progress:
    """Sends one call's progress messages to the client, in the order they were reported.

    `report()` is synchronous (planner and flow hooks are); a task sends the queued
    messages as `notifications/progress` with a counter as `progress` (which the
    protocol requires to increase). The SDK sends nothing when the client gave no
    progress token. Leaving the `async with` sends what is queued before the result
    goes out.
    """

    __slots__ = ("_on", "_queue", "_sent", "_session", "_task")

    def __init__(self, session: ServerSession) -> None:
        self._session = session
        self._on = True
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._sent = 0
        self._task: asyncio.Task[None] | None = None

    def report(self, message: str) -> None:
        """Queue `message` for the client (dropped once sending failed)."""
        if self._on:
            self._queue.put_nowait(message)

    async def __aenter__(self) -> Progress:
        self._task = asyncio.create_task(self._send(), name="penguiflow-mcp-progress")
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        task = self._task
        if task is None:
            return
        if exc is None:
            self._queue.put_nowait(None)
            await task
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _send(self) -> None:
        session = self._session
        while (message := await self._queue.get()) is not None:
            self._sent += 1
            try:
                await session.report_progress(self._sent, None, message)
            except Exception as exc:
                # The client went away or the stream broke: the call's result will
                # fail the same way; the run itself goes on without progress.
                logger.warning("mcp: progress not sent: %s", exception_text(exc))
                self._on = False
                return


def build_server(entry: Entry, *, name: str) -> Server[Any]:
    """The SDK's low-level server listing `entry`'s tools and calling them."""
    tools = entry.tools()
    names = [t.name for t in tools]

    @asynccontextmanager
    async def lifespan(_server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        async with entry.lifespan():
            yield {}

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in names:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"unknown tool {params.name!r}; this server's tools are {names}",
            )
        async with Progress(ctx.session) as progress:
            return await entry.call(params.name, params.arguments or {}, progress)

    return Server(name, lifespan=lifespan, on_list_tools=list_tools, on_call_tool=call_tool)


def jsonable(value: Any) -> Any:
    """`value` as JSON data (models dumped; anything unknown as its `str`)."""
    return to_jsonable_python(value, fallback=str)


def as_text(value: Any) -> str:
    """`value` for a text content block: a string as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), ensure_ascii=False)


def result(
    text: str, structured: Mapping[str, Any] | None = None, *, error: bool = False
) -> types.CallToolResult:
    """A tool result: one text block, structured content when given, the error flag."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=dict(structured) if structured is not None else None,
        is_error=error,
    )


def invalid_arguments(tool: str, exc: ValidationError) -> types.CallToolResult:
    """The error result for arguments that do not fit `tool`'s input schema, naming
    each wrong field and what was wrong with it."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(arguments)'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )
    return result(
        f"invalid arguments for {tool!r}: {problems}",
        {"error": "invalid_arguments", "errors": jsonable(exc.errors(include_url=False))},
        error=True,
    )


def failed(what: str, exc: BaseException) -> types.CallToolResult:
    """The error result for a run that raised: `what` failed, and the exception."""
    message = exception_text(exc)
    # The client gets the error; the server's log says it too (with the traceback at DEBUG).
    logger.warning(
        "mcp: %s failed: %s",
        what,
        message,
        exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None,
    )
    return result(
        f"{what} failed: {type(exc).__name__}: {message}",
        {"error": type(exc).__name__, "message": message},
        error=True,
    )


def timed_out(timeout_s: float | None) -> types.CallToolResult:
    """The error result for a call that took longer than `timeout_s`."""
    return result(
        f"no answer within timeout_s={timeout_s}",
        {"error": "timeout", "timeout_s": timeout_s},
        error=True,
    )


# What MCP allows in a tool name.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def is_tool_name(name: str) -> bool:
    """Whether MCP allows `name` as a tool's name."""
    return _TOOL_NAME.match(name) is not None
