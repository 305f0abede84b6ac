"""`penguiflow trace list|show|export|view` and `penguiflow ui`: the recorded runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import webbrowser
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..spans import expand_messages
from ..state.url import store_url
from ._display import cost, duration, number, status_style, when
from ._errors import USAGE, fail, redact, store_errors
from ._store import NOTHING_RECORDED, RECORD_ONE, STORE_HELP, nothing_recorded, opened

if TYPE_CHECKING:
    from rich.console import Console
    from rich.tree import Tree

    from ..spans import RunSummary, Span

RUN_HELP = "a run id, or a unique prefix of one (see 'penguiflow trace list')"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_commands(commands: Any) -> None:
    """Add `trace` (with its subcommands) and `ui`."""
    trace = commands.add_parser("trace", help="list, show, export and view recorded runs")
    actions = trace.add_subparsers(dest="trace_command", metavar="COMMAND", required=True)

    listing = actions.add_parser("list", help="the recorded runs, newest first")
    listing.add_argument("--status", help="only runs with this status (ok, error, paused, ...)")
    listing.add_argument(
        "--search", metavar="TEXT", help="only runs whose id, query, answer ... contain TEXT"
    )
    listing.add_argument("--limit", type=_count, default=20, help="at most N runs (default 20)")
    listing.add_argument("--offset", type=_count, default=0, help="skip the first N runs")
    listing.add_argument("--json", action="store_true", help="JSON lines, one run per line")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="a run as a tree of its spans")
    show.add_argument("run", metavar="RUN", help=RUN_HELP)
    show.set_defaults(handler=_show)

    export = actions.add_parser("export", help="a run's spans as JSON lines or OTLP/JSON")
    export.add_argument("run", metavar="RUN", help=RUN_HELP)
    export.add_argument(
        "--format",
        choices=("jsonl", "otlp"),
        default="jsonl",
        help="jsonl: one span per line; otlp: one OTLP/JSON trace request",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    export.set_defaults(handler=_export)

    view = actions.add_parser("view", help="a run as a self-contained HTML page")
    view.add_argument("run", metavar="RUN", help=RUN_HELP)
    view.add_argument(
        "-o", "--output", metavar="FILE", help="where to write (default .penguiflow/views/)"
    )
    view.add_argument("--open", action="store_true", help="open the page in a web browser")
    view.set_defaults(handler=_view)

    for sub in (listing, show, export, view):
        sub.add_argument("--store", metavar="URL", help=STORE_HELP)

    ui = commands.add_parser("ui", help="browse the recorded runs in a web browser")
    ui.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    ui.add_argument("--port", type=int, default=8765, help="default 8765")
    ui.add_argument("--store", metavar="URL", help=STORE_HELP)
    ui.set_defaults(handler=_ui)


async def resolve(store: Any, ref: str) -> tuple[RunSummary, list[Span]]:
    """The run `ref` names (a run id or a unique prefix): its summary and spans."""
    needle = ref.strip().lower()
    if not needle:
        raise fail("the run id is empty", RUN_FIX, code=USAGE)
    runs = [
        run
        for run in await store.list_runs(text=needle, limit=None)
        if run.run_id.lower().startswith(needle)
    ]
    exact = [run for run in runs if run.run_id.lower() == needle]
    if exact:
        runs = exact
    if not runs:
        raise fail(f"no recorded run matches {ref!r}", RUN_FIX)
    if len(runs) > 1:
        shown = ", ".join(run.run_id[:12] for run in runs[:3])
        more = ", ..." if len(runs) > 3 else ""
        raise fail(
            f"run prefix {ref!r} is ambiguous: {len(runs)} runs match ({shown}{more})",
            "give more characters of the run id",
            code=USAGE,
        )
    return runs[0], expand_messages(await store.load_run(runs[0].run_id))


RUN_FIX = "see 'penguiflow trace list' for the recorded runs (and check --store)"


async def _list(args: argparse.Namespace, console: Console) -> int:
    from rich.markup import escape
    from rich.table import Table

    if nothing_recorded(args.store):
        console.print(f"{NOTHING_RECORDED}; {RECORD_ONE}", highlight=False)
        return 0
    async with opened(args.store, create=False) as store:
        runs = await store.list_runs(
            status=args.status, text=args.search, offset=args.offset, limit=args.limit
        )
    if args.json:
        for run in runs:
            print(json.dumps(run.to_dict(), sort_keys=True, default=str))
        return 0
    if not runs:
        console.print("no runs match", highlight=False)
        return 0
    table = Table(box=None, header_style="bold")
    for column in ("id", "kind", "name", "status", "start", "duration"):
        table.add_column(column, no_wrap=True)
    for column in ("llm calls", "tokens", "cost", "spans"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        attrs = run.attributes
        took = None if run.end is None else (run.end - run.start) * 1000
        table.add_row(
            run.run_id[:8],
            run.kind,
            escape(run.name),
            f"[{status_style(run.status)}]{run.status}[/]",
            when(run.start),
            duration(attrs.get("wall_ms") if run.kind == "run" and took is None else took),
            number(attrs.get("llm_calls")),
            number(attrs.get("total_tokens")),
            cost(attrs.get("cost_usd"), attrs.get("unpriced_calls")),
            str(run.span_count),
        )
    console.print(table)
    return 0


async def _load(args: argparse.Namespace) -> tuple[RunSummary, list[Span]]:
    async with opened(args.store, create=False) as store:
        return await resolve(store, args.run)


async def _show(args: argparse.Namespace, console: Console) -> int:
    summary, spans = await _load(args)
    console.print(span_tree(summary, spans))
    return 0


def span_tree(summary: RunSummary, spans: Sequence[Span]) -> Tree:
    """A rich tree of the run's spans: durations, statuses and key attributes."""
    from rich.tree import Tree

    children: dict[str | None, list[Span]] = {}
    ids = {span.span_id for span in spans}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    tree = Tree(f"run {summary.run_id}  {when(summary.start)}", highlight=False)

    def grow(branch: Tree, parent: str | None) -> None:
        for span in children.get(parent, []):
            grow(branch.add(_label(span), highlight=False), span.span_id)

    grow(tree, None)
    return tree


