"""A2A task records on every state store: the same behaviour whatever the backend."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from penguiflow.state import CorruptRecordError, InvalidDataError, StoredTask, TaskStore
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

from .conftest import POSTGRES_DSN, REDIS_URL


def task(task_id: str = "t1", *, replica: str = "replica-a", **fields: Any) -> StoredTask:
    values: dict[str, Any] = {
        "context_id": "ctx-1",
        "owner": "alice",
        "state": "working",
        "updated_at": 1000.0,
        "data": {"status": {"state": "working"}},
    }
    values |= fields
    return StoredTask(task_id=task_id, replica=replica, **values)


# -- records -----------------------------------------------------------------------------


async def test_every_store_is_a_task_store(store: Any) -> None:
    assert isinstance(store, TaskStore)


async def test_a_task_round_trips_with_every_field(store: Any) -> None:
    record = StoredTask(
        task_id="tâsk-🐧-1",
        context_id="contexte ✓",
        owner="ünïcødé owner",
        replica="replica-ß",
        state="input-required",
        updated_at=1712345678.125,
        data={
            "status": {"state": "input-required", "message": "Où est 🐧?"},
            "artifacts": [{"parts": [{"text": 'quote" and \\ backslash \u2028'}]}],
            "history": [{"k": [1, [2, [3, None]]]}, True, -(2**53), 2**63 - 1, 0.5],
            "empty": {},
        },
    )
    await store.save_task(record)
    assert await store.load_task("tâsk-🐧-1") == record


async def test_a_task_without_an_owner_round_trips(store: Any) -> None:
    record = task(owner=None, data={})
    await store.save_task(record)
    assert await store.load_task("t1") == record


async def test_saving_a_task_again_replaces_it(store: Any) -> None:
    await store.save_task(task(state="working"))
    done = task(state="completed", updated_at=1001.5, data={"status": {"state": "completed"}})
    await store.save_task(done)
    await store.save_task(task("t2"))
    assert await store.load_task("t1") == done
    assert await store.load_task("t2") == task("t2")


async def test_an_unknown_task_loads_as_none(store: Any) -> None:
    await store.save_task(task("known"))
    assert await store.load_task("unknown") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"data": {"x": {1, 2}}},
        {"data": {"x": object()}},
        {"data": {"x": float("nan")}},
        {"data": {"x": "\ud800"}},
        {"data": ["not", "a", "mapping"]},
        {"data": None},
        {"task_id": ""},
        {"task_id": "t\x00x"},
        {"task_id": 7},
        {"replica": ""},
        {"replica": None},
        {"context_id": 7},
        {"owner": 5},
        {"state": None},
        {"updated_at": "now"},
        {"updated_at": True},
        {"updated_at": float("inf")},
    ],
    ids=lambda bad: f"{next(iter(bad))}={next(iter(bad.values()))!r}",
)
async def test_a_task_that_cannot_be_stored_is_refused_and_nothing_is_written(
    store: Any, bad: dict[str, Any]
) -> None:
    before = task(data={"v": 1})
    await store.save_task(before)
    await store.request_task_cancel("t1")
    with pytest.raises(InvalidDataError):
        await store.save_task(dataclasses.replace(task(), **bad))
    with pytest.raises(InvalidDataError):
        await store.save_task(dataclasses.replace(task("t2"), **bad))
    assert await store.load_task("t1") == before
    assert await store.load_task("t2") is None
    assert await store.take_task_cancels("replica-a") == ["t1"]


@pytest.mark.parametrize("bad_id", ["", "t\x00x", "\ud800", 7])
async def test_ids_every_backend_cannot_hold_are_refused(store: Any, bad_id: Any) -> None:
    with pytest.raises(InvalidDataError):
        await store.load_task(bad_id)
    with pytest.raises(InvalidDataError):
        await store.request_task_cancel(bad_id)
    with pytest.raises(InvalidDataError):
        await store.take_task_cancels(bad_id)
    with pytest.raises(InvalidDataError):
        await store.delete_task(bad_id)


INJECTION = ["' OR '1'='1", "'; DROP TABLE tasks; --", "%", "*", "taskcancels", "a:b:c"]


@pytest.mark.parametrize("hostile", INJECTION, ids=range(len(INJECTION)))
async def test_injection_attempts_are_plain_data(store: Any, hostile: str) -> None:
    victim = task("victim")
    await store.save_task(victim)
    assert await store.load_task(hostile) is None
    assert await store.request_task_cancel(hostile) is False
    assert await store.take_task_cancels(hostile) == []
    await store.delete_task(hostile)
    mine = task(hostile, replica=hostile, context_id=hostile, owner=hostile, state=hostile)
    await store.save_task(mine)
    assert await store.load_task(hostile) == mine
    assert await store.request_task_cancel(hostile) is True
    assert await store.take_task_cancels(hostile) == [hostile]
    assert await store.load_task("victim") == victim


# -- cancel requests ---------------------------------------------------------------------


async def test_a_cancel_request_for_an_unknown_task_is_refused(store: Any) -> None:
    await store.save_task(task("known"))
    assert await store.request_task_cancel("unknown") is False
    assert await store.take_task_cancels("replica-a") == []


async def test_a_requested_cancel_is_taken_once(store: Any) -> None:
    await store.save_task(task("t1"))
    assert await store.request_task_cancel("t1") is True
    assert await store.take_task_cancels("replica-a") == ["t1"]
    assert await store.take_task_cancels("replica-a") == []
    assert await store.load_task("t1") == task("t1")  # the record stays


async def test_requesting_twice_before_the_take_queues_once(store: Any) -> None:
    await store.save_task(task("t1"))
    assert await store.request_task_cancel("t1") is True
    assert await store.request_task_cancel("t1") is True
    assert await store.take_task_cancels("replica-a") == ["t1"]
    assert await store.request_task_cancel("t1") is True  # a new request after the take
    assert await store.take_task_cancels("replica-a") == ["t1"]


async def test_requests_are_taken_by_the_replica_running_the_task(store: Any) -> None:
    for name, replica in [("b2", "b"), ("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c")]:
        await store.save_task(task(name, replica=replica))
        await store.request_task_cancel(name)
    assert await store.take_task_cancels("b") == ["b1", "b2"]
    assert await store.take_task_cancels("a") == ["a1", "a2"]
    assert await store.take_task_cancels("nobody") == []
    assert await store.take_task_cancels("c") == ["c1"]


async def test_saving_a_task_does_not_clear_its_request(store: Any) -> None:
    await store.save_task(task("t1", state="working"))
    await store.request_task_cancel("t1")
    await store.save_task(task("t1", state="canceling", updated_at=1002.0))
    assert await store.take_task_cancels("replica-a") == ["t1"]
    assert (await store.load_task("t1")) == task("t1", state="canceling", updated_at=1002.0)


async def test_a_queued_request_stays_with_its_replica_until_requested_again(store: Any) -> None:
    # The request goes to the replica the record names when it is made: a task that
    # moves keeps a queued request where it was, and a new request re-queues it
    # (once) for the replica it moved to.
    await store.save_task(task("t1", replica="old"))
    await store.request_task_cancel("t1")
    await store.save_task(task("t1", replica="new"))
    assert await store.take_task_cancels("new") == []
    assert await store.take_task_cancels("old") == ["t1"]

    await store.save_task(task("t2", replica="old"))
    await store.request_task_cancel("t2")
    await store.save_task(task("t2", replica="new"))
    await store.request_task_cancel("t2")
    assert await store.take_task_cancels("old") == []
    assert await store.take_task_cancels("new") == ["t2"]


async def test_delete_forgets_the_record_and_its_request(store: Any) -> None:
    await store.save_task(task("drop"))
    await store.save_task(task("keep"))
    await store.request_task_cancel("drop")
    await store.request_task_cancel("keep")
    await store.delete_task("drop")
    await store.delete_task("never-saved")
    assert await store.load_task("drop") is None
    assert await store.request_task_cancel("drop") is False
    assert await store.take_task_cancels("replica-a") == ["keep"]
    assert await store.load_task("keep") == task("keep")
    await store.save_task(task("drop"))  # a deleted task id can be saved again
    assert await store.take_task_cancels("replica-a") == []
    assert await store.load_task("drop") == task("drop")


# -- concurrency -------------------------------------------------------------------------


async def _requests_and_takers(takers: list[Any], ids: list[str]) -> list[str]:
    """Every id requested once, with takers running alongside; all ids taken after."""
    requests = [takers[0].request_task_cancel(task_id) for task_id in ids]
    results = await asyncio.gather(
        *requests, *(taker.take_task_cancels("replica-a") for taker in takers * 4)
    )
    assert results[: len(ids)] == [True] * len(ids)
    taken = [task_id for batch in results[len(ids) :] for task_id in batch]
    for taker in takers:
        taken += await taker.take_task_cancels("replica-a")
    return taken


async def test_concurrent_takers_never_get_the_same_id(store: Any) -> None:
    ids = [f"t{n:03d}" for n in range(60)]
    await asyncio.gather(*(store.save_task(task(task_id)) for task_id in ids))
    for round_ in range(3):
        taken = await _requests_and_takers([store], ids)
        assert sorted(taken) == ids, f"round {round_}"


async def test_concurrent_takers_on_two_sqlite_stores_never_get_the_same_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    first, second = SQLiteStateStore(path), SQLiteStateStore(path)
    try:
        ids = [f"t{n:03d}" for n in range(60)]
        for task_id in ids:
            await first.save_task(task(task_id))
        for round_ in range(3):
            taken = await _requests_and_takers([first, second], ids)
            assert sorted(taken) == ids, f"round {round_}"
    finally:
        await first.close()
        await second.close()


async def test_sqlite_tasks_survive_reopening_the_file(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "tasks.db")
    await store.save_task(task("t1", data={"🐧": [1, 2]}))
    await store.request_task_cancel("t1")
    await store.close()
    reopened = SQLiteStateStore(tmp_path / "tasks.db")
    assert await reopened.load_task("t1") == task("t1", data={"🐧": [1, 2]})
    assert await reopened.take_task_cancels("replica-a") == ["t1"]
    await reopened.close()


# -- corrupt rows ------------------------------------------------------------------------

RawTaskWriter = Callable[[str, str], Awaitable[None]]


@pytest.fixture
async def raw_task(store: Any, tmp_path: Path) -> Any:
    """Writes a raw body for a task id straight into the store's backend."""
    if isinstance(store, InMemoryStateStore):

        async def memory(task_id: str, body: str) -> None:
            store._tasks[task_id] = ("replica-a", body)

        yield memory
    elif isinstance(store, SQLiteStateStore):

        async def lite(task_id: str, body: str) -> None:
            await store.schema_version()
            conn = sqlite3.connect(tmp_path / "state.db")
            conn.execute(
                "INSERT INTO tasks (task_id, replica, body) VALUES (?, 'replica-a', ?)",
                (task_id, body),
            )
            conn.commit()
            conn.close()

        yield lite
    elif type(store).__name__ == "PostgresStateStore":
        import asyncpg

        admin = await asyncpg.connect(POSTGRES_DSN)

        async def pg(task_id: str, body: str) -> None:
            await store.schema_version()
            await admin.execute(
                f"INSERT INTO {store._schema}.tasks (task_id, replica, body) "
                "VALUES ($1, 'replica-a', $2)",
                task_id,
                body,
            )

        yield pg
        await admin.close()
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)

        async def rd(task_id: str, body: str) -> None:
            await client.hset(
                f"{store._prefix}:task:{task_id}", mapping={"replica": "replica-a", "body": body}
            )

        yield rd
        await client.aclose()


HOSTILE_ROWS = [
    '{"__class__": "os.system", "args": ["rm -rf /"]}',
    "not json",
    "[1, 2, 3]",
    '{"task_id": 1, "context_id": null, "owner": 0, "replica": [], "state": 1, '
    '"updated_at": "x", "data": []}',
    '{"task_id": "bad", "context_id": "c", "owner": null, "replica": "r", "state": "s", '
    '"updated_at": 1.0, "data": {}, "extra": 1}',
    '{"task_id": "other", "context_id": "c", "owner": null, "replica": "r", "state": "s", '
    '"updated_at": 1.0, "data": {}}',
    "",
]


@pytest.mark.parametrize("body", HOSTILE_ROWS, ids=range(len(HOSTILE_ROWS)))
async def test_corrupt_task_rows_give_a_typed_error_naming_the_task(
    store: Any, raw_task: RawTaskWriter, body: str
) -> None:
    await store.save_task(task("good"))
    await raw_task("bad", body)
    with pytest.raises(CorruptRecordError) as caught:
        await store.load_task("bad")
    assert caught.value.key == "bad"
    assert await store.load_task("good") == task("good")
    await store.delete_task("bad")
    assert await store.load_task("bad") is None
