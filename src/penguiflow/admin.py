"""`penguiflow-admin`: inspect trace history stored by any state store.

`--state-store` takes a factory (`package.module:callable`, as specified) or a store
URL: a SQLite file (`sqlite:///path/to/state.db` or a path ending in `.db`/`.sqlite`),
PostgreSQL (`postgresql://user@host/db`, `--schema`) or Redis (`redis://host:6379/0`,
`--prefix`). Output is JSON lines (`--format jsonl`, the default) or readable text.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from .errors import InvalidArgumentError
from .state import StateStore, StoredEvent
from .state.url import open_store

__all__ = ["load_state_store", "main", "print_history", "render_events"]

_FACTORY_FORM = "state store spec must be in the form 'package.module:callable'"
_REQUIRED = ("save_event", "load_history", "save_remote_binding")


async def load_state_store(spec: str) -> StateStore:
    """Build the store named by `spec` (a `module:callable` factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(_FACTORY_FORM)
    module = importlib.import_module(module_name)
    factory = getattr(module, attr, None)
    if factory is None:
        raise InvalidArgumentError(f"{spec!r} does not resolve to a callable")
    if not callable(factory):
        raise TypeError(f"{spec!r} resolved to {type(factory)!r}, not a callable")
    store = factory()
    if inspect.iscoroutine(store):
        store = await store
    if not all(hasattr(store, name) for name in _REQUIRED):
        raise TypeError(
            "StateStore factories must implement save_event/load_history/save_remote_binding"
        )
    return store  # type: ignore[no-any-return]


def _open_url(spec: str, *, schema: str, prefix: str) -> Any:
    """A store for a URL or a SQLite file path, or None if `spec` is neither.

    `penguiflow-admin` keeps its own `sqlite://` reading, older than
    `penguiflow.state.open_store`'s: everything after `sqlite://` is the path
    (`sqlite:///abs/file.db`, `sqlite://relative.db`). Existing files only.
    """
    lowered = spec.lower()
    if lowered.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        if not path:
            raise InvalidArgumentError(
                "sqlite:// URL needs a file path, e.g. sqlite:///var/state.db"
            )
        return open_store(path, create=False)
    if lowered.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in spec:
        return open_store(spec, create=False)
    if "://" in spec:
        return open_store(spec, create=False, schema=schema, prefix=prefix)
    return None


def _jsonable(value: Any) -> Any:
    return str(value)


def render_events(events: Sequence[StoredEvent], *, tail: int | None = None) -> list[str]:
    """One JSON line per event (payload first, then the record's fields if missing)."""
    if tail is not None:
        events = events[-tail:] if tail > 0 else []
    lines = []
    for event in events:
        data = dict(event.payload)
        data.setdefault("event", event.kind)
        data.setdefault("trace_id", event.trace_id)
        data.setdefault("node_name", event.node_name)
        data.setdefault("node_id", event.node_id)
        data.setdefault("ts", event.ts)
        lines.append(json.dumps(data, sort_keys=True, default=_jsonable))
    return lines


def _render_text(events: Sequence[StoredEvent], *, tail: int | None) -> list[str]:
    if tail is not None:
        events = events[-tail:] if tail > 0 else []
    lines = []
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.ts))
        extra = {k: v for k, v in event.payload.items() if k in ("attempt", "latency_ms")}
        details = " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
        lines.append(f"{when}Z  {event.kind:<22} {event.node_name or '-':<16} {details}".rstrip())
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="penguiflow-admin",
        description="Inspect PenguiFlow trace history via configured StateStore adapters.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, trace_help: str) -> None:
        sub.add_argument("trace_id", help=trace_help)
        sub.add_argument(
            "--state-store",
            required=True,
            help="Import path to a factory returning a StateStore (module:callable)",
        )
        sub.add_argument(
            "--tail",
            type=int,
            default=None,
            help="Only show the last N events from the trace history.",
        )
        sub.add_argument("--schema", default="penguiflow", help="PostgreSQL schema of the store.")
        sub.add_argument("--prefix", default="penguiflow", help="Redis key prefix of the store.")
        sub.add_argument(
            "--format", choices=("jsonl", "text"), default="jsonl", help="Output format."
        )

    history = commands.add_parser("history", help="Print stored events for a trace as JSON lines.")
    common(history, "Trace identifier to inspect")
    replay = commands.add_parser(
        "replay", help="Replay events with optional delay to mimic runtime emission."
    )
    common(replay, "Trace identifier to replay")
    replay.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="Sleep duration (seconds) between events when replaying.",
    )
    return parser


async def _run(args: argparse.Namespace) -> int:
    store = _open_url(args.state_store, schema=args.schema, prefix=args.prefix)
    if store is None:
        store = await load_state_store(args.state_store)
    return await print_history(
        store,
        args.trace_id,
        replay=args.command == "replay",
        tail=args.tail,
        text=args.format == "text",
        delay=getattr(args, "delay", 0.0),
    )


async def print_history(
    store: StateStore,
    trace_id: str,
    *,
    replay: bool = False,
    tail: int | None = None,
    text: bool = False,
    delay: float = 0.0,
) -> int:
    """Print a trace's stored events (`history`, or `replay` with a header and `delay`),
    then close the store; returns the exit status (0).

    The shared body of `penguiflow-admin` and `penguiflow history|replay`.
    """
    try:
        events = list(await store.load_history(trace_id))
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result
    render = _render_text if text else render_events
    lines = render(events, tail=tail)
    if not replay:
        if not events:
            print(f"# trace {trace_id} has no stored events", file=sys.stderr)
        for line in lines:
            print(line)
        return 0
    if not lines:
        print(f"# trace {trace_id} has no stored events")
        return 0
    print(f"# replay trace={trace_id} events={len(lines)}")
    for line in lines:
        print(line, flush=True)
        if delay > 0:
            await asyncio.sleep(delay)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `penguiflow-admin`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
