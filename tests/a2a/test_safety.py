"""A server that is safe to expose: authentication on every route, a body limit,
protocol errors (never a 500) for malformed input, no task left behind by a
client that disconnects, and tenants that cannot see each other's tasks."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from penguiflow_a2a import create_a2a_app
from penguiflow_a2a.auth import Principal, bearer_token_auth
from penguiflow_a2a.serve import DEFAULT_HOST, serve

from .conftest import CALLS, adapter_for, chatter_flow, echo_flow, served

ALICE = {"Authorization": "Bearer token-alice"}
BOB = {"Authorization": "Bearer token-bob"}
AUTH = bearer_token_auth(
    {
        "token-alice": Principal("alice", tenant="acme"),
        "token-bob": Principal("bob", tenant="globex"),
    }
)
JSONRPC_CODES = {-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32004, -32005}


def rpc(method: str, params: Any, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def rpc_reply(reply: httpx.Response) -> Any:
    """The JSON-RPC response: the body, or a stream's first event (streaming methods
    answer their errors as the stream's only event)."""
    if reply.headers["content-type"].startswith("text/event-stream"):
        first = next(line for line in reply.text.splitlines() if line.startswith("data: "))
        return json.loads(first[6:])
    return reply.json()


def send_params(data: dict[str, Any], **message: Any) -> dict[str, Any]:
    return {
        "message": {
            "role": "user",
            "messageId": "m-1",
            "parts": [{"kind": "data", "data": data}],
            **message,
        }
    }


def test_the_server_binds_loopback_by_default() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


async def test_every_route_refuses_a_caller_without_credentials() -> None:
    adapter = adapter_for(echo_flow())
    CALLS.clear()
    async with (
        served(create_a2a_app(adapter, auth=AUTH)) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as client,
    ):
        replies = [
            await client.get("/agent"),
            await client.get("/.well-known/agent-card.json"),
            await client.get("/docs"),
            await client.get("/openapi.json"),
            await client.get("/no/such/route"),
            await client.post("/message/send", json={"payload": 1}),
            await client.post("/message/stream", json={"payload": 1}),
            await client.post("/tasks/cancel", json={"taskId": "x"}),
            await client.post("/", json=rpc("message/send", send_params({"a": 1}))),
            await client.post(
                "/message/send", json={"payload": 1}, headers={"Authorization": "Bearer bad"}
            ),
            await client.post(
                "/message/send", json={"payload": 1}, headers={"Authorization": "Basic x"}
            ),
        ]
        assert [r.status_code for r in replies] == [401] * len(replies)
        assert replies[0].headers["www-authenticate"] == "Bearer"
        assert replies[0].json() == {"detail": "authentication required"}
        accepted = await client.post("/message/send", json={"payload": 1}, headers=ALICE)
        assert accepted.json()["output"] == {"echo": 1}
    assert CALLS == [1]  # only the authenticated request reached the flow
    assert adapter.active_tasks == 0


async def test_a_failing_auth_hook_refuses_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(_headers: Any) -> Principal | None:
        raise RuntimeError("identity provider down")

    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter, auth=broken)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        reply = await client.post("/message/send", json={"payload": 1})
    assert reply.status_code == 401
    assert "authentication hook" in caplog.text
    assert "identity provider down" in caplog.text


async def test_bodies_over_the_limit_are_413_before_parsing() -> None:
    adapter = adapter_for(echo_flow())
    CALLS.clear()
    async with (
        served(create_a2a_app(adapter, max_body_bytes=1024)) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as client,
    ):
        declared = await client.post("/message/send", json={"payload": "x" * 4000})

        async def chunks() -> Any:
            for _ in range(8):
                yield b"x" * 512  # no Content-Length: counted as it arrives

        streamed = await client.post("/", content=chunks())
        small = await client.post("/message/send", json={"payload": "ok"})
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body over 1024 bytes"}
    assert streamed.status_code == 413
    assert small.json()["output"] == {"echo": "ok"}
    assert CALLS == ["ok"]


