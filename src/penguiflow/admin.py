"""`penguiflow-admin`: inspect trace history stored by any state store.

`--state-store` takes a factory (`package.module:callable`, as specified) or a store
URL, read as `penguiflow.state.open_store` reads it: a SQLite file
(`sqlite:///relative.db`, three slashes: relative to the working directory;
`sqlite:////abs/path.db`, four: absolute; or a path ending in `.db`/`.sqlite`),
PostgreSQL (`postgresql://user@host/db`, `--schema`) or Redis
(`redis://host:6379/0`, `--prefix`). Sub-commands: `history` and `replay` (as
specified) and `traces` (the stored traces, newest first). Output is JSON lines
(`--format jsonl`, the default) or readable text.

A mistake (a wrong store, an unreachable server, an unknown trace) is one line on
stderr, `error: <what was wrong>; <how to fix it>`, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidArgumentError, MissingExtraError, PenguiflowError, exception_text
from .state import StateStore, StateStoreError, StoredEvent, TraceListStore, TraceSummary
from .state.errors import StateFileNotFoundError
from .state.url import open_store

__all__ = ["load_state_store", "main", "print_history", "render_events"]

_FACTORY_FORM = "state store spec must be in the form 'package.module:callable'"
_REQUIRED = ("save_event", "load_history", "save_remote_binding")
_NOT_A_STORE = "StateStore factories must implement save_event/load_history/save_remote_binding"
_URL_FORMS = (
    "sqlite:///relative.db, sqlite:////absolute/path.db, a SQLite file path, "
    "postgresql://user@host:5432/db, redis://host:6379/0"
)
_FORMS = f"{_URL_FORMS} or package.module:callable"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_POSTGRES = ("postgresql://", "postgres://")
_REDIS = ("redis://", "rediss://", "unix://")
_STORE_FIX = "a function or class in that module returning a StateStore"


class _Failure(PenguiflowError):
    """A mistake the user can fix: printed as `error: <what>; <fix>`."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}; {fix}")


class _NotAStoreError(PenguiflowError, TypeError):
    """A factory returned something that is not a `StateStore` (specified as a
    `TypeError`); `made` is what it returned."""

    def __init__(self, made: object) -> None:
        super().__init__(_NOT_A_STORE)
        self.made = made


def _factory(spec: str) -> Callable[[], Any]:
    """The callable `spec` (`module:callable`) names (the specified errors)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(_FACTORY_FORM)
    module = importlib.import_module(module_name)
    factory = getattr(module, attr, None)
    if factory is None:
        raise InvalidArgumentError(f"{spec!r} does not resolve to a callable")
    if not callable(factory):
        raise TypeError(f"{spec!r} resolved to {type(factory)!r}, not a callable")
    return factory  # type: ignore[no-any-return]


async def _build(factory: Callable[[], Any]) -> StateStore:
    store = factory()
    if inspect.iscoroutine(store):
        store = await store
    if not all(hasattr(store, name) for name in _REQUIRED):
        raise _NotAStoreError(store)
    return store  # type: ignore[no-any-return]


async def load_state_store(spec: str) -> StateStore:
    """Build the store named by `spec` (a `module:callable` factory)."""
    return await _build(_factory(spec))


def _redact(url: str) -> str:
    """`url` without the password of its user part."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _kind(spec: str) -> str | None:
    """Which store a `--state-store` value names: `sqlite`, `postgres`, `redis`,
    `url` (another scheme), or None (a factory)."""
    lowered = spec.strip().lower()
    if not lowered or lowered.startswith("sqlite:"):
        return "sqlite"
    if lowered.startswith(_POSTGRES):
        return "postgres"
    if lowered.startswith(_REDIS):
        return "redis"
    if "://" in spec:
        return "url"
    if lowered.endswith(_SQLITE_SUFFIXES) or (":" not in spec and os.path.exists(spec)):
        return "sqlite"
    return None


def _open_url(spec: str, *, schema: str, prefix: str) -> Any:
    """A store for a URL or a SQLite file path, or None if `spec` is neither.

    URLs read as `penguiflow.state.open_store` reads them (`sqlite:///relative.db`,
    `sqlite:////abs/path.db`); only existing SQLite files are opened.
    """
    if _kind(spec) is None:
        return None
    return open_store(spec, create=False, schema=schema, prefix=prefix)


