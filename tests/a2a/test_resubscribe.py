"""`tasks/resubscribe`: a client whose stream dropped reattaches and gets every step
of the running task, in order; a task nobody reattaches to is cancelled after the
grace period."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from penguiflow_a2a import create_a2a_app

from .conftest import adapter_for, chatter_flow, echo_flow, served

a2a_client = pytest.importorskip("a2a.client", reason="a2a-sdk is not installed")
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory  # noqa: E402

from a2a import types as a2a  # noqa: E402


def rpc(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}


def stream_params(data: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "user", "messageId": "m-1", "parts": [{"kind": "data", "data": data}]}
    return {"message": message}


async def events(reply: httpx.Response, limit: int | None = None) -> list[dict[str, Any]]:
    """The JSON-RPC results of an SSE reply (at most `limit`, then the stream is left)."""
    seen: list[dict[str, Any]] = []
    async for line in reply.aiter_lines():
        if line.startswith("data: "):
            seen.append(json.loads(line[6:])["result"])
            if limit is not None and len(seen) == limit:
                break
    return seen


def chunk_texts(results: list[dict[str, Any]]) -> list[str]:
    return [
        result["artifact"]["parts"][0]["text"]
        for result in results
        if result.get("kind") == "artifact-update" and result["artifact"]["name"] == "stream"
    ]


async def test_a_dropped_stream_is_resumed_with_every_step_in_order() -> None:
    adapter = adapter_for(chatter_flow(), resubscribe_grace_s=10)
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        body = rpc("message/stream", stream_params({"chunks": 20, "gap": 0.02}))
        async with client.stream("POST", "/", json=body) as reply:
            first = await events(reply, limit=5)  # the task, working, three chunks
        task_id = first[0]["id"]
        assert chunk_texts(first) == ["part 0", "part 1", "part 2"]
        assert adapter.active_tasks == 1  # the dropped stream did not cancel it

        body = rpc("tasks/resubscribe", {"id": task_id})
        async with client.stream("POST", "/", json=body) as reply:
            assert reply.headers["content-type"].startswith("text/event-stream")
            again = await events(reply)
    assert again[0]["kind"] == "task"
    assert again[0]["id"] == task_id
    assert chunk_texts(again) == [f"part {i}" for i in range(20)]  # no gap, no repeat
    result = [r for r in again if r.get("kind") == "artifact-update"][-1]
    assert result["artifact"]["parts"][0]["data"] == {"chunks": 20}
    assert again[-1] == {**again[-1], "kind": "status-update", "final": True}
    assert again[-1]["status"]["state"] == "completed"
    assert adapter.active_tasks == 0


async def test_the_official_client_can_resubscribe() -> None:
    adapter = adapter_for(chatter_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        adapter.agent_url = url
        card = await A2ACardResolver(http, url).get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        config = a2a.MessageSendConfiguration(blocking=False)
        message = a2a.Message(
            role=a2a.Role.user,
            message_id="m-2",
            parts=[a2a.Part(root=a2a.DataPart(data={"chunks": 4, "gap": 0.05}))],
        )
        stream = client.send_message(message, configuration=config)
        task, _ = await anext(stream)
        await stream.aclose()  # the first stream drops right after the task arrives
        updates = [
            update async for _task, update in client.resubscribe(a2a.TaskIdParams(id=task.id))
        ]
    texts = [
        update.artifact.parts[0].root.text
        for update in updates
        if isinstance(update, a2a.TaskArtifactUpdateEvent) and update.artifact.name == "stream"
    ]
    assert texts == ["part 0", "part 1", "part 2", "part 3"]
    final = updates[-1]
    assert isinstance(final, a2a.TaskStatusUpdateEvent)
    assert final.final
    assert final.status.state == a2a.TaskState.completed


async def test_resubscribing_to_a_finished_task_gives_the_task() -> None:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        sent = await client.post("/", json=rpc("message/send", stream_params({"q": 1})))
        task_id = sent.json()["result"]["id"]
        async with client.stream("POST", "/", json=rpc("tasks/resubscribe", {"id": task_id})) as r:
            results = await events(r)
    assert [result["kind"] for result in results] == ["task"]
    assert results[0]["status"]["state"] == "completed"
    assert results[0]["artifacts"][0]["parts"][0]["data"] == {"echo": {"q": 1}}


async def test_resubscribing_to_an_unknown_task_is_task_not_found() -> None:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        reply = await client.post("/", json=rpc("tasks/resubscribe", {"id": "missing"}))
    assert reply.headers["content-type"].startswith("text/event-stream")
    (event,) = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    assert json.loads(event[6:]) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32001, "message": "Task not found"},
    }


async def test_a_task_nobody_reattaches_to_is_cancelled_after_the_grace_period() -> None:
    adapter = adapter_for(chatter_flow(), resubscribe_grace_s=0.3)
    flow = adapter.flow
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        body = rpc("message/stream", stream_params({"chunks": 500, "gap": 0.02}))
        async with client.stream("POST", "/", json=body) as reply:
            task_id = (await events(reply, limit=1))[0]["id"]
        await asyncio.sleep(0.1)
        assert adapter.active_tasks == 1  # within the grace period
        for _ in range(300):
            if adapter.active_tasks == 0 and not flow.traces.active():
                break
            await asyncio.sleep(0.01)
        assert adapter.active_tasks == 0
        assert not flow.traces.active()  # no task leaks
        got = await client.post("/", json=rpc("tasks/get", {"id": task_id}))
    assert got.json()["result"]["status"]["state"] == "canceled"


async def test_reattaching_within_the_grace_period_keeps_the_task() -> None:
    adapter = adapter_for(chatter_flow(), resubscribe_grace_s=0.4)
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        body = rpc("message/stream", stream_params({"chunks": 40, "gap": 0.025}))
        async with client.stream("POST", "/", json=body) as reply:
            task_id = (await events(reply, limit=1))[0]["id"]
        await asyncio.sleep(0.25)
        body = rpc("tasks/resubscribe", {"id": task_id})
        async with client.stream("POST", "/", json=body) as reply:
            results = await events(reply)  # reads on past the first grace period
    assert chunk_texts(results) == [f"part {i}" for i in range(40)]
    assert results[-1]["status"]["state"] == "completed"


async def test_two_followers_see_the_same_steps() -> None:
    adapter = adapter_for(chatter_flow())
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        body = rpc("message/stream", stream_params({"chunks": 10, "gap": 0.02}))
        async with client.stream("POST", "/", json=body) as reply:
            lines = reply.aiter_lines()
            first_line = await anext(lines)
            task_id = json.loads(first_line[6:])["result"]["id"]

            async def resubscribe() -> list[dict[str, Any]]:
                params = {"id": task_id}
                async with client.stream("POST", "/", json=rpc("tasks/resubscribe", params)) as r:
                    return await events(r)

            other = asyncio.create_task(resubscribe())
            rest = [json.loads(line[6:])["result"] async for line in lines if line[:6] == "data: "]
            theirs = await other
    assert chunk_texts(rest) == chunk_texts(theirs) == [f"part {i}" for i in range(10)]
