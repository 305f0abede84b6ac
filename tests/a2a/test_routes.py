"""The spec's routes (`/agent`, `/message/send`, `/message/stream`, `/tasks/cancel`)
served by uvicorn, including the defects of distribution.md §9 that we fixed."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from penguiflow_a2a import A2AMessagePayload, A2ATaskCancelRequest, create_a2a_app
from penguiflow_a2a.server import A2ARequestError

from .conftest import CARD_FIELDS, adapter_for, chatter_flow, echo_flow, served


async def test_agent_route_returns_the_card_payload(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url) as client:
        card = (await client.get("/agent")).json()
    assert list(card) == CARD_FIELDS
    assert card["skills"][0] == {
        "name": "echo",
        "description": "echo the payload",
        "mode": "both",
        "inputs": {},
        "outputs": {},
    }


async def test_send_returns_the_succeeded_shape(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.post(
            "/message/send",
            json={"payload": {"q": 1}, "taskId": "t1", "contextId": "c1", "traceId": "tr1"},
        )
    assert reply.status_code == 200
    body = reply.json()
    assert list(body)[:5] == ["status", "taskId", "contextId", "traceId", "output"]
    assert body["status"] == "succeeded"
    assert (body["taskId"], body["contextId"], body["traceId"]) == ("t1", "c1", "tr1")
    assert body["output"] == {"echo": {"q": 1}}
    assert adapter.active_tasks == 0


async def test_a_failing_node_gives_the_failed_shape_instead_of_hanging(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        body = (await client.post("/message/send", json={"payload": {"fail": True}})).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "NODE_EXCEPTION"
    assert body["error"]["node_name"] == "echo"
    assert body["error"]["trace_id"] == body["traceId"]


async def test_a_node_returning_nothing_answers_with_no_output(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        body = (await client.post("/message/send", json={"payload": {"nothing": True}})).json()
    assert body["status"] == "succeeded"
    assert body["output"] is None


async def test_unary_timeout_gives_504_and_cancels_the_trace() -> None:
    adapter = adapter_for(echo_flow(), result_timeout_s=0.2)
    async with served(create_a2a_app(adapter)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            started = time.monotonic()
            reply = await client.post("/message/send", json={"payload": {"sleep": 30}})
            elapsed = time.monotonic() - started
        assert reply.status_code == 504
        assert "within the time limit" in reply.json()["detail"]
        assert elapsed < 5
        assert adapter.active_tasks == 0
        assert not adapter.flow.traces.active()  # the slow invocation was cancelled


async def test_a_busy_task_id_is_409_and_a_trace_conflict_does_not_leave_it_stuck(
    echo_server,
) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        slow = asyncio.create_task(
            client.post(
                "/message/send",
                json={"payload": {"sleep": 0.5}, "taskId": "busy", "traceId": "trace-a"},
            )
        )
        await asyncio.sleep(0.1)
        same_task = await client.post("/message/send", json={"payload": 1, "taskId": "busy"})
        assert same_task.status_code == 409
        assert same_task.json() == {"detail": "task 'busy' already active"}
        same_trace = await client.post(
            "/message/send", json={"payload": 1, "taskId": "other", "traceId": "trace-a"}
        )
        assert same_trace.status_code == 409
        assert same_trace.json() == {"detail": "trace 'trace-a' already active"}
        assert (await slow).json()["status"] == "succeeded"
        # The conflicting request registered nothing: its task id is usable.
        reuse = await client.post("/message/send", json={"payload": 2, "taskId": "other"})
        assert reuse.json()["output"] == {"echo": 2}


async def test_cancel_unknown_task_is_404(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.post("/tasks/cancel", json={"taskId": "nope"})
    assert reply.status_code == 404
    assert reply.json() == {"detail": "task 'nope' not found"}


async def test_cancel_wakes_the_waiting_request(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        waiting = asyncio.create_task(
            client.post(
                "/message/send",
                json={"payload": {"sleep": 30}, "taskId": "long", "traceId": "tr-long"},
            )
        )
        while adapter.active_tasks == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        cancel = (await client.post("/tasks/cancel", json={"taskId": "long"})).json()
        assert cancel == {
            "taskId": "long",
            "cancelled": True,
            "traceId": "tr-long",
            "contextId": "tr-long",
        }
        assert (await waiting).json() == {
            "status": "cancelled",
            "taskId": "long",
            "contextId": "tr-long",
            "traceId": "tr-long",
        }
        again = (await client.post("/tasks/cancel", json={"taskId": "long"})).json()
        assert again["cancelled"] is False
    assert adapter.active_tasks == 0


async def test_stream_frames_follow_the_spec_example(chatter_server) -> None:
    url, adapter = chatter_server
    async with (
        httpx.AsyncClient(base_url=url, timeout=5) as client,
        client.stream(
            "POST",
            "/message/stream",
            json={"payload": {"chunks": 2}, "taskId": "s1", "contextId": "c1"},
        ) as reply,
    ):
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["cache-control"] == "no-cache"
        assert reply.headers["x-a2a-task-id"] == "s1"
        assert reply.headers["x-a2a-context-id"] == "c1"
        text = (await reply.aread()).decode()
    assert text == (
        'event: status\ndata: {"status": "accepted", "taskId": "s1", "contextId": "c1"}\n\n'
        'event: chunk\nid: 0\ndata: part 0\ndata: {"taskId": "s1", "contextId": "c1"}\n\n'
        'event: done\nid: 1\ndata: part 1\ndata: {"taskId": "s1", "contextId": "c1"}\n\n'
        'event: artifact\ndata: {"taskId": "s1", "contextId": "c1", "output": {"chunks": 2}}\n\n'
        'event: done\ndata: {"taskId": "s1", "contextId": "c1"}\n\n'
    )
    assert adapter.active_tasks == 0


async def test_multi_line_chunk_text_keeps_the_framing() -> None:
    from penguiflow.types import StreamChunk
    from penguiflow_a2a.sse import chunk_frame

    chunk = StreamChunk(stream_id="s", seq=3, text="a\nb", meta={"k": "ü"})
    assert chunk_frame(chunk, task_id="t", context_id="c").decode() == (
        "event: chunk\nid: 3\ndata: a\ndata: b\n"
        'data: {"k": "ü", "taskId": "t", "contextId": "c"}\n\n'
    )


async def test_stop_answers_waiting_requests_with_503() -> None:
    adapter = adapter_for(echo_flow())
    await adapter.start()
    waiting = asyncio.create_task(adapter.handle_send(A2AMessagePayload(payload={"sleep": 30})))
    while adapter.active_tasks == 0:
        await asyncio.sleep(0.01)
    await adapter.stop()
    with pytest.raises(A2ARequestError) as info:
        await waiting
    assert (info.value.status_code, str(info.value)) == (503, "flow is shutting down")


async def test_requests_before_start_are_503() -> None:
    adapter = adapter_for(echo_flow())
    with pytest.raises(A2ARequestError) as info:
        await adapter.handle_send(A2AMessagePayload(payload=1))
    assert (info.value.status_code, info.value.detail) == (503, "flow is not running")
    with pytest.raises(A2ARequestError):
        await adapter.cancel(A2ATaskCancelRequest(taskId="x"))


async def test_headers_without_tenant_are_422_with_a_string_detail() -> None:
    adapter = adapter_for(echo_flow())
    adapter._default_headers = {}
    async with served(create_a2a_app(adapter)) as url, httpx.AsyncClient(base_url=url) as client:
        reply = await client.post("/message/send", json={"payload": 1})
        malformed = await client.post("/message/send", content=b"{nope")
    assert reply.status_code == 422
    assert isinstance(reply.json()["detail"], str)
    assert "tenant" in reply.json()["detail"]
    assert malformed.status_code == 422
    assert isinstance(malformed.json()["detail"], list)


async def test_expired_absolute_deadline_answers_deadline_exceeded(echo_server) -> None:
    url, _ = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        body = (
            await client.post("/message/send", json={"payload": 1, "deadlineSeconds": 5})
        ).json()
    assert body["status"] == "succeeded"
    assert body["output"] == {"text": "Deadline exceeded", "citations": []}


async def test_docs_can_be_left_out() -> None:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter, include_docs=False)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
    adapter = adapter_for(chatter_flow())
    async with served(create_a2a_app(adapter)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "echo-agent"


async def test_a_stream_never_iterated_does_not_leave_its_task_registered() -> None:
    import gc

    adapter = adapter_for(chatter_flow())
    await adapter.start()
    try:
        frames, _task_id, _ = await adapter.stream(A2AMessagePayload(payload={"chunks": 1}))
        assert adapter.active_tasks == 1
        del frames  # the client went away before the response started
        gc.collect()
        assert adapter.active_tasks == 0
    finally:
        await adapter.stop()


async def test_a_unary_client_that_disconnects_cancels_its_trace(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        call = asyncio.create_task(client.post("/message/send", json={"payload": {"sleep": 30}}))
        while adapter.active_tasks == 0:
            await asyncio.sleep(0.01)
        call.cancel()  # closes the connection
        await asyncio.gather(call, return_exceptions=True)
        for _ in range(200):
            if adapter.active_tasks == 0 and not adapter.flow.traces.active():
                break
            await asyncio.sleep(0.01)
    assert adapter.active_tasks == 0
    assert not adapter.flow.traces.active()


async def test_idle_streams_get_keep_alive_comments() -> None:
    adapter = adapter_for(chatter_flow(), stream_heartbeat_s=0.05)
    async with served(create_a2a_app(adapter)) as url, httpx.AsyncClient(base_url=url) as client:
        reply = await client.post("/message/stream", json={"payload": {"chunks": 2, "gap": 0.3}})
    text = reply.text
    assert ": keep-alive\n\n" in text
    assert text.index("part 0") < text.index(": keep-alive") < text.index("part 1")
    ids = {"taskId": reply.headers["x-a2a-task-id"], "contextId": reply.headers["x-a2a-context-id"]}
    assert text.endswith(f"event: done\ndata: {json.dumps(ids)}\n\n")


async def test_a_trace_id_can_be_used_again_after_its_task_was_cancelled(echo_server) -> None:
    url, adapter = echo_server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        body = {"payload": {"sleep": 30}, "taskId": "first", "traceId": "again"}
        waiting = asyncio.create_task(client.post("/message/send", json=body))
        while adapter.active_tasks == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await client.post("/tasks/cancel", json={"taskId": "first"})
        assert (await waiting).json()["status"] == "cancelled"
        second = await client.post(
            "/message/send", json={"payload": 2, "taskId": "second", "traceId": "again"}
        )
    assert second.json()["status"] == "succeeded"
    assert second.json()["output"] == {"echo": 2}
    assert not adapter.flow.traces.active()
