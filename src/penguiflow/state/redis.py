"""`RedisStateStore`: shared state on Redis (extra `redis`, redis-py asyncio).

Every key starts with `prefix:` so several stores (or tests) share one server. Event
appends are de-duplicated atomically by a server-side script; resume tokens are kept
as SHA-256 digests and consumed with `GETDEL`, so of many concurrent resumes of one
token exactly one gets the state.

Traces: a list per trace (`prefix:events:TRACE`), the digests of its events
(`prefix:eventkeys:TRACE`), and the list of traces, a sorted set by latest event
time (`prefix:traces`), which the same append script keeps.

Recorded runs: a hash per run (`prefix:spans:RUN`, span id -> span), a sorted set of
runs by root start (`prefix:runs`) and a hash of their roots (`prefix:runinfo`). A
batch of spans is sent as one MULTI/EXEC pipeline, so no reader sees half of it.

A2A tasks: a hash per task (`prefix:task:TASK`, its `replica` and `body`) and one hash
of queued cancel requests (`prefix:taskcancels`, task id -> replica). Requests are
queued and taken by server-side scripts, so of concurrent takers each id goes to one.
"""

from __future__ import annotations

import asyncio
import json
import math
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
    run_search_text,
    token_digest,
)
from .errors import CorruptRecordError, ResumeTokenError, StateStoreError
from .protocol import RemoteBinding, StoredEvent, StoredTask, TraceSummary, timeout_option

if TYPE_CHECKING:
    from ..spans import RunSummary, Span

__all__ = ["RedisStateStore"]

# Version 2 added the list of traces (`prefix:traces`), filled from the histories of
# a version 1 store when it is first opened. Span and task keys are key families that
# version 1 data simply lacks.
_SCHEMA_VERSION = 2
_UPGRADE_CHUNK = 500  # events read per round trip while filling the list of traces

_SCAN_CHUNK = 200  # runs fetched per round trip while filtering the run list

# KEYS: the trace's digest set, its event list, the list of traces.
# ARGV: digest, body, trace id ('' for an event without a trace: not listed), ts.
_APPEND_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[2])
    if ARGV[3] ~= '' then
        local last = redis.call('ZSCORE', KEYS[3], ARGV[3])
        if not last or tonumber(last) < tonumber(ARGV[4]) then
            redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
        end
    end
end
return 0
"""

# KEYS: the list of traces, the trace's event list. ARGV: trace id, ts.
# Raises the trace's time to ts, if its history still exists (not deleted meanwhile).
_LIST_TRACE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
    local last = redis.call('ZSCORE', KEYS[1], ARGV[1])
    if not last or tonumber(last) < tonumber(ARGV[2]) then
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
    end
end
return 0
"""

# KEYS: the schema key. ARGV: the version upgraded from, the new one.
_SET_VERSION = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: the task's hash, the cancel-request hash. ARGV: task id.
_REQUEST_CANCEL = """
local replica = redis.call('HGET', KEYS[1], 'replica')
if not replica then
    return 0
end
redis.call('HSET', KEYS[2], ARGV[1], replica)
return 1
"""

# KEYS: the cancel-request hash. ARGV: replica. Returns the task ids taken.
_TAKE_CANCELS = """
local pending = redis.call('HGETALL', KEYS[1])
local taken = {}
for i = 1, #pending, 2 do
    if pending[i + 1] == ARGV[1] then
        taken[#taken + 1] = pending[i]
        redis.call('HDEL', KEYS[1], pending[i])
    end
end
return taken
"""