async def _open(args: argparse.Namespace) -> tuple[Any, str]:
    """The store `--state-store` names, and how to name it to the user."""
    spec: str = args.state_store
    kind = _kind(spec)
    if kind is None:
        return await _open_factory(spec), spec
    shown = _redact(spec)
    try:
        store = open_store(spec, create=False, schema=args.schema, prefix=args.prefix)
    except StateFileNotFoundError as exc:
        raise _Failure(
            f"{exc}{_absolute(exc.path)}",
            "sqlite:///x.db is relative to the working directory, sqlite:////x.db "
            "absolute: check --state-store",
        ) from exc
    except InvalidArgumentError as exc:
        fix = {
            "postgres": "pass --schema a lower-case SQL identifier",
            "redis": "pass --prefix without spaces or glob characters",
        }.get(kind, f"--state-store takes {_FORMS}")
        raise _Failure(str(exc), fix) from exc
    return store, shown


def _absolute(path: str | None) -> str:
    """` (/abs/path)` for a relative path, else nothing."""
    return f" ({os.path.abspath(path)})" if path and not os.path.isabs(path) else ""


async def _open_factory(spec: str) -> StateStore:
    module_name = spec.partition(":")[0]
    try:
        factory = _factory(spec)
    except InvalidArgumentError as exc:
        if str(exc) == _FACTORY_FORM:
            raise _Failure(str(exc), f"or a store URL: {_URL_FORMS}") from exc
        raise _Failure(str(exc), f"name {_STORE_FIX}") from exc
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise _Failure(
                str(exc), "check the module path in --state-store (is it on PYTHONPATH?)"
            ) from exc
        raise _Failure(f"importing {module_name!r} failed: {exc}", "fix that module") from exc
    except TypeError as exc:
        raise _Failure(str(exc), f"name {_STORE_FIX}") from exc
    except Exception as exc:  # the module's own code failed while importing
        raise _Failure(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exception_text(exc)}",
            "fix that module",
        ) from exc
    try:
        return await _build(factory)
    except _NotAStoreError as exc:
        raise _Failure(
            f"{exc} ({spec!r} returned a {type(exc.made).__name__})",
            "return a store such as penguiflow.state.SQLiteStateStore",
        ) from exc
    except Exception as exc:
        raise _Failure(
            f"{exception_text(exc)} ({type(exc).__name__}, raised by the factory {spec!r})",
            "check what the factory needs: it is called with no arguments",
        ) from exc


async def _check(store: Any, shown: str, kind: str | None) -> None:
    """Reach the store now, so that a wrong or unreachable one is reported at open."""
    probe = getattr(store, "schema_version", None)
    if probe is None:
        return
    try:
        await probe()
    except MissingExtraError:
        raise
    except StateStoreError as exc:
        text = str(exc)
        if "is newer than this penguiflow" in text:
            raise _Failure(text, "upgrade penguiflow to read this store") from exc
        if kind == "sqlite":
            raise _Failure(text, f"check that {shown} is a penguiflow SQLite state file") from exc
        cause = exc.__cause__
        detail = ""
        if cause is not None and not isinstance(cause, OSError | TimeoutError):
            detail = f" ({exception_text(cause)})" if exception_text(cause) else ""
        raise _Failure(
            f"{text}{detail} (store {shown})",
            "check that the server is running and that the URL names it",
        ) from exc


async def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


def _jsonable(value: Any) -> Any:
    return str(value)


def _trim(events: Sequence[StoredEvent], tail: int | None) -> Sequence[StoredEvent]:
    if tail is None:
        return events
    return events[-tail:] if tail > 0 else []


def render_events(events: Sequence[StoredEvent], *, tail: int | None = None) -> list[str]:
    """One JSON line per event (payload first, then the record's fields if missing)."""
    lines = []
    for event in _trim(events, tail):
        data = dict(event.payload)
        data.setdefault("event", event.kind)
        data.setdefault("trace_id", event.trace_id)
        data.setdefault("node_name", event.node_name)
        data.setdefault("node_id", event.node_id)
        data.setdefault("ts", event.ts)
        lines.append(json.dumps(data, sort_keys=True, default=_jsonable))
    return lines


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def _detail(key: str, value: Any) -> str:
    if key == "latency_ms" and isinstance(value, float):
        return f"{key}={value:.2f}"  # milliseconds to 10 µs; JSON lines keep every digit
    return f"{key}={value}"


def _render_text(events: Sequence[StoredEvent], *, tail: int | None) -> list[str]:
    lines = []
    for event in _trim(events, tail):
        extra = {k: v for k, v in event.payload.items() if k in ("attempt", "latency_ms")}
        details = " ".join(_detail(k, v) for k, v in extra.items() if v is not None)
        name = event.node_name or "-"
        lines.append(f"{_when(event.ts)}  {event.kind:<22} {name:<16} {details}".rstrip())
    return lines


