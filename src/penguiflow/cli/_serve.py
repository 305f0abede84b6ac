"""`penguiflow serve`, `worker`, `viz`, `history` and `replay`: the other programs of
the package, behind the same loading and error reporting."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..state.url import store_url
from ._errors import USAGE, fail, store_errors
from ._load import build, load_attribute, takes_no_arguments
from ._store import NOTHING_RECORDED, STORE_HELP, nothing_recorded

if TYPE_CHECKING:
    from rich.console import Console


def add_commands(commands: Any) -> None:
    """Add `serve`, `worker`, `viz`, `history` and `replay`."""
    serve = commands.add_parser(
        "serve",
        help="serve an A2A app (or a factory of one) with uvicorn",
        description="Serve the ASGI app MODULE:ATTR names (e.g. create_a2a_app(...)), or "
        "the app a zero-argument factory returns. Needs penguiflow[a2a-server].",
    )
    serve.add_argument("app", metavar="MODULE:ATTR", help="an ASGI app or a factory of one")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
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


def _serve(args: argparse.Namespace, console: Console) -> int:
    from ..errors import MissingExtraError

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

    console.print(f"serving {args.app} on http://{args.host}:{args.port}/", highlight=False)
    try:
        serve(app, host=args.host, port=args.port, log_level="warning")
    except MissingExtraError as exc:
        raise fail(
            f"serving needs the {exc.extra!r} extra", f"pip install 'penguiflow[{exc.extra}]'"
        ) from exc
    return 0


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
