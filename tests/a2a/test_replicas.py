"""Replicas behind a load balancer: two server processes over one state store
(PostgreSQL, Redis, a SQLite file) answer for each other's tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.state import InMemoryStateStore, StoredTask
from penguiflow_a2a import create_a2a_app

from ..state.conftest import POSTGRES_DSN, REDIS_URL, unavailable
from .conftest import adapter_for, echo_flow, served, served_in_process


def rpc(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def send_params(data: Any, *, blocking: bool = True) -> dict[str, Any]:
    message = {
        "role": "user",
        "messageId": uuid.uuid4().hex,
        "parts": [{"kind": "data", "data": data}],
    }
    return {"message": message, "configuration": {"blocking": blocking}}


async def _reachable(backend: str) -> None:
    if backend == "postgres":
        import asyncpg

        try:
            connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            unavailable("PostgreSQL", exc)
        await connection.close()
    elif backend == "redis":
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            unavailable("Redis", exc)
        finally:
            await client.aclose()


async def _drop(backend: str, namespace: str) -> None:
    if backend == "postgres":
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        await connection.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")
        await connection.close()
    elif backend == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["postgres", "redis", "sqlite"])
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    backend = request.param
    await _reachable(backend)
    namespace = f"pf_replicas_{uuid.uuid4().hex[:10]}"
    url = {
        "postgres": POSTGRES_DSN,
        "redis": REDIS_URL,
        "sqlite": f"sqlite:///{tmp_path / 'tasks.db'}",
    }[backend]
    env = {"PF_REPLICA_STORE": url, "PF_REPLICA_NAMESPACE": namespace}
    try:
        async with (
            served_in_process("tests.a2a.apps:replica", {**env, "PF_REPLICA_NAME": "a"}) as a,
            served_in_process("tests.a2a.apps:replica", {**env, "PF_REPLICA_NAME": "b"}) as b,
            httpx.AsyncClient(base_url=a[0], timeout=20) as first,
            httpx.AsyncClient(base_url=b[0], timeout=20) as second,
        ):
            yield first, second
    finally:
        await _drop(backend, namespace)


async def state_of(client: httpx.AsyncClient, task_id: str) -> str:
    reply = await client.post("/", json=rpc("tasks/get", {"id": task_id}))
    body = reply.json()
    assert "result" in body, body
    state: str = body["result"]["status"]["state"]
    return state


async def test_a_task_is_cancelled_from_the_replica_that_did_not_start_it(replicas) -> None:
    starter, other = replicas
    sent = await starter.post(
        "/", json=rpc("message/send", send_params({"sleep": 60}, blocking=False))
    )
    task_id = sent.json()["result"]["id"]
    for _ in range(100):
        if await state_of(other, task_id) == "working":
            break
        await asyncio.sleep(0.05)
    assert await state_of(other, task_id) == "working"  # the other replica sees it run

    subscribed = asyncio.Event()

    async def resubscribe() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with other.stream("POST", "/", json=rpc("tasks/resubscribe", {"id": task_id})) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:])["result"])
                    subscribed.set()  # the snapshot came: later updates reach this stream
        return events

    watching = asyncio.create_task(resubscribe())
    # Cancel only once the stream is open: a resubscribe that arrives after the
    # cancel gets the finished task alone, which is right but not what this tests.
    await asyncio.wait_for(subscribed.wait(), 10)
    cancelled = await other.post("/", json=rpc("tasks/cancel", {"id": task_id}))
    assert cancelled.json()["result"]["status"]["state"] == "canceled"
    assert await state_of(starter, task_id) == "canceled"  # the starter cancelled its trace
    assert await state_of(other, task_id) == "canceled"
    events = await asyncio.wait_for(watching, 10)
    assert events[0]["kind"] == "task"
    assert events[-1]["kind"] == "status-update"
    assert events[-1]["final"] is True
    assert events[-1]["status"]["state"] == "canceled"

    again = await other.post("/", json=rpc("tasks/cancel", {"id": task_id}))
    assert again.json()["error"]["code"] == -32002  # a finished task is not cancelable


async def test_a_finished_task_is_seen_with_its_result_on_every_replica(replicas) -> None:
    starter, other = replicas
    sent = await starter.post("/", json=rpc("message/send", send_params({"q": "hello"})))
    task = sent.json()["result"]
    assert task["status"]["state"] == "completed"
    seen = (await other.post("/", json=rpc("tasks/get", {"id": task["id"]}))).json()["result"]
    assert seen["status"]["state"] == "completed"
    assert seen["artifacts"] == task["artifacts"]
    assert seen["artifacts"][0]["parts"][0]["data"] == {"done": {"q": "hello"}}
    assert seen["history"] == task["history"]
    missing = await other.post("/", json=rpc("tasks/get", {"id": "no-such-task"}))
    assert missing.json()["error"]["code"] == -32001


class FailingStore(InMemoryStateStore):
    """A task store whose writes fail (a store outage)."""

    async def save_task(self, task: StoredTask) -> None:
        raise ConnectionError("store is down")


async def test_a_task_store_outage_never_fails_a_task() -> None:
    adapter = adapter_for(echo_flow(), task_store=FailingStore())
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        reply = await client.post("/", json=rpc("message/send", send_params({"q": 1})))
    task = reply.json()["result"]
    assert task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"][0]["data"] == {"echo": {"q": 1}}
    assert adapter.task_store_errors >= 2  # each failed write counted (and logged)


def test_a_task_store_must_offer_the_task_methods() -> None:
    with pytest.raises(InvalidArgumentError, match=r"penguiflow\.state\.TaskStore"):
        adapter_for(echo_flow(), task_store=object())


async def test_a_cancel_that_fails_does_not_stop_taking_cancel_requests() -> None:
    store = InMemoryStateStore()
    adapter = adapter_for(echo_flow(), task_store=store, replica="r1", task_poll_s=0.02)
    flow = adapter.flow
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        ids = []
        for _ in range(2):
            sent = await client.post(
                "/", json=rpc("message/send", send_params({"sleep": 30}, blocking=False))
            )
            ids.append(sent.json()["result"]["id"])
        broken = (await adapter.find_task(ids[0])).trace_id  # type: ignore[union-attr]
        cancel = flow.cancel

        async def failing(trace_id: str) -> bool:
            if trace_id == broken:
                raise RuntimeError("cancel failed")
            return await cancel(trace_id)

        flow.cancel = failing  # type: ignore[method-assign]
        assert await store.request_task_cancel(ids[0])
        await asyncio.sleep(0.1)
        assert await store.request_task_cancel(ids[1])
        for _ in range(200):
            if await state_of(client, ids[1]) == "canceled":
                break
            await asyncio.sleep(0.02)
        assert await state_of(client, ids[1]) == "canceled"  # the watcher lived on
        flow.cancel = cancel  # type: ignore[method-assign]
        await client.post("/", json=rpc("tasks/cancel", {"id": ids[0]}))


class CountingStore(InMemoryStateStore):
    """A task store that remembers the state of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    async def save_task(self, task: StoredTask) -> None:
        self.writes.append(task.state)
        await super().save_task(task)


async def test_each_state_of_a_task_is_written_once() -> None:
    store = CountingStore()
    adapter = adapter_for(echo_flow(), task_store=store)
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        for blocking in (True, False):
            store.writes.clear()
            params = send_params({"q": 1}, blocking=blocking)
            task_id = (await client.post("/", json=rpc("message/send", params))).json()["result"][
                "id"
            ]
            while await state_of(client, task_id) != "completed":
                await asyncio.sleep(0.01)
            assert store.writes == ["submitted", "working", "completed"]
