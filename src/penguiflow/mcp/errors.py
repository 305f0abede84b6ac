"""What can go wrong with an MCP toolset, under penguiflow's one root.

Raised inside an MCP tool's call, each reaches the LLM as a failed tool step naming
its class (`tool 'add' raised MCPToolError: ...`), like any tool that raises::

    MCPToolsetError                        a toolset failed (server named)
    ├── MCPConnectionError (ConnectionError)   no connection, or it dropped mid-call
    ├── MCPToolError (RuntimeError)        the server flagged its result as an error
    └── MCPTimeoutError (TimeoutError)     no result within the toolset's `timeout_s`
"""

from __future__ import annotations

from ..errors import PenguiflowError

__all__ = ["MCPConnectionError", "MCPTimeoutError", "MCPToolError", "MCPToolsetError"]


class MCPToolsetError(PenguiflowError):
    """An MCP toolset could not serve a call; `server` names the toolset."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


class MCPConnectionError(MCPToolsetError, ConnectionError):
    """The server could not be reached, or the connection dropped during a call.

    A call in flight when the connection dropped is not retried (the server may have
    acted on it); the next call reconnects.
    """


class MCPToolError(MCPToolsetError, RuntimeError):
    """The server answered with a result flagged `isError`; the message is its text."""


class MCPTimeoutError(MCPToolsetError, TimeoutError):
    """A call got no result in time; the request was cancelled on the server."""
