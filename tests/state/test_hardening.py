"""Store faults found by probing from outside: concurrent first use, cold opens."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from penguiflow.state import StateStoreError
from penguiflow.state.sqlite import SQLiteStateStore

from .conftest import POSTGRES_DSN, REDIS_URL, unavailable


async def _postgres_connections(admin: object, name: str) -> int:
    return int(
        await admin.fetchval(  # type: ignore[attr-defined]
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )
    )


async def test_concurrent_first_calls_on_postgres_open_one_pool() -> None:
    import asyncpg

    from penguiflow.state.postgres import PostgresStateStore

    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    name = f"pf-pool-{uuid.uuid4().hex[:10]}"
    schema = f"pf_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in POSTGRES_DSN else "?"
    store = PostgresStateStore(
        f"{POSTGRES_DSN}{separator}application_name={name}", schema=schema, min_size=1, max_size=2
    )
    try:
        versions = await asyncio.gather(*(store.schema_version() for _ in range(20)))
        assert set(versions) == {versions[0]}
        # One pool of at most max_size connections, not one pool per first call.
        assert 1 <= await _postgres_connections(admin, name) <= 2
        await store.close()
        for _ in range(50):
            if await _postgres_connections(admin, name) == 0:
                break
            await asyncio.sleep(0.05)
        assert await _postgres_connections(admin, name) == 0
    finally:
        await store.close()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def test_concurrent_first_calls_on_redis_open_one_client() -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from penguiflow.state.redis import RedisStateStore

    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await admin.ping()
    except (RedisError, OSError) as exc:
        await admin.aclose()
        unavailable("Redis", exc)
    name = f"pf-client-{uuid.uuid4().hex[:10]}"
    prefix = f"pftest:{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in REDIS_URL else "?"
    store = RedisStateStore(f"{REDIS_URL}{separator}client_name={name}", prefix=prefix)

    async def connections() -> int:
        return sum(1 for client in await admin.client_list() if client.get("name") == name)

    try:
        await asyncio.gather(*(store.schema_version() for _ in range(20)))
        opened = await connections()
        # One client: its pool opened connections for the concurrent calls, but
        # every one of them is closed with the store (20 clients left 19 open).
        assert opened >= 1
        await store.close()
        for _ in range(50):
            if await connections() == 0:
                break
            await asyncio.sleep(0.05)
        assert await connections() == 0
    finally:
        await store.close()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def test_a_cold_sqlite_open_waits_for_a_writer_within_the_busy_timeout(
    tmp_path: Path,
) -> None:
    """Another process is writing to the file (not yet in WAL mode) when the store
    opens it: switching to WAL is refused at once, without SQLite's busy handler
    (a lock upgrade it will not wait for), so the store retries within its busy
    timeout. Before, the open failed in well under a millisecond."""
    path = tmp_path / "cold.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    release.start()
    store = SQLiteStateStore(path, busy_timeout_ms=5000)
    try:
        started = time.monotonic()
        assert await store.schema_version() >= 1
        assert time.monotonic() - started >= 0.2  # it waited for the writer
    finally:
        release.join()
        writer.close()
        await store.close()


async def test_a_cold_sqlite_open_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    store = SQLiteStateStore(path, busy_timeout_ms=200)
    try:
        started = time.monotonic()
        with pytest.raises(StateStoreError, match="database is locked"):
            await store.schema_version()
        assert 0.1 <= time.monotonic() - started < 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await store.close()


async def test_a_sqlite_call_that_cannot_finish_in_time_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SQLiteStateStore(path, busy_timeout_ms=5000, timeout_s=0.3)
    await store.schema_version()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock for longer than timeout_s
    try:
        started = time.monotonic()
        with pytest.raises(StateStoreError, match=r"did not answer within 0\.3s"):
            await store.save_planner_state("d" * 32, {"x": 1})
        assert time.monotonic() - started < 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    await asyncio.sleep(0)
    await store.save_planner_state("d" * 32, {"x": 1})  # the store still works after
    assert await store.load_planner_state("d" * 32) == {"x": 1}
    await store.close()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "30", True])
def test_a_store_timeout_must_be_a_positive_number(tmp_path: Path, bad: object) -> None:
    from penguiflow.errors import InvalidArgumentError
    from penguiflow.state.postgres import PostgresStateStore
    from penguiflow.state.redis import RedisStateStore

    for build in (
        lambda: SQLiteStateStore(tmp_path / "x.db", timeout_s=bad),  # type: ignore[arg-type]
        lambda: PostgresStateStore(POSTGRES_DSN, timeout_s=bad),  # type: ignore[arg-type]
        lambda: RedisStateStore(REDIS_URL, timeout_s=bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidArgumentError, match="timeout_s must be a positive number"):
            build()
