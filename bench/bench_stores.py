"""State stores: pause save + load round trip against a bare INSERT + SELECT floor.

For each store (memory, SQLite, PostgreSQL, Redis; a missing server is reported as
skipped), in the same run:

* the round trip `save_planner_state` + `load_planner_state` (p50 and p99) against a
  floor of one bare write + read on the same backend with the same durability
  settings (target <= 2x at p50);
* 1,000 concurrent pauses then 1,000 concurrent resumes (each token resumed twice at
  once) on SQLite and PostgreSQL: lost and double resumes counted (target 0 / 0), and
  the throughput reported.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from _common import Result, run_cli
from penguiflow.state import ResumeTokenError, StateStoreError
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

POSTGRES_DSN = os.environ.get(
    "PENGUIFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PENGUIFLOW_TEST_REDIS", "redis://127.0.0.1:6379/15")
PAYLOAD = {"trajectory": {"query": "q", "steps": [{"n": i} for i in range(5)]}, "reason": "x"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_loop(op: Callable[[int], Awaitable[None]], n: int) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


async def round_trip(store: Any, n: int) -> list[float]:
    async def op(i: int) -> None:
        token = f"tok-{i}-{uuid.uuid4().hex}"
        await store.save_planner_state(token, PAYLOAD)
        await store.load_planner_state(token)

    return await timed_loop(op, n)


async def sqlite_floor(path: str, n: int) -> list[float]:
    import json

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v TEXT)")

    def work(i: int) -> None:
        conn.execute("INSERT INTO floor VALUES (?, ?)", (f"k{i}", json.dumps(PAYLOAD)))
        conn.execute("SELECT v FROM floor WHERE k = ?", (f"k{i}",)).fetchone()

    async def op(i: int) -> None:
        await asyncio.to_thread(work, i)  # same thread hop as the store

    samples = await timed_loop(op, n)
    conn.close()
    return samples


async def postgres_floor(n: int) -> list[float]:
    import json

    import asyncpg

    pool = await asyncpg.create_pool(POSTGRES_DSN, min_size=1, max_size=2)
    table = f"pf_floor_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {table} (k TEXT PRIMARY KEY, v TEXT)")

    async def op(i: int) -> None:
        await pool.execute(f"INSERT INTO {table} VALUES ($1, $2)", f"k{i}", json.dumps(PAYLOAD))
        await pool.fetchval(f"SELECT v FROM {table} WHERE k = $1", f"k{i}")

    try:
        return await timed_loop(op, n)
    finally:
        await pool.execute(f"DROP TABLE {table}")
        await pool.close()


async def redis_floor(n: int) -> list[float]:
    import json

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    prefix = f"pffloor:{uuid.uuid4().hex[:8]}"

    async def op(i: int) -> None:
        await client.set(f"{prefix}:{i}", json.dumps(PAYLOAD))
        await client.get(f"{prefix}:{i}")

    try:
        return await timed_loop(op, n)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def memory_floor(n: int) -> list[float]:
    import json

    table: dict[str, str] = {}

    async def op(i: int) -> None:
        table[f"k{i}"] = json.dumps(PAYLOAD)
        table.get(f"k{i}")

    return await timed_loop(op, n)


async def concurrent_pauses(store: Any, count: int) -> tuple[int, int, float]:
    """(lost, double resumes, ops/s) for `count` pauses then 2 x `count` racing resumes."""
    tokens = [uuid.uuid4().hex for _ in range(count)]
    start = time.perf_counter()
    await asyncio.gather(*(store.save_planner_state(t, {"t": t}) for t in tokens))
    outcomes = await asyncio.gather(
        *(store.load_planner_state(t) for t in tokens for _ in range(2)), return_exceptions=True
    )
    elapsed = time.perf_counter() - start
    wins: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, dict):
            wins[outcome["t"]] = wins.get(outcome["t"], 0) + 1
        elif not isinstance(outcome, ResumeTokenError):
            raise outcome  # type: ignore[misc]
    lost = sum(1 for t in tokens if t not in wins)
    doubles = sum(1 for n in wins.values() if n > 1)
    return lost, doubles, 3 * count / elapsed


def row(name: str, subject: list[float], floor: list[float]) -> Result:
    p50, f50 = statistics.median(subject), statistics.median(floor)
    return Result(
        name=f"pause round trip: {name}",
        subject=p50,
        floor=f50,
        unit="us",
        ratio=p50 / f50,
        target="<=2x",
        met=p50 / f50 <= 2,
        note=(
            (
                "memory: a full JSON round trip + token hash vs a dict write; "
                if name == "memory"
                else ""
            )
            + f"p50 {p50:.0f} vs {f50:.0f} us; p99 {percentile(subject, 0.99):.0f} vs "
            f"{percentile(floor, 0.99):.0f} us ({len(subject)} round trips)"
        ),
    )


def skipped(name: str, exc: BaseException) -> Result:
    nan = float("nan")
    return Result(name, nan, nan, "", nan, "<=2x", None, note=f"skipped: {exc!r}")


async def _measure(quick: bool) -> list[Result]:
    n = 30 if quick else 300
    count = 50 if quick else 1000
    results: list[Result] = []
    memory = InMemoryStateStore()
    results.append(row("memory", await round_trip(memory, n), await memory_floor(n)))

    with tempfile.TemporaryDirectory() as tmp:
        lite = SQLiteStateStore(os.path.join(tmp, "s.db"))
        floor = await sqlite_floor(os.path.join(tmp, "floor.db"), n)
        results.append(row("sqlite", await round_trip(lite, n), floor))
        lost, doubles, rate = await concurrent_pauses(lite, count)
        results.append(race_row("sqlite", count, lost, doubles, rate))
        await lite.close()

    try:
        from penguiflow.state.postgres import PostgresStateStore

        schema = f"pf_bench_{uuid.uuid4().hex[:8]}"
        pg = PostgresStateStore(POSTGRES_DSN, schema=schema, max_size=20)
        floor = await postgres_floor(n)
        results.append(row("postgres", await round_trip(pg, n), floor))
        lost, doubles, rate = await concurrent_pauses(pg, count)
        results.append(race_row("postgres", count, lost, doubles, rate))
        mode = await pg.synchronous_commit()
        results[-2].note += f"; synchronous_commit={mode}"
        pool = await pg._get_pool()
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pg.close()
    except (OSError, ImportError, StateStoreError) as exc:
        results.append(skipped("pause round trip: postgres", exc))

    try:
        from penguiflow.state.redis import RedisStateStore

        prefix = f"pfbench:{uuid.uuid4().hex[:8]}"
        rs = RedisStateStore(REDIS_URL, prefix=prefix)
        floor = await redis_floor(n)
        results.append(row("redis", await round_trip(rs, n), floor))
        client = await rs._redis()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await rs.close()
    except (OSError, ImportError, StateStoreError) as exc:
        results.append(skipped("pause round trip: redis", exc))
    return results


def race_row(name: str, count: int, lost: int, doubles: int, rate: float) -> Result:
    return Result(
        name=f"{count} concurrent pauses: {name}",
        subject=float(lost + doubles),
        floor=0.0,
        unit="lost+double",
        ratio=1.0 if lost + doubles == 0 else float("inf"),
        target="0 lost, 0 double",
        met=lost == 0 and doubles == 0,
        note=f"{lost} lost, {doubles} double resumes; {rate:,.0f} ops/s (save + 2 racing loads)",
    )


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "State stores"))