async def test_the_guard_refuses_a_malformed_content_length() -> None:
    from penguiflow_a2a.guard import RequestGuard

    sent: list[dict[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = RequestGuard(app, max_body_bytes=10)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", b"abc")],
    }
    await guard(scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {"detail": "invalid Content-Length header"}
    assert reached == []
    with pytest.raises(ValueError, match="max_body_bytes must be > 0"):
        RequestGuard(app, max_body_bytes=0)


def _bad_requests(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """`count` requests that are each wrong by construction, with the route they go to."""
    rng = random.Random(seed)
    junk_values: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, [1, 2], {"a": None}]

    def junk() -> Any:
        return rng.choice(junk_values)

    def garbage_bytes() -> bytes:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))

    makers = [
        lambda: ("/", garbage_bytes()),
        lambda: ("/", b"{" * rng.randrange(1, 5000)),
        lambda: ("/", b"[" * 10000 + b"]" * 10000),
        lambda: ("/", json.dumps(junk()).encode()),
        lambda: ("/", json.dumps([rpc("tasks/get", {"id": "x"})]).encode()),
        lambda: ("/", json.dumps({"jsonrpc": "1.0", "id": 1, "method": "tasks/get"}).encode()),
        lambda: ("/", json.dumps({"jsonrpc": "2.0", "id": junk(), "method": junk()}).encode()),
        lambda: ("/", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x", "extra": 1}).encode()),
        lambda: (
            "/",
            json.dumps(rpc(rng.choice(["nope", "message/sent", "", "tasks"]), {})).encode(),
        ),
        lambda: ("/", json.dumps(rpc("message/send", junk())).encode()),
        lambda: ("/", json.dumps(rpc("message/stream", {"message": junk()})).encode()),
        lambda: (
            "/",
            json.dumps(
                rpc(
                    "message/send",
                    {
                        "message": {
                            "role": rng.choice(["user", "robot", None]),
                            "messageId": junk(),
                            "parts": rng.choice([[], [junk()], [{"kind": "video"}], None]),
                        }
                    },
                )
            ).encode(),
        ),
        lambda: (
            "/",
            json.dumps(rpc("message/send", send_params({"a": 1}, taskId="unknown"))).encode(),
        ),
        lambda: (
            "/",
            json.dumps(
                rpc(
                    "message/send",
                    {
                        "message": {
                            "role": "user",
                            "messageId": "m",
                            "parts": [{"kind": "file", "file": {"uri": "x"}}],
                        }
                    },
                )
            ).encode(),
        ),
        lambda: (
            "/",
            json.dumps(
                rpc(
                    "message/send",
                    send_params({"a": 1}, metadata={"headers": junk() or 5, "traceId": 5}),
                )
            ).encode(),
        ),
        lambda: (
            "/",
            json.dumps(rpc("tasks/get", rng.choice([{}, {"id": junk()}, junk()]))).encode(),
        ),
        lambda: (
            "/",
            json.dumps(rpc("tasks/get", {"id": "missing", "historyLength": -1})).encode(),
        ),
        lambda: ("/", json.dumps(rpc("tasks/cancel", {"id": f"missing-{rng.random()}"})).encode()),
        lambda: ("/", json.dumps(rpc("tasks/resubscribe", {"id": "x"})).encode()),
        lambda: ("/message/send", garbage_bytes()),
        lambda: ("/message/send", json.dumps(junk()).encode()),
        lambda: (
            "/message/send",
            json.dumps({"payload": 1, "headers": rng.choice([5, "x", []])}).encode(),
        ),
        lambda: ("/message/send", json.dumps({"payload": 1, "deadlineSeconds": "soon"}).encode()),
        lambda: ("/message/stream", json.dumps({"headers": {}}).encode()),
        lambda: ("/tasks/cancel", json.dumps({"taskId": junk()}).encode()),
        lambda: ("/tasks/cancel", json.dumps({"taskId": f"missing-{rng.random()}"}).encode()),
    ]
    return [rng.choice(makers)() for _ in range(count)]


async def test_two_thousand_malformed_requests_get_protocol_errors_never_a_500() -> None:
    adapter = adapter_for(echo_flow())
    CALLS.clear()
    requests = _bad_requests(2000)
    statuses: Counter[int] = Counter()
    codes: Counter[int] = Counter()
    async with served(create_a2a_app(adapter)) as url:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
            gate = asyncio.Semaphore(16)

            async def one(path: str, body: bytes) -> None:
                async with gate:
                    reply = await client.post(
                        path, content=body, headers={"content-type": "application/json"}
                    )
                statuses[reply.status_code] += 1
                assert reply.status_code < 500, (path, body[:200], reply.text[:300])
                if path == "/":
                    assert reply.status_code == 200
                    error = rpc_reply(reply)["error"]
                    assert error["code"] in JSONRPC_CODES, (body[:200], error)
                    codes[error["code"]] += 1
                else:
                    assert reply.status_code in (400, 404, 422), (path, body[:200], reply.text)

            await asyncio.gather(*(one(path, body) for path, body in requests))
            health = await client.post("/message/send", json={"payload": "still here"})
    assert sum(statuses.values()) == 2000
    assert {-32700, -32600, -32601, -32602, -32001, -32005} <= set(codes)
    assert health.json()["output"] == {"echo": "still here"}
    assert CALLS == ["still here"]  # no malformed request ever reached the flow
    assert adapter.active_tasks == 0


@pytest.mark.parametrize("route", ["spec", "jsonrpc"])
async def test_a_client_that_disconnects_mid_stream_leaves_no_task_running(route: str) -> None:
    # The spec'd route cancels at once; the JSON-RPC route after its grace period
    # for `tasks/resubscribe`, when nobody attached again.
    adapter = adapter_for(chatter_flow(), resubscribe_grace_s=0.3)
    flow = adapter.flow
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        payload = {"chunks": 200, "gap": 0.02}
        if route == "spec":
            request = client.stream("POST", "/message/stream", json={"payload": payload})
        else:
            request = client.stream("POST", "/", json=rpc("message/stream", send_params(payload)))
        async with request as reply:
            seen = 0
            async for line in reply.aiter_lines():
                if "part " in line:
                    seen += 1
                if seen == 3:
                    break  # leaving the block closes the connection mid-stream
        left = time.monotonic()
        for _ in range(200):
            if adapter.active_tasks == 0 and not flow.traces.active():
                break
            await asyncio.sleep(0.01)
        assert adapter.active_tasks == 0
        assert not flow.traces.active()  # the trace was cancelled, not left running
        if route == "jsonrpc":
            assert time.monotonic() - left >= 0.25  # not before the grace period


async def test_a_tenant_cannot_see_or_cancel_another_tenants_task() -> None:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter, auth=AUTH)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        running = asyncio.create_task(
            client.post(
                "/message/send",
                json={"payload": {"sleep": 0.5}, "taskId": "secret"},
                headers=ALICE,
            )
        )
        while adapter.active_tasks == 0:
            await asyncio.sleep(0.01)

        async def get(task_id: str, headers: dict[str, str]) -> Any:
            reply = await client.post("/", json=rpc("tasks/get", {"id": task_id}), headers=headers)
            return reply.json()

        async def cancel(task_id: str, headers: dict[str, str]) -> httpx.Response:
            return await client.post("/tasks/cancel", json={"taskId": task_id}, headers=headers)

        assert await get("secret", BOB) == await get("missing", BOB)
        assert (await get("secret", BOB))["error"]["code"] == -32001
        theirs, missing = await cancel("secret", BOB), await cancel("missing", BOB)
        assert (theirs.status_code, missing.status_code) == (404, 404)
        assert theirs.json() == {"detail": "task 'secret' not found"}
        assert missing.json() == {"detail": "task 'missing' not found"}
        assert (await get("secret", ALICE))["result"]["status"]["state"] == "working"
        assert (await running).json()["output"] == {"echo": {"sleep": 0.5}}

        # The authenticated tenant is forced into the message headers.
        spoof = await client.post(
            "/message/send",
            json={"payload": {"whoami": True}, "headers": {"tenant": "globex"}},
            headers=ALICE,
        )
        assert spoof.json()["output"] == {"tenant": "acme"}
