"""`PostgresStateStore`: shared, durable state on PostgreSQL (extra `postgres`, asyncpg).

A connection pool; the schema lives in its own PostgreSQL schema (default
`penguiflow`), created and migrated by the store under an advisory lock. Bodies are
stored as JSON text validated by pydantic on the way out. Resume tokens are kept as
SHA-256 digests and consumed with `DELETE ... RETURNING`, so of many concurrent
resumes of one token exactly one gets the state.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, MissingExtraError
from ._codec import (
    check_id,
    check_name,
    check_page,
    check_run_filters,
    decode_binding,
    decode_event,
    decode_span,
    decode_state,
    decode_summary,
    decode_task,
    encode,
    encode_binding,
    encode_event,
    encode_spans,
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

__all__ = ["PostgresStateStore"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOCK_KEY = 0x70656E67  # advisory lock id for migrations ("peng")


def _migrations(schema: str) -> tuple[tuple[str, ...], ...]:
    return (
        (
            f"""CREATE TABLE {schema}.events (
                id BIGSERIAL PRIMARY KEY,
                trace_id TEXT NOT NULL,
                digest TEXT NOT NULL UNIQUE,
                body TEXT NOT NULL
            )""",
            f"CREATE INDEX events_by_trace ON {schema}.events (trace_id, id)",
            f"""CREATE TABLE {schema}.remote_bindings (
                trace_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (trace_id, task_id)
            )""",
            f"""CREATE TABLE {schema}.planner_state (
                digest TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                expires_at DOUBLE PRECISION
            )""",
        ),
        (
            # Recorded runs: every span by (run, span); one row per run whose root was saved.
            f"""CREATE TABLE {schema}.spans (
                run_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                start DOUBLE PRECISION NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (run_id, span_id)
            )""",
            f"""CREATE TABLE {schema}.runs (
                run_id TEXT PRIMARY KEY,
                start DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                kind TEXT NOT NULL,
                search TEXT NOT NULL,
                body TEXT NOT NULL
            )""",
            f'CREATE INDEX runs_by_start ON {schema}.runs (start DESC, run_id COLLATE "C" DESC)',
        ),
        (
            # A2A task records, and the cancel requests queued for the replica running
            # them (at most one per task).
            f"""CREATE TABLE {schema}.tasks (
                task_id TEXT PRIMARY KEY,
                replica TEXT NOT NULL,
                body TEXT NOT NULL
            )""",
            f"""CREATE TABLE {schema}.task_cancels (
                task_id TEXT PRIMARY KEY,
                replica TEXT NOT NULL
            )""",
            f"CREATE INDEX task_cancels_by_replica ON {schema}.task_cancels (replica)",
        ),
        (
            # The list of traces (`list_traces`): one row per named trace, kept with its
            # events by `save_event`, indexed newest first. Filled from the events
            # already stored; a row that is not a readable event counts, without a time
            # (0). The helper reading a row's time is dropped once used.
            f"""CREATE TABLE {schema}.traces (
                trace_id TEXT PRIMARY KEY,
                event_count BIGINT NOT NULL,
                last_ts DOUBLE PRECISION NOT NULL
            )""",
            f"CREATE INDEX traces_by_last_ts ON {schema}.traces "
            '(last_ts DESC, trace_id COLLATE "C" DESC)',
            f"""CREATE FUNCTION {schema}.penguiflow_event_ts(body TEXT) RETURNS DOUBLE PRECISION
            LANGUAGE plpgsql IMMUTABLE AS $$
            DECLARE
                doc JSONB;
            BEGIN
                doc := body::jsonb;
                IF jsonb_typeof(doc) = 'object' AND jsonb_typeof(doc -> 'ts') = 'number' THEN
                    RETURN (doc ->> 'ts')::DOUBLE PRECISION;
                END IF;
                RETURN NULL;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END $$""",
            f"INSERT INTO {schema}.traces (trace_id, event_count, last_ts) "
            f"SELECT trace_id, COUNT(*), COALESCE(MAX({schema}.penguiflow_event_ts(body)), 0) "
            f"FROM {schema}.events WHERE trace_id <> '' GROUP BY trace_id",
            f"DROP FUNCTION {schema}.penguiflow_event_ts(TEXT)",
        ),
    )


class PostgresStateStore:
    """Trace history (and its list of traces), remote bindings, planner pauses, runs and
    A2A tasks in PostgreSQL."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "penguiflow",
        min_size: int = 1,
        max_size: int = 10,
        ttl_s: float | None = None,
        time_source: Callable[[], float] = time.time,
        timeout_s: float | None = 30.0,
    ) -> None:
        if not _IDENTIFIER.match(schema):
            raise InvalidArgumentError(
                f"schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got {schema!r}"
            )
        self._dsn = dsn
        self.timeout_s = timeout_option(timeout_s)
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._now = time_source
        self._pool: Any = None
        # One pool per store: concurrent first calls wait for the one being opened.
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStateStore(schema={self._schema!r})"  # never the DSN: it has passwords

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open_pool()
        return self._pool

    async def _open_pool(self) -> Any:
        """A new pool with the schema migrated; closed again if migrating fails."""
        try:
            import asyncpg
        except ImportError as exc:
            raise MissingExtraError(
                "PostgreSQL stores need the 'asyncpg' package: pip install 'penguiflow[postgres]'",
                extra="postgres",
            ) from exc

        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                # Every statement, and every connection attempt, within the option.
                command_timeout=self.timeout_s,
                timeout=self.timeout_s if self.timeout_s is not None else 60.0,
            )
        except TimeoutError as exc:
            raise StateStoreError(
                f"cannot connect to PostgreSQL within {self.timeout_s:g}s"
            ) from exc
        except (OSError, asyncpg.PostgresError) as exc:
            raise StateStoreError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc
        try:
            await self._migrate(pool)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _migrate(self, pool: Any) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._schema}.penguiflow_schema "
                "(version INTEGER NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = await conn.fetchval(
                f"SELECT COALESCE(MAX(version), 0) FROM {self._schema}.penguiflow_schema"
            )
            migrations = _migrations(self._schema)
            if current > len(migrations):
                raise StateStoreError(
                    f"store schema version {current} is newer than this penguiflow "
                    f"({len(migrations)})"
                )
            for version, statements in enumerate(migrations[current:], start=current + 1):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {self._schema}.penguiflow_schema VALUES ($1, $2)",
                    version,
                    time.time(),
                )

    async def _execute(self, query: str, *args: Any) -> str:
        pool = await self._get_pool()
        return str(await pool.execute(query, *args))

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        pool = await self._get_pool()
        return list(await pool.fetch(query, *args))

    async def schema_version(self) -> int:
        """The schema version the store is at."""
        rows = await self._fetch(f"SELECT MAX(version) AS v FROM {self._schema}.penguiflow_schema")
        return int(rows[0]["v"])

    async def synchronous_commit(self) -> str:
        """PostgreSQL's `synchronous_commit` in force (`on` means durable commits)."""
        rows = await self._fetch("SHOW synchronous_commit")
        return str(rows[0][0])

    async def close(self) -> None:
        """Close the connection pool."""
        async with self._opening:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                await pool.close()

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored).

        One statement also updates the trace's row in the list of traces.
        """
        body = encode_event(event)
        schema = self._schema
        await self._execute(
            f"WITH added AS (INSERT INTO {schema}.events (trace_id, digest, body) "
            "VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING RETURNING trace_id) "
            f"INSERT INTO {schema}.traces (trace_id, event_count, last_ts) "
            "SELECT trace_id, 1, $4 FROM added WHERE trace_id <> '' "
            "ON CONFLICT (trace_id) DO UPDATE SET "
            f"event_count = {schema}.traces.event_count + 1, "
            f"last_ts = GREATEST({schema}.traces.last_ts, EXCLUDED.last_ts)",
            event.trace_id or "",
            event_key(body),
            body,
            event_ts(event),
        )

    async def load_history(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[StoredEvent]:
        """The trace's events in the order they were saved (`offset`/`limit` page them)."""
        offset, limit = check_page(offset, limit)
        check_id(trace_id, "trace_id")
        rows = await self._fetch(
            f"SELECT id, body FROM {self._schema}.events WHERE trace_id = $1 ORDER BY id "
            "LIMIT $2 OFFSET $3",
            trace_id,
            limit,
            offset,
        )
        return [decode_event(row["body"], key=f"events#{row['id']}") for row in rows]

    async def list_traces(
        self, *, offset: int = 0, limit: int | None = 50
    ) -> Sequence[TraceSummary]:
        """The stored traces, newest first by their latest event time (paged)."""
        offset, limit = check_page(offset, limit)
        rows = await self._fetch(
            f"SELECT trace_id, event_count, last_ts FROM {self._schema}.traces "
            'ORDER BY last_ts DESC, trace_id COLLATE "C" DESC LIMIT $1 OFFSET $2',
            limit,
            offset,
        )
        return [
            TraceSummary(row["trace_id"], int(row["event_count"]), float(row["last_ts"]))
            for row in rows
        ]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Record (or replace) the binding of a trace to a remote task."""
        await self._execute(
            f"INSERT INTO {self._schema}.remote_bindings (trace_id, task_id, body) "
            "VALUES ($1, $2, $3) ON CONFLICT (trace_id, task_id) "
            "DO UPDATE SET body = EXCLUDED.body",
            binding.trace_id,
            binding.task_id,
            encode_binding(binding),
        )

    async def load_remote_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        """The remote tasks bound to a trace."""
        check_id(trace_id, "trace_id")
        rows = await self._fetch(
            f"SELECT task_id, body FROM {self._schema}.remote_bindings WHERE trace_id = $1 "
            'ORDER BY task_id COLLATE "C"',
            trace_id,
        )
        return [decode_binding(row["body"], key=f"{trace_id}/{row['task_id']}") for row in rows]

    async def delete_trace(self, trace_id: str) -> None:
        """Forget a trace's history and bindings."""
        check_id(trace_id, "trace_id")
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._schema}.events WHERE trace_id = $1", trace_id)
            await conn.execute(f"DELETE FROM {self._schema}.traces WHERE trace_id = $1", trace_id)
            await conn.execute(
                f"DELETE FROM {self._schema}.remote_bindings WHERE trace_id = $1", trace_id
            )

    async def save_planner_state(
        self, token: str, payload: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        """Keep a paused planner's state under the token's digest (re-save replaces)."""
        body = encode(dict(require_mapping(payload)), what="planner state")
        expires = self._now() + self._ttl_s if self._ttl_s is not None else None
        await self._execute(
            f"INSERT INTO {self._schema}.planner_state (digest, body, expires_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (digest) DO UPDATE "
            "SET body = EXCLUDED.body, expires_at = EXCLUDED.expires_at",
            token_digest(token, tenant),
            body,
            expires,
        )

    async def load_planner_state(self, token: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Take the state for a token, once, atomically. Raises `ResumeTokenError`."""
        digest = token_digest(token, tenant)
        rows = await self._fetch(
            f"DELETE FROM {self._schema}.planner_state WHERE digest = $1 "
            "RETURNING body, expires_at",
            digest,
        )
        if not rows:
            raise ResumeTokenError()
        expires = rows[0]["expires_at"]
        if expires is not None and self._now() >= expires:
            raise ResumeTokenError()
        return decode_state(rows[0]["body"], key=digest[:12])

    async def discard_planner_state(self, token: str, *, tenant: str | None = None) -> bool:
        """Drop a token's state; True if there was one."""
        status = await self._execute(
            f"DELETE FROM {self._schema}.planner_state WHERE digest = $1",
            token_digest(token, tenant),
        )
        return status != "DELETE 0"

    # -- recorded runs (spans) -------------------------------------------------------

    async def save_spans(self, spans: Sequence[Span]) -> None:
        """Insert or replace each span; root spans also update the run list.

        One transaction per batch: `InvalidDataError` (checked before writing) or a
        failed write leaves the store unchanged.
        """
        batch = encode_spans(spans)
        if not batch.spans:
            return
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO {self._schema}.spans (run_id, span_id, start, body) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, span_id) DO UPDATE "
                "SET start = EXCLUDED.start, body = EXCLUDED.body",
                [(r.run_id, r.span_id, r.start, r.body) for r in batch.spans],
            )
            if batch.runs:
                await conn.executemany(
                    f"INSERT INTO {self._schema}.runs (run_id, start, status, kind, search, body) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO UPDATE "
                    "SET start = EXCLUDED.start, status = EXCLUDED.status, "
                    "kind = EXCLUDED.kind, search = EXCLUDED.search, body = EXCLUDED.body",
                    [(r.run_id, r.start, r.status, r.kind, r.search, r.body) for r in batch.runs],
                )

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
        schema = self._schema
        rows = await self._fetch(
            f"SELECT r.run_id, r.body, (SELECT COUNT(*) FROM {schema}.spans s "
            f"WHERE s.run_id = r.run_id) AS span_count FROM {schema}.runs r "
            "WHERE ($1::text IS NULL OR r.status = $1) AND ($2::text IS NULL OR r.kind = $2) "
            "AND ($3::text IS NULL OR strpos(r.search, $3) > 0) "  # plain substring
            'ORDER BY r.start DESC, r.run_id COLLATE "C" DESC LIMIT $4 OFFSET $5',
            status,
            kind,
            needle,
            limit,
            offset,
        )
        return [decode_summary(row["body"], row["span_count"], key=row["run_id"]) for row in rows]

    async def load_run(self, run_id: str) -> Sequence[Span]:
        """Every span of the run, by start time (ties by span id); `[]` for an unknown run."""
        check_id(run_id, "run_id")
        rows = await self._fetch(
            f"SELECT span_id, body FROM {self._schema}.spans WHERE run_id = $1 "
            'ORDER BY start, span_id COLLATE "C"',
            run_id,
        )
        return [decode_span(row["body"], key=f"{run_id}/{row['span_id']}") for row in rows]

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its spans and its entry in the run list."""
        check_id(run_id, "run_id")
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._schema}.spans WHERE run_id = $1", run_id)
            await conn.execute(f"DELETE FROM {self._schema}.runs WHERE run_id = $1", run_id)

    # -- A2A tasks -------------------------------------------------------------------

    async def save_task(self, task: StoredTask) -> None:
        """Insert or replace the record of `task.task_id` (a queued cancel request stays).

        `InvalidDataError` (checked before writing) leaves the store unchanged.
        """
        body = encode_task(task)
        await self._execute(
            f"INSERT INTO {self._schema}.tasks (task_id, replica, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (task_id) DO UPDATE SET replica = EXCLUDED.replica, body = EXCLUDED.body",
            task.task_id,
            task.replica,
            body,
        )

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The record, or `None` for an unknown task id."""
        check_name(task_id, "task_id")
        rows = await self._fetch(
            f"SELECT body FROM {self._schema}.tasks WHERE task_id = $1", task_id
        )
        return decode_task(rows[0]["body"], key=task_id) if rows else None

    async def request_task_cancel(self, task_id: str) -> bool:
        """Queue a cancel request for the replica the record names; `False` if unknown.

        A task has at most one queued request: a repeated request before the take
        queues it once, for the replica the record names now. The record is read
        `FOR SHARE`, so a concurrent `delete_task` leaves no request behind.
        """
        check_name(task_id, "task_id")
        status = await self._execute(
            f"INSERT INTO {self._schema}.task_cancels (task_id, replica) "
            f"SELECT task_id, replica FROM {self._schema}.tasks WHERE task_id = $1 FOR SHARE "
            "ON CONFLICT (task_id) DO UPDATE SET replica = EXCLUDED.replica",
            task_id,
        )
        return status != "INSERT 0 0"

    async def take_task_cancels(self, replica: str) -> Sequence[str]:
        """The task ids queued for `replica` (sorted), each once; taken with one
        `DELETE ... RETURNING`, so no two takers get the same id."""
        check_name(replica, "replica")
        rows = await self._fetch(
            f"DELETE FROM {self._schema}.task_cancels WHERE replica = $1 RETURNING task_id",
            replica,
        )
        return sorted(row["task_id"] for row in rows)

    async def delete_task(self, task_id: str) -> None:
        """Forget the record and a cancel request queued for it."""
        check_name(task_id, "task_id")
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._schema}.tasks WHERE task_id = $1", task_id)
            await conn.execute(
                f"DELETE FROM {self._schema}.task_cancels WHERE task_id = $1", task_id
            )
