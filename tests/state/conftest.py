"""State-store fixtures: every backend, on the real server, with its own namespace.

PostgreSQL and Redis tests talk to the servers on 127.0.0.1. Without a server they
skip with the reason; with CI=true a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

POSTGRES_DSN = os.environ.get(
    "PENGUIFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PENGUIFLOW_TEST_REDIS", "redis://127.0.0.1:6379/15")
BACKENDS = ["memory", "sqlite", "postgres", "redis"]


def unavailable(service: str, exc: BaseException) -> None:
    reason = f"{service} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


RawWriter = Callable[[str, str], Awaitable[None]]


async def _postgres(clock: Clock) -> tuple[Any, RawWriter, Callable[[], Awaitable[None]]]:
    import asyncpg

    from penguiflow.state.postgres import PostgresStateStore

    schema = f"pf_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    store = PostgresStateStore(POSTGRES_DSN, schema=schema, ttl_s=60, time_source=clock)

    async def raw(trace: str, body: str) -> None:
        await store.schema_version()  # make sure the tables exist
        await admin.execute(
            f"INSERT INTO {schema}.events (trace_id, digest, body) VALUES ($1, $2, $3)",
            trace,
            uuid.uuid4().hex,
            body,
        )

    async def cleanup() -> None:
        await store.close()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()

    return store, raw, cleanup


async def _redis(clock: Clock) -> tuple[Any, RawWriter, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from penguiflow.state.redis import RedisStateStore

    prefix = f"pftest:{uuid.uuid4().hex[:12]}"
    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await admin.ping()
    except (RedisError, OSError) as exc:
        await admin.aclose()
        unavailable("Redis", exc)
    store = RedisStateStore(REDIS_URL, prefix=prefix, ttl_s=60, time_source=clock)

    async def raw(trace: str, body: str) -> None:
        await admin.rpush(f"{prefix}:events:{trace}", body)

    async def cleanup() -> None:
        await store.close()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()

    return store, raw, cleanup


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[tuple[Any, RawWriter]]:
    """(store, a writer of raw event rows straight into its backend) for each backend."""
    if request.param == "memory":
        memory = InMemoryStateStore(ttl_s=60, time_source=clock)

        async def raw_memory(trace: str, body: str) -> None:
            memory._events[trace].append(body)  # its "backend" is this dict

        yield memory, raw_memory
        return
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "state.db"
        lite = SQLiteStateStore(path, ttl_s=60, time_source=clock)

        async def raw(trace: str, body: str) -> None:
            await lite.schema_version()
            conn = sqlite3.connect(path)
            conn.execute(
                "INSERT INTO events (trace_id, digest, body) VALUES (?, ?, ?)",
                (trace, uuid.uuid4().hex, body),
            )
            conn.commit()
            conn.close()

        yield lite, raw
        await lite.close()
        return
    make = _postgres if request.param == "postgres" else _redis
    store, raw_writer, cleanup = await make(clock)
    try:
        yield store, raw_writer
    finally:
        await cleanup()


@pytest.fixture
def store(backend: tuple[Any, RawWriter]) -> Any:
    return backend[0]


@pytest.fixture(params=BACKENDS)
def sync_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store per backend, for tests that drive their own event loop."""
    if request.param == "memory":
        yield InMemoryStateStore()
    elif request.param == "sqlite":
        yield SQLiteStateStore(tmp_path / "machine.db")
    else:
        loop = asyncio.new_event_loop()
        make = _postgres if request.param == "postgres" else _redis
        try:
            store, _, cleanup = loop.run_until_complete(make(Clock()))
            yield store
            loop.run_until_complete(cleanup())
        finally:
            loop.close()
