"""Serve a planner or a flow as an MCP server, on the official `mcp` SDK.

`mcp_server(target)` builds the SDK's low-level `Server` whose tools run `target`:

* a `ReactPlanner`: the tool `ask` (`query`, optional `context`) runs the planner and
  answers the finish payload; a pause answers its reason and resume token, and the
  tool `resume` (`token`, optional `user_input`) continues it. Runs of one planner
  are serialised (a planner is not safe for concurrent runs).
* a `PenguiFlow`: one tool named after the flow's entry node, whose input schema is
  that node's input model; each call is one `flow.call(...)`. The flow is started
  when the server starts and stopped when it stops (unless it was running already).

While a call runs, MCP progress notifications follow it (when the client asked for
them with a progress token): one per planner step, tool call, finish and streamed
answer piece (`"answer: <text>"`); for a flow, one as each node starts and ends, and
one per stream chunk its nodes emit (`"answer: <text>"`).

`serve_stdio(target)` and `serve_http(target, host=..., port=...)` run the server;
`penguiflow serve --mcp MODULE:FACTORY` does the same from the command line.
Everything here needs the extra: `pip install 'penguiflow[mcp]'`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, MissingExtraError

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

    from ..core import PenguiFlow
    from ..planner import ReactPlanner
    from ..registry import ModelRegistry
    from ._serve_app import Entry

__all__ = ["DEFAULT_PLANNER_TOOL", "mcp_server", "serve_http", "serve_stdio"]

DEFAULT_PLANNER_TOOL = "ask"
"""The name of a served planner's tool, unless `tool=` names another."""


def mcp_server(
    target: ReactPlanner | PenguiFlow | Callable[[], ReactPlanner | PenguiFlow],
    *,
    name: str | None = None,
    tool: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    tenant: str = "default",
    registry: ModelRegistry | None = None,
) -> Server[Any]:
    """The MCP server (the SDK's `mcp.server.lowlevel.Server`) whose tools run `target`.

    `target` is a `ReactPlanner`, a `PenguiFlow`, or a zero-argument function returning
    one (called once, here). `name` is the server's name (default: the factory's name,
    else `"penguiflow"`); `tool` the entry tool's name (default `ask` for a planner,
    the entry node's name for a flow) and `description` its description. A call that
    takes longer than `timeout_s` (waiting for the planner's turn included) ends in an
    error result. For a flow, `tenant` goes in each message's headers, and `registry`
    is given to `flow.run()` and names the entry node's input model.

    Raises `InvalidArgumentError` (a `ValueError`) for a target that is neither (or a
    flow without exactly one entry node), a tool name MCP does not allow or a
    `timeout_s` that is not positive, and `MissingExtraError` without the `mcp` extra.

    Usage::

        server = mcp_server(build_planner)
        await serve_stdio(server)
    """
    _require_sdk()
    from ._serve_app import build_server

    if timeout_s is not None and not timeout_s > 0:
        raise InvalidArgumentError(f"timeout_s must be > 0 or None, got {timeout_s!r}")
    default_name = "penguiflow"
    if callable(target) and not _is_served_type(target) and not inspect.isclass(target):
        default_name = getattr(target, "__name__", default_name)
        target = target()
    entry = _entry_for(
        target,
        tool=tool,
        description=description,
        timeout_s=timeout_s,
        tenant=tenant,
        registry=registry,
    )
    return build_server(entry, name=name or default_name)


async def serve_stdio(target: Server[Any] | Any, **options: Any) -> None:
    """Serve over the process's stdin and stdout until the client closes them.

    `target` is a server from `mcp_server()`, or what `mcp_server()` takes (with its
    keyword `options`). Nothing else may write to stdout meanwhile: it is the protocol's
    channel (the SDK points file descriptor 1 at stderr while it serves).
    """
    server = _server(target, options)
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(
    target: Server[Any] | Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    log_level: str = "warning",
    on_ready: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve over streamable HTTP at `http://HOST:PORT/mcp` with uvicorn, until stopped.

    `target` is as for `serve_stdio`. Binds 127.0.0.1 unless `host` says otherwise (then
    the SDK's DNS-rebinding protection for loopback is off: put your own in front).
    `on_ready` is called once the socket listens.
    """
    server = _server(target, options)
    import uvicorn

    app = server.streamable_http_app(streamable_http_path=path, host=host)

    class _Announcing(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_ready is not None:
                on_ready()

    await _Announcing(uvicorn.Config(app, host=host, port=port, log_level=log_level)).serve()


def _server(target: Any, options: dict[str, Any]) -> Server[Any]:
    _require_sdk()
    from mcp.server.lowlevel import Server

    if isinstance(target, Server):
        if options:
            raise InvalidArgumentError(
                f"options {sorted(options)} are for mcp_server(); "
                "pass them there, not with a built server"
            )
        return target
    return mcp_server(target, **options)


def _is_served_type(target: object) -> bool:
    from ..core import PenguiFlow
    from ..planner import ReactPlanner

    return isinstance(target, ReactPlanner | PenguiFlow)


def _require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "serving over MCP needs the mcp SDK: pip install 'penguiflow[mcp]'", extra="mcp"
        ) from exc


def _entry_for(
    target: Any,
    *,
    tool: str | None,
    description: str | None,
    timeout_s: float | None,
    tenant: str,
    registry: Any | None,
) -> Entry:
    """The entry serving `target`, a `ReactPlanner` or a `PenguiFlow`.

    Raises `InvalidArgumentError` for anything else.
    """
    from ..core import PenguiFlow
    from ..planner import ReactPlanner
    from ._serve_app import is_tool_name

    if tool is not None and not is_tool_name(tool):
        raise InvalidArgumentError(
            f"tool={tool!r} is not a tool name MCP allows: use 1 to 128 letters, digits, "
            "'_', '-' or '.'"
        )
    if isinstance(target, ReactPlanner):
        from ._serve_planner import PlannerEntry

        return PlannerEntry(
            target,
            tool=tool or DEFAULT_PLANNER_TOOL,
            description=description,
            timeout_s=timeout_s,
        )
    if isinstance(target, PenguiFlow):
        from ._serve_flow import FlowEntry

        return FlowEntry(
            target,
            tool=tool,
            description=description,
            timeout_s=timeout_s,
            tenant=tenant,
            registry=registry,
        )
    raise InvalidArgumentError(
        f"can only serve a ReactPlanner or a PenguiFlow over MCP, got {type(target).__name__}"
    )