_KEYS = {
    "run": ("query", "reason", "llm_calls", "total_tokens", "cost_usd", "tool_calls"),
    "step": ("action", "thought"),
    "llm": ("model", "purpose", "prompt_tokens", "completion_tokens", "cost_usd"),
    "tool": ("branch", "call_id"),
    "join": ("call_id",),
    "pause": ("reason",),
    "node": ("node", "node_id"),
}


def _label(span: Span) -> str:
    style = status_style(span.status)
    named = span.name == span.kind or span.name.startswith(f"{span.kind} ")
    parts = [
        f"[bold]{_escape(span.name)}[/]" if named else f"[bold]{span.kind}[/] {_escape(span.name)}",
        duration(span.duration_ms),
        f"[{style}]{span.status}[/]",
    ]
    if span.attempt > 1:
        parts.append(f"attempt {span.attempt}")
    for key in _KEYS.get(span.kind, ()):
        value = span.attributes.get(key)
        if value is None or value == "":
            continue
        if key == "cost_usd":
            text = cost(value, span.attributes.get("unpriced_calls"))
        else:
            text = str(value)
        if len(text) > 60:
            text = text[:57] + "..."
        parts.append(f"[dim]{key}=[/]{_escape(text)}")
    if span.error_type or span.error_message:
        error = ": ".join(p for p in (span.error_type, span.error_message) if p)
        parts.append(f"[red]{_escape(error)}[/]")
    return "  ".join(parts)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text.replace("\n", " "))


async def _export(args: argparse.Namespace, console: Console) -> int:
    _, spans = await _load(args)
    if args.format == "jsonl":
        text = "".join(
            json.dumps(span.to_dict(), sort_keys=True, default=str) + "\n" for span in spans
        )
    else:
        from ..tracing.otlp_json import spans_to_otlp

        text = json.dumps(spans_to_otlp(spans), sort_keys=True) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_file(args.output, text)
    console.print(f"wrote {len(spans)} spans to {args.output}", highlight=False)
    return 0


async def _view(args: argparse.Namespace, console: Console) -> int:
    summary, spans = await _load(args)
    _publish(args.output or f".penguiflow/views/{summary.run_id}.html", summary, spans, args.open)
    return 0


def _publish(path: str, summary: RunSummary, spans: Sequence[Span], open_it: bool) -> None:
    from ..tracing.viewer import render_run_html

    write_file(path, render_run_html(summary, spans))
    print(os.path.abspath(path))
    if open_it:
        webbrowser.open(f"file://{os.path.abspath(path)}")


def write_file(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    try:
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}", "choose another -o FILE") from exc


def _ui(args: argparse.Namespace, console: Console) -> int:
    from ..errors import MissingExtraError
    from ..state.url import open_store
    from ..tracing.ui import serve_ui

    url = store_url(args.store)
    with store_errors(url):
        store = open_store(url, create=True)
    console.print(
        f"penguiflow ui: http://{args.host}:{args.port}/ (store {redact(url)}); Ctrl-C stops it",
        highlight=False,
    )
    try:
        # uvicorn runs its own event loop; the store's connections live and end in it.
        serve_ui(store, host=args.host, port=args.port)
    except MissingExtraError as exc:
        raise fail(
            f"the UI needs the {exc.extra!r} extra", f"pip install 'penguiflow[{exc.extra}]'"
        ) from exc
    return 0
