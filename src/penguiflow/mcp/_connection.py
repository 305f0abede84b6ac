"""One live MCP session: a transport and a `ClientSession`, run in a task of their own.

The SDK's transports and sessions are anyio context managers, which must be
entered and left by one task. A toolset calls tools from many tasks (each branch
of a parallel plan is one) and may reconnect from any of them, so each connection
runs its contexts in a dedicated task and hands the session out: every call then
goes over that one session, concurrently. The read stream is watched so that the
toolset knows, before its next call, that the server has gone (EOF).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._logfmt import LogLine

__all__: list[str] = []

logger = logging.getLogger("penguiflow.mcp")

if TYPE_CHECKING:
    from mcp.client.session import MessageHandlerFnT

OpenTransport = Callable[[], AbstractAsyncContextManager[Any]]

# How long closing waits for the transport to wind down (the SDK bounds its own
# steps: flushing stdin, terminating the subprocess); then the task is cancelled.
_CLOSE_TIMEOUT_S = 10.0


class ConnectionState(enum.Enum):
    STARTING = 1  # the task is connecting and initializing
    OPEN = 2  # a live session: calls go over it
    LOST = 3  # the server went away (EOF, or a call saw the connection close)
    CLOSED = 4  # close() ran


class _WatchedStream:
    """The transport's read stream, telling its connection when it ends."""

    __slots__ = ("_ended", "_on_end", "_stream")

    def __init__(self, stream: Any, on_end: Callable[[], None]) -> None:
        import anyio

        self._stream = stream
        self._on_end = on_end
        # What a receive raises once the transport is over (EOF, a closed stream).
        self._ended = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)

    @property
    def last_context(self) -> Any:
        return getattr(self._stream, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._stream.receive()
        except self._ended:
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_end()
        await self._stream.aclose()


class Connection:
    """A session over one transport, alive from `open()` until `close()` or EOF."""

    __slots__ = ("_on_message", "_open_transport", "_stop", "_task", "session", "state")

    def __init__(self, open_transport: OpenTransport, on_message: MessageHandlerFnT) -> None:
        self._open_transport = open_transport
        self._on_message = on_message
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.session: Any = None
        self.state = ConnectionState.STARTING

    @property
    def alive(self) -> bool:
        return self.state is ConnectionState.OPEN

    def lost(self) -> None:
        """Mark the connection gone: the next call opens a new one."""
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.LOST

    async def open(self, timeout_s: float) -> Any:
        """Connect and initialize; returns the `ClientSession`. Raises what connecting
        raised (the first error of an exception group), or `TimeoutError`."""
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(ready))
        try:
            async with asyncio.timeout(timeout_s):
                self.session = await asyncio.shield(ready)
        except BaseException:
            await self.close()
            raise
        self.state = ConnectionState.OPEN
        return self.session

    async def _run(self, ready: asyncio.Future[Any]) -> None:
        from mcp import ClientSession

        try:
            async with self._open_transport() as (read, write):
                watched = _WatchedStream(read, self.lost)
                async with ClientSession(
                    watched, write, message_handler=self._on_message
                ) as session:
                    await session.initialize()
                    if not ready.done():
                        ready.set_result(session)
                    await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(_first_error(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                fields = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                logger.warning(LogLine("mcp_connection_failed"), fields, extra=fields)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.lost()

    async def close(self) -> None:
        """End the session and the transport (a stdio server's process is stopped)."""
        self.state = ConnectionState.CLOSED
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.wait([task])


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio task groups wrap errors), or `exc`."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
