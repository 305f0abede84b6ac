"""Standard A2A clients can call our agents: the official `a2a-sdk` client against
the JSON-RPC endpoint and agent card, served by uvicorn."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

a2a_client = pytest.importorskip("a2a.client", reason="a2a-sdk is not installed")
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory  # noqa: E402
from a2a.client.errors import A2AClientJSONRPCError  # noqa: E402

from a2a import types as a2a  # noqa: E402


def user_message(data: dict[str, Any]) -> a2a.Message:
    return a2a.Message(
        role=a2a.Role.user,
        message_id=uuid.uuid4().hex,
        parts=[a2a.Part(root=a2a.DataPart(data=data))],
    )


async def connect(url: str, http: httpx.AsyncClient, *, streaming: bool) -> Any:
    card = await A2ACardResolver(http, url).get_agent_card()
    return ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


async def test_the_agent_card_validates_as_an_a2a_card(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, url).get_agent_card()
    assert card.name == "echo-agent"
    assert card.capabilities.streaming is True
    assert card.preferred_transport == "JSONRPC"
    assert [skill.id for skill in card.skills] == ["echo"]


async def test_message_send_returns_a_completed_task(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=False)
        events = [event async for event in client.send_message(user_message({"q": 1}))]
        assert len(events) == 1
        task, update = events[0]
        assert update is None
        assert task.status.state == a2a.TaskState.completed
        assert task.artifacts[0].parts[0].root.data == {"echo": {"q": 1}}
        fetched = await client.get_task(a2a.TaskQueryParams(id=task.id))
        assert fetched.status.state == a2a.TaskState.completed
        assert fetched.history[0].parts[0].root.data == {"q": 1}
    assert adapter.active_tasks == 0


async def test_message_stream_delivers_chunks_in_order_then_the_result(chatter_server) -> None:
    url, _ = chatter_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=True)
        events = [event async for event in client.send_message(user_message({"chunks": 5}))]
    updates = [update for _task, update in events if update is not None]
    texts = [
        u.artifact.parts[0].root.text
        for u in updates
        if isinstance(u, a2a.TaskArtifactUpdateEvent) and u.artifact.name == "stream"
    ]
    assert texts == [f"part {i}" for i in range(5)]
    results = [
        u.artifact.parts[0].root.data
        for u in updates
        if isinstance(u, a2a.TaskArtifactUpdateEvent) and u.artifact.name == "result"
    ]
    assert results == [{"chunks": 5}]
    final = updates[-1]
    assert isinstance(final, a2a.TaskStatusUpdateEvent)
    assert final.final
    assert final.status.state == a2a.TaskState.completed


async def test_tasks_cancel_cancels_a_running_task(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=False)
        message = user_message({"sleep": 30})
        running = asyncio.create_task(anext(client.send_message(message)))
        while adapter.active_tasks == 0:
            await asyncio.sleep(0.01)
        task_id = next(iter(adapter._tasks.active))
        cancelled = await client.cancel_task(a2a.TaskIdParams(id=task_id))
        assert cancelled.status.state == a2a.TaskState.canceled
        task, _ = await running
        assert task.status.state == a2a.TaskState.canceled
        with pytest.raises(A2AClientJSONRPCError) as info:
            await client.cancel_task(a2a.TaskIdParams(id=task_id))
        assert info.value.error.code == -32002  # finished tasks cannot be cancelled
    assert adapter.active_tasks == 0


async def test_unknown_task_is_task_not_found(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=False)
        with pytest.raises(A2AClientJSONRPCError) as info:
            await client.get_task(a2a.TaskQueryParams(id="missing"))
    assert info.value.error.code == -32001


async def test_failed_node_gives_a_failed_task(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=False)
        task, _ = await anext(client.send_message(user_message({"fail": True})))
    assert task.status.state == a2a.TaskState.failed
    assert "asked to fail" in task.status.message.parts[0].root.text


async def test_non_blocking_send_can_be_polled(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(timeout=10) as http:
        client = await connect(url, http, streaming=False)
        config = a2a.MessageSendConfiguration(blocking=False)
        task, _ = await anext(
            client.send_message(user_message({"sleep": 0.2}), configuration=config)
        )
        assert task.status.state in (a2a.TaskState.submitted, a2a.TaskState.working)
        for _ in range(100):
            task = await client.get_task(a2a.TaskQueryParams(id=task.id))
            if task.status.state == a2a.TaskState.completed:
                break
            await asyncio.sleep(0.05)
    assert task.status.state == a2a.TaskState.completed
    assert task.artifacts[0].parts[0].root.data == {"echo": {"sleep": 0.2}}