class RedisStateStore:
    """Trace history (and its list of traces), remote bindings, planner pauses, recorded
    runs and A2A tasks in Redis."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "penguiflow",
        ttl_s: float | None = None,
        time_source: Callable[[], float] = time.time,
        timeout_s: float | None = 30.0,
    ) -> None:
        if not prefix or any(c in prefix for c in "*?[] \n"):
            raise InvalidArgumentError(
                f"prefix must be non-empty without glob characters, got {prefix!r}"
            )
        self._url = url
        self.timeout_s = timeout_option(timeout_s)
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._now = time_source
        self._client: Any = None
        self._append: Any = None
        self._request_cancel: Any = None
        self._take_cancels: Any = None
        # One client per store: concurrent first calls wait for the one being opened.
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RedisStateStore(prefix={self._prefix!r})"  # never the URL: it may hold a password

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _redis(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                await self._open()
        return self._client

    async def _open(self) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise MissingExtraError(
                "Redis stores need the 'redis' package: pip install 'penguiflow[redis]'",
                extra="redis",
            ) from exc

        client = aioredis.Redis.from_url(
            self._url,
            decode_responses=True,
            # Every command, and connecting, within the option.
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
        )
        try:
            version: Any = await client.get(self._key("schema"))
            if version is None:
                await client.set(self._key("schema"), _SCHEMA_VERSION, nx=True)
            elif int(version) > _SCHEMA_VERSION:
                raise StateStoreError(
                    f"store schema version {version} is newer than this penguiflow "
                    f"({_SCHEMA_VERSION})"
                )
            elif int(version) < _SCHEMA_VERSION:
                await self._upgrade(client, int(version))
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StateStoreError(f"cannot use Redis: {type(exc).__name__}") from exc
        except BaseException:
            await client.aclose()
            raise
        self._append = client.register_script(_APPEND_ONCE)
        self._request_cancel = client.register_script(_REQUEST_CANCEL)
        self._take_cancels = client.register_script(_TAKE_CANCELS)
        self._client = client

    async def _upgrade(self, client: Any, version: int) -> None:
        """Bring a version 1 store to version 2: list the traces it already holds.

        Safe to run from several processes at once, and beside writers (each trace's
        time only ever rises); the version moves on once the list is complete.
        """
        list_trace = client.register_script(_LIST_TRACE)
        head = self._key("events", "")
        async for key in client.scan_iter(match=f"{head}*", count=_UPGRADE_CHUNK):
            trace = key[len(head) :]
            if not trace:
                continue  # events without a trace are not listed
            last = 0.0  # a history without a readable time still lists
            start = 0
            while True:
                bodies = await client.lrange(key, start, start + _UPGRADE_CHUNK - 1)
                last = max([last, *(t for t in map(_stored_ts, bodies) if t is not None)])
                if len(bodies) < _UPGRADE_CHUNK:
                    break
                start += _UPGRADE_CHUNK
            await list_trace(keys=[self._key("traces"), key], args=[trace, repr(last)])
        await client.register_script(_SET_VERSION)(
            keys=[self._key("schema")], args=[version, _SCHEMA_VERSION]
        )

    async def schema_version(self) -> int:
        """The schema version the store is at."""
        client = await self._redis()
        return int(await client.get(self._key("schema")))

    async def close(self) -> None:
        """Close the connection pool."""
        async with self._opening:
            if self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored)."""
        body = encode_event(event)
        await self._redis()
        trace = event.trace_id or ""
        await self._append(
            keys=[self._key("eventkeys", trace), self._key("events", trace), self._key("traces")],
            args=[event_key(body), body, trace, repr(event_ts(event))],
        )

    async def load_history(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[StoredEvent]:
        """The trace's events in the order they were saved (`offset`/`limit` page them)."""
        offset, limit = check_page(offset, limit)
        check_id(trace_id, "trace_id")
        client = await self._redis()
        end = -1 if limit is None else offset + limit - 1
        rows = [] if limit == 0 else await client.lrange(self._key("events", trace_id), offset, end)
        return [decode_event(body, key=f"{trace_id}#{offset + i}") for i, body in enumerate(rows)]

    async def list_traces(
        self, *, offset: int = 0, limit: int | None = 50
    ) -> Sequence[TraceSummary]:
        """The stored traces, newest first by their latest event time (paged)."""
        offset, limit = check_page(offset, limit)
        if limit == 0:
            return []
        client = await self._redis()
        end = -1 if limit is None else offset + limit - 1
        listed: list[tuple[str, float]] = await client.zrevrange(
            self._key("traces"), offset, end, withscores=True
        )
        if not listed:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for trace, _ in listed:
                pipe.llen(self._key("events", trace))
            counts = await pipe.execute()
        return [
            TraceSummary(trace, int(count), float(last))
            for (trace, last), count in zip(listed, counts, strict=True)
        ]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Record (or replace) the binding of a trace to a remote task."""
        body = encode_binding(binding)
        client = await self._redis()
        await client.hset(self._key("bindings", binding.trace_id), binding.task_id, body)

    async def load_remote_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        """The remote tasks bound to a trace."""
        check_id(trace_id, "trace_id")
        client = await self._redis()
        rows = await client.hgetall(self._key("bindings", trace_id))
        return [decode_binding(rows[task], key=f"{trace_id}/{task}") for task in sorted(rows)]

    async def delete_trace(self, trace_id: str) -> None:
        """Forget a trace's history and bindings."""
        check_id(trace_id, "trace_id")
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(
                self._key("events", trace_id),
                self._key("eventkeys", trace_id),
                self._key("bindings", trace_id),
            )
            pipe.zrem(self._key("traces"), trace_id)
            await pipe.execute()

    async def save_planner_state(
        self, token: str, payload: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        """Keep a paused planner's state under the token's digest (re-save replaces)."""
        body = encode(dict(require_mapping(payload)), what="planner state")
        expires = self._now() + self._ttl_s if self._ttl_s is not None else None
        client = await self._redis()
        await client.set(
            self._key("pstate", token_digest(token, tenant)),
            json.dumps({"expires_at": expires, "body": body}),
            px=int(self._ttl_s * 1000) + 1000 if self._ttl_s is not None else None,
        )

    async def load_planner_state(self, token: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Take the state for a token, once, atomically. Raises `ResumeTokenError`."""
        digest = token_digest(token, tenant)
        client = await self._redis()
        raw = await client.getdel(self._key("pstate", digest))
        if raw is None:
            raise ResumeTokenError()
        try:
            entry = json.loads(raw)
            expires, body = entry["expires_at"], entry["body"]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptRecordError(
                f"stored planner state {digest[:12]} is not valid", key=digest[:12]
            ) from exc
        if expires is not None and self._now() >= expires:
            raise ResumeTokenError()
        return decode_state(body, key=digest[:12])

    async def discard_planner_state(self, token: str, *, tenant: str | None = None) -> bool:
        """Drop a token's state; True if there was one."""
        client = await self._redis()
        return bool(await client.delete(self._key("pstate", token_digest(token, tenant))))

    # -- recorded runs (spans) -------------------------------------------------------

    async def save_spans(self, spans: Sequence[Span]) -> None:
        """Insert or replace each span; root spans also update the run list.

        The batch is checked first (`InvalidDataError` sends nothing), then sent as
        one MULTI/EXEC transaction. Redis does not roll back: should one command fail
        on the server (a key of another type written outside the store), the others
        of the batch still apply.
        """
        batch = encode_spans(spans)
        if not batch.spans:
            return
        by_run: dict[str, dict[str, str]] = {}
        for record in batch.spans:
            by_run.setdefault(record.run_id, {})[record.span_id] = record.body
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            for run_id, mapping in by_run.items():
                pipe.hset(self._key("spans", run_id), mapping=mapping)
            if batch.runs:
                pipe.hset(self._key("runinfo"), mapping={r.run_id: r.body for r in batch.runs})
                pipe.zadd(self._key("runs"), {r.run_id: r.start for r in batch.runs})
            await pipe.execute()

    async def list_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int | None = 50,
    ) -> Sequence[RunSummary]:
        """Summaries of the runs whose root was saved, newest first (filtered, paged).

        Filters are applied here, while scanning the runs newest first; a corrupt run
        entry met on the way raises `CorruptRecordError`, even if it would not match.
        """
        offset, limit = check_page(offset, limit)
        status, kind, needle = check_run_filters(status, kind, text)
        if limit == 0:
            return []
        client = await self._redis()
        unfiltered = status is None and kind is None and needle is None
        found: list[RunSummary] = []
        skip = 0 if unfiltered else offset
        position = offset if unfiltered else 0
        while limit is None or len(found) < limit:
            chunk = _SCAN_CHUNK
            if unfiltered and limit is not None:
                chunk = limit - len(found)
            ids: list[str] = await client.zrevrange(
                self._key("runs"), position, position + chunk - 1
            )
            if not ids:
                break
            position += len(ids)
            async with client.pipeline(transaction=False) as pipe:
                pipe.hmget(self._key("runinfo"), ids)
                for run_id in ids:
                    pipe.hlen(self._key("spans", run_id))
                bodies, *counts = await pipe.execute()
            for run_id, body, count in zip(ids, bodies, counts):
                if body is None:
                    continue  # deleted between the two reads
                summary = decode_summary(body, count, key=run_id)
                if not (
                    (status is None or summary.status == status)
                    and (kind is None or summary.kind == kind)
                    and (needle is None or needle in run_search_text(summary))
                ):
                    continue
                if skip:
                    skip -= 1
                    continue
                found.append(summary)
                if limit is not None and len(found) == limit:
                    break
        return found

    async def load_run(self, run_id: str) -> Sequence[Span]:
        """Every span of the run, by start time (ties by span id); `[]` for an unknown run."""
        check_id(run_id, "run_id")
        client = await self._redis()
        rows: dict[str, str] = await client.hgetall(self._key("spans", run_id))
        spans = [decode_span(body, key=f"{run_id}/{span_id}") for span_id, body in rows.items()]
        spans.sort(key=lambda span: (span.start, span.span_id))
        return spans

    async def delete_run(self, run_id: str) -> None:
        """Forget a run: its spans and its entry in the run list."""
        check_id(run_id, "run_id")
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key("spans", run_id))
            pipe.hdel(self._key("runinfo"), run_id)
            pipe.zrem(self._key("runs"), run_id)
            await pipe.execute()

    # -- A2A tasks -------------------------------------------------------------------

    async def save_task(self, task: StoredTask) -> None:
        """Insert or replace the record of `task.task_id` (a queued cancel request stays).

        `InvalidDataError` (checked before writing) sends nothing.
        """
        body = encode_task(task)
        client = await self._redis()
        await client.hset(
            self._key("task", task.task_id), mapping={"replica": task.replica, "body": body}
        )

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The record, or `None` for an unknown task id."""
        check_name(task_id, "task_id")
        client = await self._redis()
        body = await client.hget(self._key("task", task_id), "body")
        return None if body is None else decode_task(body, key=task_id)

    async def request_task_cancel(self, task_id: str) -> bool:
        """Queue a cancel request for the replica the record names; `False` if unknown.

        A task has at most one queued request: a repeated request before the take
        queues it once, for the replica the record names now.
        """
        check_name(task_id, "task_id")
        await self._redis()
        queued = await self._request_cancel(
            keys=[self._key("task", task_id), self._key("taskcancels")], args=[task_id]
        )
        return bool(queued)

    async def take_task_cancels(self, replica: str) -> Sequence[str]:
        """The task ids queued for `replica` (sorted), each once; taken by one script,
        so no two takers get the same id."""
        check_name(replica, "replica")
        await self._redis()
        taken: list[str] = await self._take_cancels(keys=[self._key("taskcancels")], args=[replica])
        return sorted(taken)

    async def delete_task(self, task_id: str) -> None:
        """Forget the record and a cancel request queued for it."""
        check_name(task_id, "task_id")
        client = await self._redis()
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key("task", task_id))
            pipe.hdel(self._key("taskcancels"), task_id)
            await pipe.execute()


def _stored_ts(body: str) -> float | None:
    """The `ts` of a stored event body, or None when the row does not have one."""
    try:
        row = json.loads(body)
    except ValueError:
        return None
    ts = row.get("ts") if isinstance(row, dict) else None
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    try:
        value = float(ts)
    except OverflowError:  # an int beyond any float
        return None
    return value if math.isfinite(value) else None