def _render_traces(traces: Sequence[TraceSummary], *, text: bool) -> list[str]:
    if text:
        return [f"{_when(t.last_ts)}  events={t.event_count:<6} {t.trace_id}" for t in traces]
    return [
        json.dumps(
            {"trace_id": t.trace_id, "event_count": t.event_count, "last_ts": t.last_ts},
            sort_keys=True,
        )
        for t in traces
    ]


def _count(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value!r}")
        return number

    return parse


_EPILOG = f"--state-store takes {_FORMS}."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="penguiflow-admin",
        description="Inspect PenguiFlow trace history via configured StateStore adapters.",
        epilog=_EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def store_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--state-store",
            required=True,
            help="Import path to a factory returning a StateStore (module:callable)",
        )
        sub.add_argument("--schema", default="penguiflow", help="PostgreSQL schema of the store.")
        sub.add_argument("--prefix", default="penguiflow", help="Redis key prefix of the store.")
        sub.add_argument(
            "--format", choices=("jsonl", "text"), default="jsonl", help="Output format."
        )

    def trace_options(sub: argparse.ArgumentParser, trace_help: str) -> None:
        sub.add_argument("trace_id", help=trace_help)
        store_options(sub)
        sub.add_argument(
            "--tail",
            type=int,
            default=None,
            help="Only show the last N events from the trace history.",
        )

    history = commands.add_parser(
        "history", help="Print stored events for a trace as JSON lines.", epilog=_EPILOG
    )
    trace_options(history, "Trace identifier to inspect")
    replay = commands.add_parser(
        "replay",
        help="Replay events with optional delay to mimic runtime emission.",
        epilog=_EPILOG,
    )
    trace_options(replay, "Trace identifier to replay")
    replay.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="Sleep duration (seconds) between events when replaying.",
    )
    traces = commands.add_parser(
        "traces",
        help="List the stored traces, newest first, with their event counts.",
        epilog=_EPILOG,
    )
    store_options(traces)
    traces.add_argument(
        "--limit", type=_count(1), default=50, help="Show at most N traces (default 50)."
    )
    traces.add_argument(
        "--offset", type=_count(0), default=0, help="Skip the N newest traces first."
    )
    return parser


def _store_args(args: argparse.Namespace, shown: str) -> str:
    """The options naming this store again, for a suggested command."""
    words = [f"--state-store {shown}"]
    kind = _kind(args.state_store)
    if kind == "postgres" and args.schema != "penguiflow":
        words.append(f"--schema {args.schema}")
    if kind == "redis" and args.prefix != "penguiflow":
        words.append(f"--prefix {args.prefix}")
    return " ".join(words)


async def _run(args: argparse.Namespace) -> int:
    store, shown = await _open(args)
    try:
        await _check(store, shown, _kind(args.state_store))
        if args.command == "traces":
            traces = await _list_traces(store, shown, offset=args.offset, limit=args.limit)
        else:
            events = list(await store.load_history(args.trace_id))
    finally:
        await _close(store)
    if args.command == "traces":
        if not traces:
            print(f"# no traces are stored in {shown}", file=sys.stderr)
        for line in _render_traces(traces, text=args.format == "text"):
            print(line)
        return 0
    if not events:
        raise _Failure(
            f"no events are stored for trace {args.trace_id!r} in {shown}",
            f"check the trace id ('penguiflow-admin traces {_store_args(args, shown)}' "
            "lists the stored traces)",
        )
    return await _print(
        events,
        args.trace_id,
        replay=args.command == "replay",
        tail=args.tail,
        text=args.format == "text",
        delay=getattr(args, "delay", 0.0),
    )


async def _list_traces(
    store: Any, shown: str, *, offset: int, limit: int
) -> Sequence[TraceSummary]:
    if not isinstance(store, TraceListStore):
        raise _Failure(
            f"the store {shown} cannot list its traces (it has no list_traces)",
            "use a store from penguiflow.state, or implement penguiflow.state.TraceListStore",
        )
    return await store.list_traces(offset=offset, limit=limit)


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
    then close the store; returns the exit status.

    The shared body of `penguiflow history|replay`: a trace without events is an error
    (one line on stderr, status 1), as it is for `penguiflow-admin`.
    """
    try:
        events = list(await store.load_history(trace_id))
    finally:
        await _close(store)
    if not events:
        print(
            f"penguiflow: no events are stored for trace {trace_id!r}; check the trace id",
            file=sys.stderr,
        )
        return 1
    return await _print(events, trace_id, replay=replay, tail=tail, text=text, delay=delay)


async def _print(
    events: Sequence[StoredEvent],
    trace_id: str,
    *,
    replay: bool,
    tail: int | None,
    text: bool,
    delay: float,
) -> int:
    render = _render_text if text else render_events
    lines = render(events, tail=tail)
    if not replay:
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
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"error: {_one_line(exception_text(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
