"""`MCPToolset`: an MCP server's tools as planner catalog entries.

Usage::

    async with MCPToolset.stdio("python", ["weather_server.py"], name="weather") as weather:
        planner = ReactPlanner(llm_client=client, catalog=local_specs, toolsets=[weather])
        result = await planner.run("What is the weather in Paris?")

Each tool of the server becomes a `NodeSpec` (in `specs`): its arguments are the
server's JSON schema, checked before the call; its result is the observation. All
calls share one session. When the server says its tools changed, `specs` is
rebuilt and `revision` grows, and a planner given the toolset sees the new tools at
its next step. When the connection drops, the call in flight fails with
`MCPConnectionError` and the next call reconnects (a stdio server is started anew).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from .._logfmt import LogLine
from ..catalog import NodeSpec
from ..errors import InvalidArgumentError, MissingExtraError
from ._catalog import tool_specs
from ._connection import Connection, OpenTransport
from ._results import observation
from .errors import MCPConnectionError, MCPTimeoutError, MCPToolError, MCPToolsetError

__all__ = ["DEFAULT_TIMEOUT_S", "MCPToolset"]

logger = logging.getLogger("penguiflow.mcp")

DEFAULT_TIMEOUT_S = 60.0
"""How long one tool call may take by default (`timeout_s=`)."""

# JSON-RPC error codes the SDK uses for a dropped connection and a timed-out request.
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001
_INVALID_REQUEST = -32600


def _require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "MCP toolsets need the MCP SDK: pip install 'penguiflow[mcp]'", extra="mcp"
        ) from exc


class MCPToolset:
    """The tools of one MCP server, for a planner's catalog (a planner `Toolset`).

    Build it with `MCPToolset.stdio(...)` or `MCPToolset.http(...)`, then use it as
    an async context manager (or `await connect()` ... `await close()`): entering
    connects, lists the tools and fills `specs`; leaving closes the session (and
    stops a stdio server's process).

    Options (keywords of both constructors):

    * `name`: how the prompt and errors name the server (default: from the command
      or URL).
    * `allow` / `deny`: tool names (the server's) to keep or leave out; `allow=None`
      keeps every tool not denied.
    * `prefix`: put before each tool's name in the catalog (`"weather_"`), to keep
      the names of two servers apart.
    * `timeout_s`: how long one call may take (`None`: no limit); a late call is
      cancelled on the server and fails with `MCPTimeoutError`.
    * `connect_timeout_s`: how long connecting (and reconnecting) may take.
    * `max_description_chars`: a tool description is cut to this length.
    """

    def __init__(
        self,
        transport: OpenTransport,
        *,
        name: str,
        allow: Collection[str] | None = None,
        deny: Collection[str] = (),
        prefix: str = "",
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = 30.0,
        max_description_chars: int = 1000,
    ) -> None:
        if not name:
            raise InvalidArgumentError("MCPToolset needs a non-empty name=")
        if isinstance(allow, str) or isinstance(deny, str):
            raise InvalidArgumentError(
                "allow= and deny= take collections of tool names, e.g. allow=['search'], "
                "not a single string"
            )
        if timeout_s is not None and timeout_s <= 0:
            raise InvalidArgumentError(f"timeout_s must be positive or None, got {timeout_s!r}")
        self.name = name
        self._transport = transport
        self._allow = None if allow is None else frozenset(allow)
        self._deny = frozenset(deny)
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_description_chars = max_description_chars
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()
        self._listing: list[Any] = []
        self._specs: list[NodeSpec] = []
        self._revision = 0
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._closed = False

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        name: str | None = None,
        **options: Any,
    ) -> MCPToolset:
        """A server run as a subprocess (`command args...`) speaking MCP on stdio.

        `env` is added to a minimal default environment (the SDK's). The process is
        started on connect and stopped on close; after a crash, the next call
        starts it again.
        """
        _require_sdk()
        from mcp.client.stdio import StdioServerParameters, stdio_client

        parameters = StdioServerParameters(
            command=command, args=list(args), env=dict(env) if env else None, cwd=cwd
        )

        def open_transport() -> AbstractAsyncContextManager[Any]:
            return stdio_client(parameters)

        default = Path(args[-1]).stem if args else Path(command).stem
        return cls(open_transport, name=name or default or "mcp", **options)

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> MCPToolset:
        """A server at `url` speaking MCP over streamable HTTP.

        `headers` go with every request (e.g. `{"Authorization": "Bearer ..."}`).
        """
        _require_sdk()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgumentError(
                f"MCPToolset.http needs an http:// or https:// URL, got {url!r}"
            )
        header_dict = dict(headers or {})

        def open_transport() -> AbstractAsyncContextManager[Any]:
            return _http_transport(url, header_dict)

        return cls(open_transport, name=name or parts.hostname or "mcp", **options)

    # -- the Toolset protocol ---------------------------------------------------------

    @property
    def specs(self) -> list[NodeSpec]:
        """The server's tools as catalog entries (empty until connected)."""
        return self._specs

    @property
    def revision(self) -> int:
        """Grows each time `specs` changes (0 before the first connect)."""
        return self._revision

    @property
    def tools(self) -> list[str]:
        """The catalog names of the tools in `specs`."""
        return [spec.name for spec in self._specs]

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect (if not connected) and list the tools.

        Raises `MCPConnectionError` when the server cannot be reached or started.
        """
        if self._closed:
            raise MCPConnectionError(f"MCP toolset {self.name!r} is closed", server=self.name)
        await self._live_connection(self._connection)

    async def close(self) -> None:
        """Close the session (stopping a stdio server). Calls after this fail."""
        self._closed = True
        task = self._refresh_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        connection = self._connection
        self._connection = None
        if connection is not None:
            await connection.close()

    async def refresh(self) -> None:
        """List the server's tools again now, and rebuild `specs` if they changed."""
        connection = await self._live_connection(self._connection)
        await self._list_tools(connection)

    # -- calls ------------------------------------------------------------------------

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call the server's tool `tool` and return its observation (see `specs`).

        Arguments are not validated here: the planner validates them against the
        tool's schema before calling. Raises `MCPToolError` for a result flagged
        `isError` (or a protocol error), `MCPTimeoutError` and `MCPConnectionError`.
        """
        structured = any(
            listed.name == tool and listed.output_schema is not None for listed in self._listing
        )
        return await self._call(tool, dict(arguments or {}), structured)

    async def _call(self, tool: str, arguments: dict[str, Any], structured: bool) -> Any:
        connection = self._connection
        if connection is None or not connection.alive:
            connection = await self._live_connection(connection)
        try:
            result = await self._send(connection, tool, arguments)
        except _SessionGone:
            # The server refused the call unrun: it no longer knows the session (an
            # HTTP server that restarted). Sent once more, over a new session.
            connection = await self._live_connection(connection)
            result = await self._send(connection, tool, arguments)
        refreshing = self._refresh_task
        if refreshing is not None and not refreshing.done():
            # The call changed the server's tools (its notification came before the
            # result): the planner's next step should see the new ones.
            await asyncio.wait([refreshing], timeout=self._connect_timeout_s)
        return observation(result, tool=tool, server=self.name, structured=structured)

    async def _send(self, connection: Connection, tool: str, arguments: dict[str, Any]) -> Any:
        from mcp import MCPError

        try:
            return await connection.session.call_tool(
                tool, arguments, read_timeout_seconds=self._timeout_s
            )
        except MCPError as exc:
            raise self._translate(exc, tool, connection) from exc
        except (OSError, EOFError) as exc:
            connection.lost()
            raise MCPConnectionError(
                f"the connection to MCP server {self.name!r} failed during a call to "
                f"{tool!r} ({type(exc).__name__}: {exc}); the next call reconnects",
                server=self.name,
            ) from exc

    def _translate(self, exc: Any, tool: str, connection: Connection) -> MCPToolsetError:
        error = exc.error
        code = error.code
        if code == _REQUEST_TIMEOUT:
            return MCPTimeoutError(
                f"MCP server {self.name!r} gave no result for {tool!r} within "
                f"{self._timeout_s:g}s; the request was cancelled",
                server=self.name,
            )
        if code == _INVALID_REQUEST and "session" in str(error.message).lower():
            # What an HTTP server answers (404) for a session it does not know.
            connection.lost()
            return _SessionGone(
                f"MCP server {self.name!r} no longer knows this client's session (it "
                f"restarted?) and refused the call to {tool!r}: {error.message}",
                server=self.name,
            )
        if code == _CONNECTION_CLOSED:
            connection.lost()
            return MCPConnectionError(
                f"the connection to MCP server {self.name!r} closed during a call to "
                f"{tool!r} (the server may have stopped or restarted; the call may or may "
                "not have run); the next call reconnects",
                server=self.name,
            )
        return MCPToolError(
            f"MCP server {self.name!r} refused the call to {tool!r}: {error.message} "
            f"(JSON-RPC error {code})",
            server=self.name,
        )

    # -- connection and listing ----------------------------------------------------------

    async def _live_connection(self, seen: Connection | None) -> Connection:
        """The open connection, opening a new one if `seen` (the caller's) is gone."""
        async with self._lock:
            if self._closed:
                raise MCPConnectionError(f"MCP toolset {self.name!r} is closed", server=self.name)
            current = self._connection
            if current is not None and current is not seen and current.alive:
                return current  # another call reconnected meanwhile
            if current is not None and current.alive:
                return current
            if current is not None:
                self._connection = None
                await current.close()
            connection = Connection(self._transport, self._on_message)
            try:
                await connection.open(self._connect_timeout_s)
            except Exception as exc:
                raise MCPConnectionError(
                    f"could not connect to MCP server {self.name!r}: {type(exc).__name__}: {exc}",
                    server=self.name,
                ) from exc
            if current is not None:
                info = {"server": self.name}
                logger.info(LogLine("mcp_reconnected"), info, extra=info)
            self._connection = connection
            await self._list_tools(connection)
            return connection

    async def _list_tools(self, connection: Connection) -> None:
        from mcp.types import PaginatedRequestParams

        session = connection.session
        listing: list[Any] = []
        cursor: str | None = None
        while True:
            params = None if cursor is None else PaginatedRequestParams(cursor=cursor)
            page = await session.list_tools(params=params)
            listing.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        if _dumped(listing) == _dumped(self._listing) and self._revision:
            return
        self._listing = listing
        self._specs = tool_specs(
            listing,
            server=self.name,
            prefix=self._prefix,
            allow=self._allow,
            deny=self._deny,
            max_description_chars=self._max_description_chars,
            call=self._call,
        )
        self._revision += 1
        fields = {"server": self.name, "revision": self._revision, "tools": len(self._specs)}
        logger.info(LogLine("mcp_tools_listed"), fields, extra=fields)

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
            self._refresh_soon()
        elif isinstance(message, Exception):
            fields = {"server": self.name, "error": f"{type(message).__name__}: {message}"[:300]}
            logger.warning(LogLine("mcp_transport_error"), fields, extra=fields)

    def _refresh_soon(self) -> None:
        task = self._refresh_task
        if task is not None and not task.done():
            self._refresh_again = True
            return
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        self._refresh_again = True
        while self._refresh_again and not self._closed:
            self._refresh_again = False
            connection = self._connection
            if connection is None or not connection.alive:
                return  # the next call reconnects, and lists the tools then
            try:
                await self._list_tools(connection)
            except Exception as exc:
                fields = {"server": self.name, "error": f"{type(exc).__name__}: {exc}"[:300]}
                logger.warning(LogLine("mcp_refresh_failed"), fields, extra=fields)
                return


class _SessionGone(MCPConnectionError):
    """The server refused a call, unrun, for a session it does not know."""


def _dumped(listing: list[Any]) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", exclude_none=True) for tool in listing]


def _http_transport(url: str, headers: dict[str, str]) -> AbstractAsyncContextManager[Any]:
    """The SDK's streamable HTTP transport over its own HTTP client with `headers`."""
    import contextlib

    import httpx2  # the SDK's HTTP client library
    from mcp.client.streamable_http import streamable_http_client

    @contextlib.asynccontextmanager
    async def transport() -> Any:
        # The SDK's own defaults: 30 s to connect or write, 5 min to read (a server
        # may hold a response stream open); a call's limit is `timeout_s`.
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
            streamable_http_client(url, http_client=client) as streams,
        ):
            yield streams

    return transport()
