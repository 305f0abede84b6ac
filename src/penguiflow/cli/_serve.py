"""`penguiflow serve`, `worker`, `viz`, `history` and `replay`: the other programs of
the package, behind the same loading and error reporting."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..state.url import store_url
from ._errors import USAGE, fail, store_errors
from ._load import build, load_attribute, split_spec, takes_no_arguments
from ._store import NOTHING_RECORDED, STORE_HELP, nothing_recorded

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_HOST = "127.0.0.1"  # loopback: serving beyond it takes an explicit --host
DEFAULT_PORT = 8000
MCP_TARGET = "a ReactPlanner or a PenguiFlow"  # what `serve --mcp` serves


def add_commands(commands: Any) -> None:
    """Add `serve`, `worker`, `viz`, `history` and `replay`."""
    serve = commands.add_parser(
        "serve",
        help="serve an A2A app with uvicorn, or an agent or flow over MCP (--mcp)",
        description="Serve the ASGI app MODULE:ATTR names (e.g. create_a2a_app(...)), or "
        "the app a zero-argument factory returns; needs penguiflow[a2a-server]. "
        "With --mcp MODULE:FACTORY, serve a ReactPlanner or a PenguiFlow (or a "
        "zero-argument factory of one) as an MCP server: over stdio (the default) or "
        "streamable HTTP at http://HOST:PORT/mcp; needs penguiflow[mcp].",
    )
    serve.add_argument(
        "app", metavar="MODULE:ATTR", nargs="?", help="an ASGI app or a factory of one"
    )
    serve.add_argument(
        "--mcp", metavar="MODULE:FACTORY", help="a planner or flow (or a factory) to serve over MCP"
    )
    serve.add_argument(
        "--transport", choices=("stdio", "http"), help="how --mcp serves (default stdio)"
    )
    serve.add_argument("--host", help=f"default {DEFAULT_HOST} (loopback)")
    serve.add_argument("--port", type=int, help=f"default {DEFAULT_PORT}")
    serve.add_argument("--name", help="the MCP server's name (default: the factory's name)")
    serve.add_argument(
        "--tool", help="the MCP entry tool's name (default: ask, or the flow's entry node)"
    )
    serve.set_defaults(handler=_serve)

    commands.add_parser(
        "worker",
        add_help=False,
        help="run a flow on messages from a Redis or NATS bus (see 'penguiflow worker --help')",
    )

    viz = commands.add_parser("viz", help="a flow's graph as Mermaid or Graphviz DOT")
    viz.add_argument("flow", metavar="MODULE:FLOW", help="a PenguiFlow or a factory of one")
    viz.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    viz.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    viz.set_defaults(handler=_viz)

    for name, text in (
        ("history", "print a flow trace's stored events (as penguiflow-admin history)"),
        ("replay", "print a flow trace's stored events with delays (as penguiflow-admin replay)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("trace_id", metavar="TRACE_ID", help="the trace to print")
        sub.add_argument("--store", metavar="URL", help=STORE_HELP)
        sub.add_argument("--tail", type=int, help="only the last N events")
        sub.add_argument("--schema", default="penguiflow", help="PostgreSQL schema of the store")
        sub.add_argument("--prefix", default="penguiflow", help="Redis key prefix of the store")
        sub.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
        if name == "replay":
            sub.add_argument("--delay", type=float, default=0.0, help="seconds between events")
        sub.set_defaults(handler=_history)


def _serve(args: argparse.Namespace, console: Console) -> Any:
    from ..errors import MissingExtraError

    if args.mcp is not None or args.app is None:
        return _serve_mcp(args)
    if args.transport is not None or args.tool is not None or args.name is not None:
        raise fail(
            "--transport, --name and --tool are options of --mcp",
            f"run penguiflow serve --mcp {args.app} ... (or drop them to serve an A2A app)",
            code=USAGE,
        )
    target = load_attribute(args.app)
    if hasattr(target, "router") or (callable(target) and not takes_no_arguments(target)):
        app = target  # an ASGI app: (scope, receive, send)
    elif callable(target) and not inspect.isclass(target):
        app = target()
    else:
        raise fail(
            f"{args.app} is a {type(target).__name__}, not an ASGI app or a factory of one",
            "point it at create_a2a_app(...) or a zero-argument function returning it",
            code=USAGE,
        )
    if inspect.isawaitable(app):
        raise fail(
            f"{args.app} is an async factory",
            "serve takes an app or a plain function returning one",
            code=USAGE,
        )
    from penguiflow_a2a.serve import serve

    host, port = _address(args)
    console.print(f"serving {args.app} on http://{host}:{port}/", highlight=False)
    try:
        serve(app, host=host, port=port, log_level="warning")
    except MissingExtraError as exc:
        raise fail(
            f"serving needs the {exc.extra!r} extra", f"pip install 'penguiflow[{exc.extra}]'"
        ) from exc
    return 0


async def _serve_mcp(args: argparse.Namespace) -> int:
    """`serve --mcp`: the planner or flow over stdio or streamable HTTP. On stdio the
    protocol owns stdout, so everything this prints goes to stderr."""
    if args.mcp is None:
        raise fail(
            "serve needs MODULE:ATTR (an A2A app) or --mcp MODULE:FACTORY (an agent or flow)",
            "e.g. penguiflow serve --mcp my_agents:build_planner",
            code=USAGE,
        )
    if args.app is not None:
        raise fail(
            f"serve got both an A2A app ({args.app}) and --mcp {args.mcp}",
            "serve one of them per command",
            code=USAGE,
        )
    spec = args.mcp
    http = args.transport == "http"
    if not http and (args.host is not None or args.port is not None):
        raise fail(
            "--host and --port are options of --transport http (stdio serves on stdin/stdout)",
            f"run penguiflow serve --mcp {spec} --transport http ...",
            code=USAGE,
        )
    # On stdio, stdout is the protocol's: what building the target prints goes to stderr.
    with contextlib.nullcontext() if http else contextlib.redirect_stdout(sys.stderr):
        target = await _mcp_target(spec, load_attribute(spec))
        server = _mcp_server(spec, target, args)
    if http:
        from ..mcp.server import serve_http

        host, port = _address(args)
        url = f"http://{host}:{port}/mcp"

        def ready() -> None:
            print(f"serving {spec} over MCP on {url}", flush=True)

        await serve_http(server, host=host, port=port, on_ready=ready)
    else:
        from ..mcp.server import serve_stdio

        print(f"serving {spec} over MCP on stdio", file=sys.stderr, flush=True)
        await serve_stdio(server)
    return 0


def _mcp_server(spec: str, target: Any, args: argparse.Namespace) -> Any:
    from ..errors import InvalidArgumentError, MissingExtraError

    try:
        from ..mcp.server import mcp_server

        return mcp_server(target, name=args.name or split_spec(spec)[1], tool=args.tool)
    except MissingExtraError as exc:
        raise fail(
            f"serving over MCP needs the {exc.extra!r} extra",
            f"pip install 'penguiflow[{exc.extra}]'",
        ) from exc
    except InvalidArgumentError as exc:
        raise fail(f"cannot serve {spec}: {exc}", "fix that and run again", code=USAGE) from exc


async def _mcp_target(spec: str, target: Any) -> Any:
    """`target` if it is a planner or a flow, else what the factory `target` returns."""
    from ..core import PenguiFlow
    from ..planner import ReactPlanner

    if isinstance(target, ReactPlanner | PenguiFlow):
        return target
    if inspect.isclass(target) or not callable(target) or not takes_no_arguments(target):
        raise fail(
            f"{spec} is a {type(target).__name__}, not {MCP_TARGET} or a factory returning one",
            f"point --mcp at {MCP_TARGET} or a zero-argument function building one",
            code=USAGE,
        )
    made = target()
    if inspect.isawaitable(made):
        made = await made
    if not isinstance(made, ReactPlanner | PenguiFlow):
        raise fail(
            f"{spec} returned a {type(made).__name__}, not {MCP_TARGET}",
            f"make {spec.split(':', 1)[1]} return {MCP_TARGET}",
            code=USAGE,
        )
    return made


def _address(args: argparse.Namespace) -> tuple[str, int]:
    """`--host` and `--port`, or their defaults."""
    return (
        DEFAULT_HOST if args.host is None else args.host,
        DEFAULT_PORT if args.port is None else args.port,
    )


def worker(argv: Sequence[str]) -> int:
    """`penguiflow worker ...`: `python -m penguiflow.bus.worker` with the same options,
    which reports a mistake in one line itself; the exit status is returned."""
    from ..bus.worker import main

    try:
        return main(list(argv), prog="penguiflow worker")
    except SystemExit as exit_:  # --help, or a mistake already reported
        return exit_.code if isinstance(exit_.code, int) else USAGE


async def _viz(args: argparse.Namespace, console: Console) -> int:
    from ..core import PenguiFlow
    from ..viz import flow_to_dot, flow_to_mermaid

    flow = await build(args.flow, load_attribute(args.flow), PenguiFlow, "a PenguiFlow")
    text = flow_to_mermaid(flow) if args.format == "mermaid" else flow_to_dot(flow)
    if args.output is None:
        print(text)
        return 0
    from ._trace import write_file

    write_file(args.output, text if text.endswith("\n") else text + "\n")
    console.print(f"wrote {args.output}", highlight=False)
    return 0


async def _history(args: argparse.Namespace, console: Console) -> int:
    from ..admin import print_history
    from ..state.url import open_store

    url = store_url(args.store)
    if nothing_recorded(args.store):
        raise fail(NOTHING_RECORDED.replace("runs", "traces"), "pass --store")
    with store_errors(url):
        store = open_store(url, create=False, schema=args.schema, prefix=args.prefix)
        return await print_history(
            store,
            args.trace_id,
            replay=args.command == "replay",
            tail=args.tail,
            text=args.format == "text",
            delay=getattr(args, "delay", 0.0),
        )
