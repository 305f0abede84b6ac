"""`RedisStateStore`: shared state on Redis (extra `redis`, redis-py asyncio).

Every key starts with `prefix:` so several stores (or tests) share one server. Event
appends are de-duplicated atomically by a server-side script; resume tokens are kept
as SHA-256 digests and consumed with `GETDEL`, so of many concurrent resumes of one
token exactly one gets the state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from ._codec import (
    check_id,
    check_page,
    decode_binding,
    decode_event,
    decode_state,
    encode,
    encode_binding,
    encode_event,
    event_key,
    require_mapping,
    token_digest,
)
from .errors import CorruptRecordError, ResumeTokenError, StateStoreError
from .protocol import RemoteBinding, StoredEvent

__all__ = ["RedisStateStore"]

_SCHEMA_VERSION = 1

# KEYS: the trace's digest set, its event list. ARGV: digest, body.
_APPEND_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[2])
end
return 0
"""


class RedisStateStore:
    """Trace history, remote bindings and planner pauses in Redis."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "penguiflow",
        ttl_s: float | None = None,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        if not prefix or any(c in prefix for c in "*?[] \n"):
            raise InvalidArgumentError(
                f"prefix must be non-empty without glob characters, got {prefix!r}"
            )
        self._url = url
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._now = time_source
        self._client: Any = None
        self._append: Any = None

    def __repr__(self) -> str:
        return f"RedisStateStore(prefix={self._prefix!r})"  # never the URL: it may hold a password

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _redis(self) -> Any:
        if self._client is not None:
            return self._client
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        client = aioredis.Redis.from_url(self._url, decode_responses=True)
        try:
            version: Any = await client.get(self._key("schema"))
            if version is None:
                await client.set(self._key("schema"), _SCHEMA_VERSION, nx=True)
            elif int(version) > _SCHEMA_VERSION:
                raise StateStoreError(
                    f"store schema version {version} is newer than this penguiflow "
                    f"({_SCHEMA_VERSION})"
                )
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StateStoreError(f"cannot use Redis: {type(exc).__name__}") from exc
        self._append = client.register_script(_APPEND_ONCE)
        self._client = client
        return client

    async def schema_version(self) -> int:
        """The schema version the store is at."""
        client = await self._redis()
        return int(await client.get(self._key("schema")))

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored)."""
        body = encode_event(event)
        await self._redis()
        trace = event.trace_id or ""
        await self._append(
            keys=[self._key("eventkeys", trace), self._key("events", trace)],
            args=[event_key(body), body],
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
        await client.delete(
            self._key("events", trace_id),
            self._key("eventkeys", trace_id),
            self._key("bindings", trace_id),
        )

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
