"""Listing stored traces on every state store: the same behaviour whatever the backend."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.state import InvalidDataError, StoredEvent, TraceListStore, TraceSummary
from penguiflow.state.sqlite import SQLiteStateStore

from .conftest import POSTGRES_DSN, REDIS_URL, RawWriter


def event(trace: str | None, ts: float, n: int = 0) -> StoredEvent:
    return StoredEvent(trace, ts, "node_start", "node", "id", {"n": n})


def listed(summaries: Any) -> list[tuple[str, int, float]]:
    return [(s.trace_id, s.event_count, s.last_ts) for s in summaries]


def reopen(store: Any, tmp_path: Path) -> Any:
    """A second store over the same data (same file, schema or prefix)."""
    if isinstance(store, SQLiteStateStore):
        return SQLiteStateStore(tmp_path / "state.db")
    if type(store).__name__ == "PostgresStateStore":
        from penguiflow.state.postgres import PostgresStateStore

        return PostgresStateStore(POSTGRES_DSN, schema=store._schema)
    from penguiflow.state.redis import RedisStateStore

    return RedisStateStore(REDIS_URL, prefix=store._prefix)


# -- the capability ----------------------------------------------------------------------


async def test_every_store_lists_its_traces(store: Any) -> None:
    assert isinstance(store, TraceListStore)


async def test_a_store_without_events_lists_nothing(store: Any) -> None:
    assert await store.list_traces() == []


async def test_traces_are_listed_newest_first_with_their_counts(store: Any) -> None:
    for n, ts in enumerate((10.0, 11.0, 12.5)):
        await store.save_event(event("old", ts, n))
    await store.save_event(event("new", 30.25))
    for n, ts in enumerate((20.0, 21.0)):
        await store.save_event(event("middle", ts, n))
    summaries = await store.list_traces()
    assert all(isinstance(s, TraceSummary) for s in summaries)
    assert listed(summaries) == [("new", 1, 30.25), ("middle", 2, 21.0), ("old", 3, 12.5)]


async def test_the_last_event_time_is_the_latest_ts_whatever_the_save_order(store: Any) -> None:
    await store.save_event(event("t", 50.0, 0))
    await store.save_event(event("t", 5.0, 1))  # saved later, but an earlier event
    await store.save_event(event("u", 40.0))
    assert listed(await store.list_traces()) == [("t", 2, 50.0), ("u", 1, 40.0)]


async def test_ties_are_broken_by_trace_id_descending(store: Any) -> None:
    for trace in ("b", "a", "c", "B"):
        await store.save_event(event(trace, 7.0))
    assert [s.trace_id for s in await store.list_traces()] == ["c", "b", "a", "B"]


async def test_an_identical_event_saved_twice_counts_once(store: Any) -> None:
    await store.save_event(event("t", 1.0))
    await store.save_event(event("t", 1.0))
    await store.save_event(event("t", 2.0))
    assert listed(await store.list_traces()) == [("t", 2, 2.0)]
    assert len(await store.load_history("t")) == 2


async def test_events_without_a_trace_are_not_listed(store: Any) -> None:
    await store.save_event(event(None, 99.0))
    await store.save_event(event("t", 1.0))
    assert listed(await store.list_traces()) == [("t", 1, 1.0)]


async def test_unusual_trace_ids_are_listed_as_saved(store: Any) -> None:
    names = ["tråce 🐧", "with:colons:events:x", "quote' and \" and \\", "*?[glob]", " "]
    for i, name in enumerate(names):
        await store.save_event(event(name, float(i)))
    assert [s.trace_id for s in await store.list_traces()] == names[::-1]
    for name in names:
        assert len(await store.load_history(name)) == 1


async def test_timestamps_keep_full_precision(store: Any) -> None:
    ts = 1_712_345_678.123456789
    await store.save_event(event("t", ts))
    (summary,) = await store.list_traces()
    assert summary.last_ts == ts


async def test_offset_and_limit_page_the_list(store: Any) -> None:
    for n in range(7):
        await store.save_event(event(f"t{n}", float(n)))
    newest_first = [f"t{n}" for n in range(6, -1, -1)]
    assert [s.trace_id for s in await store.list_traces(limit=3)] == newest_first[:3]
    assert [s.trace_id for s in await store.list_traces(offset=3, limit=3)] == newest_first[3:6]
    assert [s.trace_id for s in await store.list_traces(offset=6)] == newest_first[6:]
    assert [s.trace_id for s in await store.list_traces(limit=None)] == newest_first
    assert await store.list_traces(offset=7) == []
    assert await store.list_traces(limit=0) == []


async def test_the_default_page_is_fifty_traces(store: Any) -> None:
    await asyncio.gather(*(store.save_event(event(f"t{n:02d}", float(n))) for n in range(55)))
    page = await store.list_traces()
    assert [s.trace_id for s in page] == [f"t{n:02d}" for n in range(54, 4, -1)]


@pytest.mark.parametrize(
    ("offset", "limit"), [(-1, 10), (0, -1), ("0", 10), (0, 1.5), (True, 10), (0, False)]
)
async def test_bad_paging_is_refused(store: Any, offset: Any, limit: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        await store.list_traces(offset=offset, limit=limit)


async def test_a_deleted_trace_leaves_the_list(store: Any) -> None:
    await store.save_event(event("gone", 2.0))
    await store.save_event(event("kept", 1.0))
    await store.delete_trace("gone")
    assert listed(await store.list_traces()) == [("kept", 1, 1.0)]
    await store.save_event(event("gone", 0.5))  # a new history starts from nothing
    assert listed(await store.list_traces()) == [("kept", 1, 1.0), ("gone", 1, 0.5)]


async def test_refused_events_are_not_counted(store: Any) -> None:
    await store.save_event(event("t", 1.0))
    with pytest.raises(InvalidDataError):
        await store.save_event(StoredEvent("t", 9.0, "node_start", "n", "i", {"bad": {1, 2}}))
    assert listed(await store.list_traces()) == [("t", 1, 1.0)]


async def test_concurrent_saves_are_all_counted(store: Any) -> None:
    saves = [store.save_event(event(f"t{n % 4}", float(n), n)) for n in range(80)]
    await asyncio.gather(*saves)
    assert listed(await store.list_traces()) == [(f"t{k}", 20, float(76 + k)) for k in (3, 2, 1, 0)]


DURABLE = ["sqlite", "postgres", "redis"]


@pytest.mark.parametrize("backend", DURABLE, indirect=True)
async def test_the_list_is_the_same_from_another_store_instance(store: Any, tmp_path: Path) -> None:
    await store.save_event(event("t", 3.0))
    await store.save_event(event("u", 4.0))
    other = reopen(store, tmp_path)
    try:
        assert listed(await other.list_traces()) == [("u", 1, 4.0), ("t", 1, 3.0)]
        await other.save_event(event("t", 5.0, 1))
    finally:
        await other.close()
    assert listed(await store.list_traces()) == [("t", 2, 5.0), ("u", 1, 4.0)]


# -- stores written before traces were listed -----------------------------------------


async def test_a_version_1_sqlite_file_lists_the_traces_it_already_holds(tmp_path: Path) -> None:
    from .test_span_conformance import V1_SCHEMA

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    rows = [("a", 1.0), ("a", 3.0), ("a", 2.0), ("b", 2.5), ("", 9.0)]
    for n, (trace, ts) in enumerate(rows):
        body: dict[str, Any] = {"trace_id": trace or None, "ts": ts, "kind": "k", "node_name": None}
        body |= {"node_id": None, "payload": {"n": n}}
        conn.execute(
            "INSERT INTO events (trace_id, digest, body) VALUES (?, ?, ?)",
            (trace, f"d{n}", json.dumps(body)),
        )
    # A row written outside the store still counts as history; its time is unknown.
    conn.execute("INSERT INTO events (trace_id, digest, body) VALUES ('c', 'dx', 'not json')")
    conn.commit()
    conn.close()

    store = SQLiteStateStore(path)
    assert await store.schema_version() == 5
    assert listed(await store.list_traces()) == [("a", 3, 3.0), ("b", 1, 2.5), ("c", 1, 0.0)]
    await store.save_event(event("b", 4.0))
    assert listed(await store.list_traces(limit=1)) == [("b", 2, 4.0)]
    await store.close()


@pytest.mark.parametrize("backend", DURABLE, indirect=True)
async def test_the_stores_schema_versions(store: Any) -> None:
    expected = {"SQLiteStateStore": 5, "PostgresStateStore": 4, "RedisStateStore": 2}
    assert await store.schema_version() == expected[type(store).__name__]


@pytest.mark.parametrize("backend", ["postgres", "redis"], indirect=True)
async def test_an_older_postgres_or_redis_store_lists_the_traces_it_already_holds(
    backend: tuple[Any, RawWriter], tmp_path: Path
) -> None:
    store, raw = backend
    name = type(store).__name__
    await store.save_event(event("a", 1.0))
    await store.save_event(event("a", 6.0, 1))
    # Roll the store back to the previous schema: no list of traces yet.
    if name == "PostgresStateStore":
        pool = await store._get_pool()
        await pool.execute(f"DROP TABLE {store._schema}.traces")
        await pool.execute(f"DELETE FROM {store._schema}.penguiflow_schema WHERE version = 4")
    else:
        client = await store._redis()
        await client.delete(f"{store._prefix}:traces")
        await client.set(f"{store._prefix}:schema", 1)
    body = {"trace_id": "b", "ts": 4.5, "kind": "k", "node_name": None, "node_id": None}
    await raw("b", json.dumps(body | {"payload": {}}))
    await raw("b", "not json")  # written outside the store: counted, no time of its own
    await raw("c", "[1, 2]")
    await store.close()

    upgraded = reopen(store, tmp_path)
    try:
        assert listed(await upgraded.list_traces()) == [("a", 2, 6.0), ("b", 2, 4.5), ("c", 1, 0.0)]
        assert await upgraded.schema_version() == (4 if name == "PostgresStateStore" else 2)
        await upgraded.save_event(event("c", 8.0))
        assert listed(await upgraded.list_traces(limit=1)) == [("c", 2, 8.0)]
    finally:
        await upgraded.close()
