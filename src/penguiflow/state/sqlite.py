"""`SQLiteStateStore`: the embedded default, one file, no server.

Standard-library `sqlite3`, run in a worker thread so the event loop never blocks.
WAL journal, a busy timeout, `synchronous=FULL` by default (a pause acknowledged to
the caller survives a power cut). The schema is created and migrated by the store
(table `penguiflow_schema`). Resume tokens are kept only as SHA-256 digests and are
consumed atomically (`BEGIN IMMEDIATE` + `DELETE ... RETURNING`): of many concurrent
resumes of one token exactly one gets the state.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidArgumentError
from ._codec import (
    check_id,
    check_name,
    check_page,
    check_run_filters,
    decode_binding,
    decode_event,
    decode_span_chunk,
    decode_state,
    decode_summary,
    decode_task,
    encode,
    encode_binding,
    encode_event,
    encode_span_chunks,
    encode_task,
    event_key,
    event_ts,
    require_mapping,
    token_digest,
)
from .errors import ResumeTokenError, StateStoreError
from .protocol import RemoteBinding, StoredEvent, StoredTask, TraceSummary, timeout_option

if TYPE_CHECKING:
    from ..spans import RunSummary, Span

__all__ = ["SQLiteStateStore"]

T = TypeVar("T")

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            trace_id TEXT NOT NULL,
            digest TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX events_by_trace ON events (trace_id, id)",
        """CREATE TABLE remote_bindings (
            trace_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (trace_id, task_id)
        )""",
        """CREATE TABLE planner_state (
            digest TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            expires_at REAL
        )""",
    ),
    (
        # Recorded runs: every span by (run, span); one row per run whose root was saved.
        """CREATE TABLE spans (
            run_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            start REAL NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (run_id, span_id)
        )""",
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            start REAL NOT NULL,
            status TEXT NOT NULL,
            kind TEXT NOT NULL,
            search TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX runs_by_start ON runs (start DESC, run_id DESC)",
    ),
    (
        # Spans appended in chunks (one row per run per batch, a JSON array): appending
        # keeps a write to a few pages, where a row per span keyed by random ids
        # touched a page per span. The last save of a span wins when it is read.
        """CREATE TABLE span_chunks (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX span_chunks_by_run ON span_chunks (run_id, id)",
        "INSERT INTO span_chunks (run_id, body) "
        "SELECT run_id, '[' || body || ']' FROM spans ORDER BY run_id, start, span_id",
        "DROP TABLE spans",
    ),
    (
        # A2A task records, and the cancel requests queued for the replica running them
        # (at most one per task).
        """CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            replica TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        """CREATE TABLE task_cancels (
            task_id TEXT PRIMARY KEY,
            replica TEXT NOT NULL
        )""",
        "CREATE INDEX task_cancels_by_replica ON task_cancels (replica)",
    ),
    (
        # The list of traces (`list_traces`): one row per named trace, kept with its
        # events by `save_event`, indexed newest first. Filled from the events already
        # stored; a row that is not a readable event counts, without a time (0).
        """CREATE TABLE traces (
            trace_id TEXT PRIMARY KEY,
            event_count INTEGER NOT NULL,
            last_ts REAL NOT NULL
        )""",
        "CREATE INDEX traces_by_last_ts ON traces (last_ts DESC, trace_id DESC)",
        "INSERT INTO traces (trace_id, event_count, last_ts) "
        "SELECT trace_id, COUNT(*), COALESCE(MAX(CASE WHEN json_valid(body) THEN "
        "CASE WHEN json_type(body, '$.ts') IN ('integer', 'real') "
        "THEN json_extract(body, '$.ts') END END), 0) "
        "FROM events WHERE trace_id <> '' GROUP BY trace_id",
    ),
)

_SYNC_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


class SQLiteStateStore:
    """Trace history (and its list of traces), remote bindings, planner pauses, runs and
    A2A tasks in one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        ttl_s: float | None = None,
        time_source: Callable[[], float] = time.time,
        timeout_s: float | None = 30.0,
    ) -> None:
        if synchronous.upper() not in _SYNC_MODES:
            raise InvalidArgumentError(f"synchronous must be one of {sorted(_SYNC_MODES)}")
        self._path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self.timeout_s = timeout_option(timeout_s)
        self._ttl_s = ttl_s
        self._now = time_source
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStateStore({self._path!r})"

    # -- connection ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            self._enable_wal(conn)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StateStoreError(f"cannot open SQLite store {self._path}: {exc}") from exc
        self._conn = conn
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, waiting within the busy timeout like any statement.

        SQLite does not call its busy handler while another connection is creating
        the same fresh file, so a cold open from several processes at once answers
        "database is locked" at once: retry with a short backoff until the timeout.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        pause = 0.002
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS penguiflow_schema "
                "(version INTEGER NOT NULL, applied_at REAL NOT NULL)"
            )
            row = conn.execute("SELECT MAX(version) FROM penguiflow_schema").fetchone()
            current = row[0] or 0
            if current > len(_MIGRATIONS):
                raise StateStoreError(
                    f"store schema version {current} is newer than this penguiflow "
                    f"({len(_MIGRATIONS)})"
                )
            for version, statements in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO penguiflow_schema (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                conn = self._connect()
                try:
                    return work(conn)
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise StateStoreError(f"SQLite store {self._path}: {exc}") from exc

        if self.timeout_s is None:
            return await asyncio.to_thread(call)
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), self.timeout_s)
        except TimeoutError as exc:
            raise StateStoreError(
                f"SQLite store {self._path} did not answer within {self.timeout_s:g}s"
            ) from exc

    async def schema_version(self) -> int:
        """The schema version the store is at."""
        row = await self._run(
            lambda c: c.execute("SELECT MAX(version) FROM penguiflow_schema").fetchone()
        )
        return int(row[0])

    async def synchronous(self) -> int:
        """SQLite's `synchronous` setting in force (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA)."""
        return int(await self._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]))

    async def close(self) -> None:
        """Close the connection (the store reopens on next use)."""

        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)

    # -- trace history and bindings --------------------------------------------------

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored).

        The trace's row in the list of traces is updated in the same transaction.
        """
        body = encode_event(event)
        trace = event.trace_id or ""
        params = (trace, event_key(body), body)
        ts = event_ts(event)

        def write(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            added = c.execute(
                "INSERT OR IGNORE INTO events (trace_id, digest, body) VALUES (?, ?, ?)", params
            ).rowcount
            if added and trace:
                c.execute(
                    "INSERT INTO traces (trace_id, event_count, last_ts) VALUES (?, 1, ?) "
                    "ON CONFLICT (trace_id) DO UPDATE SET event_count = event_count + 1, "
                    "last_ts = MAX(last_ts, excluded.last_ts)",
                    (trace, ts),
                )
            c.execute("COMMIT")

        await self._run(write)

    async def load_history(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[StoredEvent]:
        """The trace's events in the order they were saved (`offset`/`limit` page them)."""
        offset, limit = check_page(offset, limit)
        check_id(trace_id, "trace_id")
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, body FROM events WHERE trace_id = ? ORDER BY id LIMIT ? OFFSET ?",
                (trace_id, -1 if limit is None else limit, offset),
            ).fetchall()
        )
        return [decode_event(body, key=f"events#{row_id}") for row_id, body in rows]

    async def list_traces(
        self, *, offset: int = 0, limit: int | None = 50
    ) -> Sequence[TraceSummary]:
        """The stored traces, newest first by their latest event time (paged)."""
        offset, limit = check_page(offset, limit)
        rows = await self._run(
            lambda c: c.execute(
                "SELECT trace_id, event_count, last_ts FROM traces "
                "ORDER BY last_ts DESC, trace_id DESC LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            ).fetchall()
        )
        return [TraceSummary(trace, int(count), float(ts)) for trace, count, ts in rows]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Record (or replace) the binding of a trace to a remote task."""
        params = (binding.trace_id, binding.task_id, encode_binding(binding))
        await self._run(
            lambda c: c.execute(
                "INSERT INTO remote_bindings (trace_id, task_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (trace_id, task_id) DO UPDATE SET body = excluded.body",
                params,
            )
        )

    async def load_remote_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        """The remote tasks bound to a trace."""
        check_id(trace_id, "trace_id")
        rows = await self._run(
            lambda c: c.execute(
                "SELECT task_id, body FROM remote_bindings WHERE trace_id = ? ORDER BY task_id",
                (trace_id,),
            ).fetchall()
        )
        return [decode_binding(body, key=f"{trace_id}/{task}") for task, body in rows]

    async def delete_trace(self, trace_id: str) -> None:
        """Forget a trace's history and bindings."""
        check_id(trace_id, "trace_id")

        def delete(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM events WHERE trace_id = ?", (trace_id,))
            c.execute("DELETE FROM traces WHERE trace_id = ?", (trace_id,))
            c.execute("DELETE FROM remote_bindings WHERE trace_id = ?", (trace_id,))
            c.execute("COMMIT")

        await self._run(delete)

    # -- planner pauses --------------------------------------------------------------

    async def save_planner_state(
        self, token: str, payload: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        """Keep a paused planner's state under the token's digest (re-save replaces)."""
        body = encode(dict(require_mapping(payload)), what="planner state")
        expires = self._now() + self._ttl_s if self._ttl_s is not None else None
        params = (token_digest(token, tenant), body, expires)
        await self._run(
            lambda c: c.execute(
                "INSERT INTO planner_state (digest, body, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (digest) DO UPDATE SET body = excluded.body, "
                "expires_at = excluded.expires_at",
                params,
            )
        )

    async def load_planner_state(self, token: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Take the state for a token, once, atomically. Raises `ResumeTokenError`."""
        digest = token_digest(token, tenant)

        def take(c: sqlite3.Connection) -> tuple[str, float | None] | None:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute(
                "DELETE FROM planner_state WHERE digest = ? RETURNING body, expires_at", (digest,)
            ).fetchone()
            c.execute("COMMIT")
            return None if row is None else (row[0], row[1])

        row = await self._run(take)
        if row is None or (row[1] is not None and self._now() >= row[1]):
            raise ResumeTokenError()
        return decode_state(row[0], key=digest[:12])

    async def discard_planner_state(self, token: str, *, tenant: str | None = None) -> bool:
        """Drop a token's state; True if there was one."""
        digest = token_digest(token, tenant)
        cursor = await self._run(
            lambda c: c.execute("DELETE FROM planner_state WHERE digest = ?", (digest,))
        )
        return cursor.rowcount > 0

    # -- recorded runs (spans) -------------------------------------------------------

    async def save_spans(self, spans: Sequence[Span]) -> None:
        """Append the spans (a chunk per run); root spans also update the run list.

        One transaction per batch: `InvalidDataError` (checked before writing) or a
        failed write leaves the store unchanged.
        """
        chunks, runs = encode_span_chunks(spans)
        if not chunks:
            return
        chunk_rows = [(chunk.run_id, chunk.body) for chunk in chunks]
        run_rows = [(r.run_id, r.start, r.status, r.kind, r.search, r.body) for r in runs]

        def write(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.executemany("INSERT INTO span_chunks (run_id, body) VALUES (?, ?)", chunk_rows)
            if run_rows:
                c.executemany(
                    "INSERT INTO runs (run_id, start, status, kind, search, body) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                    "start = excluded.start, status = excluded.status, kind = excluded.kind, "
                    "search = excluded.search, body = excluded.body",
                    run_rows,
                )
            c.execute("COMMIT")

        await self._run(write)

    async def list_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int | None = 50,
    ) -> Sequence[RunSummary]:
        """Summaries of the runs whose root was saved, newest first (filtered, paged)."""
        offset, limit = check_page(offset, limit)
        status, kind, needle = check_run_filters(status, kind, text)
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if needle is not None:
            where.append("instr(search, ?) > 0")  # a plain substring: no LIKE wildcards
            params.append(needle)
        query = (
            "SELECT run_id, body, (SELECT COUNT(DISTINCT json_extract(span.value, '$.span_id')) "
            "FROM span_chunks, json_each(span_chunks.body) AS span "
            "WHERE span_chunks.run_id = runs.run_id) FROM runs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY start DESC, run_id DESC LIMIT ? OFFSET ?"
        )
        params += [-1 if limit is None else limit, offset]
        rows = await self._run(lambda c: c.execute(query, params).fetchall())
        return [decode_summary(body, count, key=run_id) for run_id, body, count in rows]

    async def load_run(self, run_id: str) -> Sequence[Span]:
        """Every span of the run, by start time (ties by span id); `[]` for an unknown run."""
        check_id(run_id, "run_id")
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, body FROM span_chunks WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        )
        latest: dict[str, Span] = {}
        for chunk_id, body in rows:
            for span in decode_span_chunk(body, key=f"{run_id}#{chunk_id}"):
                latest[span.span_id] = span
        return sorted(latest.values(), key=_span_order)

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its spans and its entry in the run list."""
        check_id(run_id, "run_id")

        def delete(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM span_chunks WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            c.execute("COMMIT")

        await self._run(delete)

    # -- A2A tasks -------------------------------------------------------------------

    async def save_task(self, task: StoredTask) -> None:
        """Insert or replace the record of `task.task_id` (a queued cancel request stays).

        `InvalidDataError` (checked before writing) leaves the store unchanged.
        """
        params = (task.task_id, task.replica, encode_task(task))
        await self._run(
            lambda c: c.execute(
                "INSERT INTO tasks (task_id, replica, body) VALUES (?, ?, ?) "
                "ON CONFLICT (task_id) DO UPDATE SET replica = excluded.replica, "
                "body = excluded.body",
                params,
            )
        )

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The record, or `None` for an unknown task id."""
        check_name(task_id, "task_id")
        row = await self._run(
            lambda c: c.execute("SELECT body FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        )
        return None if row is None else decode_task(row[0], key=task_id)

    async def request_task_cancel(self, task_id: str) -> bool:
        """Queue a cancel request for the replica the record names; `False` if unknown.

        A task has at most one queued request: a repeated request before the take
        queues it once, for the replica the record names now.
        """
        check_name(task_id, "task_id")
        cursor = await self._run(
            lambda c: c.execute(
                "INSERT INTO task_cancels (task_id, replica) "
                "SELECT task_id, replica FROM tasks WHERE task_id = ? "
                "ON CONFLICT (task_id) DO UPDATE SET replica = excluded.replica",
                (task_id,),
            )
        )
        return cursor.rowcount > 0

    async def take_task_cancels(self, replica: str) -> Sequence[str]:
        """The task ids queued for `replica` (sorted), each once; taken atomically
        (`BEGIN IMMEDIATE` + `DELETE ... RETURNING`), so no two takers get the same id."""
        check_name(replica, "replica")

        def take(c: sqlite3.Connection) -> list[str]:
            c.execute("BEGIN IMMEDIATE")
            rows = c.execute(
                "DELETE FROM task_cancels WHERE replica = ? RETURNING task_id", (replica,)
            ).fetchall()
            c.execute("COMMIT")
            return sorted(row[0] for row in rows)

        return await self._run(take)

    async def delete_task(self, task_id: str) -> None:
        """Forget the record and a cancel request queued for it."""
        check_name(task_id, "task_id")

        def delete(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
            c.execute("DELETE FROM task_cancels WHERE task_id = ?", (task_id,))
            c.execute("COMMIT")

        await self._run(delete)


def _span_order(span: Span) -> tuple[float, str]:
    return (span.start, span.span_id)
