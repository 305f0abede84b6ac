"""Bad input found by probing the server from outside: deep nesting, NaN and
Infinity, notifications, and oversized bodies on the JSON-RPC route. Each gets a
protocol error (never a 500) in the route's own terms."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from penguiflow_a2a import create_a2a_app
from penguiflow_a2a.guard import MAX_JSON_DEPTH, json_screen

from .conftest import CALLS, adapter_for, echo_flow, served, served_in_process

TENANT = {"tenant": "acme"}


def send_params(data: Any) -> dict[str, Any]:
    return {
        "message": {
            "role": "user",
            "messageId": "m-1",
            "parts": [{"kind": "data", "data": data}],
        }
    }


def nested(depth: int) -> str:
    """JSON text of `depth` nested arrays (built as text: Python's encoder would
    recurse as deep)."""
    return "[" * depth + "1" + "]" * depth


def send_body(method: str, data_json: str, request_id: int = 7) -> str:
    parts = f'[{{"kind": "data", "data": {data_json}}}]'
    message = f'{{"role": "user", "messageId": "m-1", "parts": {parts}}}'
    return (
        f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "{method}", '
        f'"params": {{"message": {message}}}}}'
    )


@pytest.fixture
async def client() -> Any:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter, max_body_bytes=64 * 1024)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield http


def test_the_screen_finds_depth_and_constants_outside_strings() -> None:
    assert json_screen(nested(MAX_JSON_DEPTH).encode()) is None
    assert "nested deeper" in (json_screen(nested(MAX_JSON_DEPTH + 1).encode()) or "")
    assert json_screen(b'{"a": NaN}') == "NaN is not a JSON value"
    assert json_screen(b'{"a": -Infinity}') == "-Infinity is not a JSON value"
    # Inside strings, brackets and the words are data.
    assert json_screen(json.dumps({"t": "[" * 500 + "NaN Infinity"}).encode()) is None
    assert json_screen(b'{"t": "a \\" [[[ NaN"}') is None


@pytest.mark.parametrize("depth", [255, 500, 989])
async def test_deep_nesting_is_a_protocol_error_on_every_route(client: Any, depth: int) -> None:
    CALLS.clear()
    rpc = await client.post("/", content=send_body("message/send", nested(depth)))
    assert rpc.status_code == 200  # as every JSON-RPC error of this route
    assert rpc.json()["error"]["code"] == -32700
    assert "nested deeper than 64" in rpc.json()["error"]["message"]

    streamed = await client.post("/", content=send_body("message/stream", nested(depth)))
    assert streamed.status_code == 200
    assert streamed.json()["error"]["code"] == -32700

    spec = await client.post("/message/send", content=f'{{"payload": {nested(depth)}}}')
    assert spec.status_code == 400
    assert "nested deeper" in spec.json()["detail"]
    assert CALLS == []  # nothing reached the flow


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_refused_not_echoed(client: Any, constant: str) -> None:
    refused = await client.post("/", content=send_body("message/send", f'{{"x": {constant}}}'))
    assert refused.status_code == 200
    assert refused.json()["error"]["code"] == -32700
    assert constant not in refused.text.replace(f"{constant} is not", "")

    spec = await client.post("/message/send", content=f'{{"payload": {{"x": {constant}}}}}')
    assert spec.status_code == 400


async def test_a_notification_gets_no_reply(client: Any) -> None:
    CALLS.clear()
    note = {"jsonrpc": "2.0", "method": "message/send", "params": send_params({"n": 1})}
    reply = await client.post("/", json=note)
    assert reply.status_code == 204
    assert reply.content == b""
    assert CALLS == [{"n": 1}]  # carried out all the same

    # One that fails is not silent: its error comes back, with "id": null.
    unknown = await client.post("/", json={"jsonrpc": "2.0", "method": "no/such"})
    assert unknown.status_code == 200
    assert unknown.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32601, "message": "Method not found"},
    }
    invalid = await client.post("/", json={"jsonrpc": "2.0", "method": "message/stream"})
    assert invalid.json()["error"]["code"] == -32602

    # "id": null is a request (discouraged), not a notification: it is answered.
    answered = await client.post("/", json=dict(note, id=None))
    assert answered.status_code == 200
    assert answered.json()["id"] is None


async def test_a_body_over_the_limit_on_the_jsonrpc_route_is_a_jsonrpc_413() -> None:
    adapter = adapter_for(echo_flow())
    async with (
        served(create_a2a_app(adapter, max_body_bytes=1024)) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as http,
    ):
        body = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "message/send",
            "params": send_params("x" * 4000),
        }
        reply = await http.post("/", json=body)
        spec = await http.post("/message/send", json={"payload": "x" * 4000})
    assert reply.status_code == 413
    assert reply.json()["jsonrpc"] == "2.0"
    assert reply.json()["error"] == {"code": -32600, "message": "request body over 1024 bytes"}
    assert spec.status_code == 413
    assert spec.json() == {"detail": "request body over 1024 bytes"}


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("tasks/pushNotificationConfig/set", -32003),
        ("tasks/pushNotificationConfig/get", -32003),
        ("tasks/pushNotificationConfig/list", -32003),
        ("tasks/pushNotificationConfig/delete", -32003),
        ("agent/getAuthenticatedExtendedCard", -32007),
    ],
)
async def test_methods_not_offered_answer_their_own_a2a_codes(
    client: Any, method: str, code: int
) -> None:
    reply = await client.post("/", json={"jsonrpc": "2.0", "id": 9, "method": method})
    assert reply.status_code == 200
    assert reply.json()["id"] == 9
    assert reply.json()["error"]["code"] == code


async def test_a_plain_a2a_client_works_without_penguiflow_headers() -> None:
    from penguiflow_a2a import A2AServerAdapter
    from penguiflow_a2a.auth import Principal, bearer_token_auth
    from penguiflow_a2a.server import DEFAULT_TENANT

    from .conftest import CARD

    adapter = A2AServerAdapter(echo_flow(), agent_card=CARD, agent_url="http://127.0.0.1")
    plain = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": send_params({"whoami": 1}),
    }
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        reply = await http.post("/", json=plain)
        # The penguiflow routes keep the specified rule: no tenant, 422.
        spec = await http.post("/message/send", json={"payload": {"whoami": 1}})
    task = reply.json()["result"]
    assert task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"][0]["data"] == {"tenant": DEFAULT_TENANT}
    assert spec.status_code == 422

    # An authenticated caller's own tenant wins over the default.
    auth = bearer_token_auth({"t-1": Principal("ann", tenant="acme")})
    adapter = A2AServerAdapter(echo_flow(), agent_card=CARD, agent_url="http://127.0.0.1")
    async with (
        served(create_a2a_app(adapter, auth=auth)) as url,
        httpx.AsyncClient(
            base_url=url, timeout=10, headers={"Authorization": "Bearer t-1"}
        ) as http,
    ):
        task = (await http.post("/", json=plain)).json()["result"]
    assert task["artifacts"][0]["parts"][0]["data"] == {"tenant": "acme"}


async def test_a_task_id_used_again_is_counted_once_in_the_history() -> None:
    adapter = adapter_for(echo_flow())
    body = {"payload": {"q": "x" * 1000}, "taskId": "again", "headers": TENANT}
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        await http.post("/message/send", json=body)
        once = adapter.finished_bytes
        await http.post("/message/send", json=body)
    assert adapter.finished_tasks == 1
    assert adapter.finished_bytes == once > 0


async def test_finished_tasks_are_bounded_by_bytes_and_keep_what_tasks_get_answers() -> None:
    from penguiflow_a2a import A2AServerAdapter

    from .conftest import CARD

    adapter = A2AServerAdapter(
        echo_flow(),
        agent_card=CARD,
        agent_url="http://127.0.0.1",
        max_finished_bytes=1_000_000,
    )
    big = "x" * 100_000  # each task keeps its request and its echoed output: ~200 KB
    async with (
        served(create_a2a_app(adapter, max_body_bytes=512 * 1024)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        ids = []
        for n in range(20):
            body = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "message/send",
                "params": send_params({"blob": big}),
            }
            ids.append((await http.post("/", json=body)).json()["result"]["id"])
        latest = await http.post(
            "/", json={"jsonrpc": "2.0", "id": 99, "method": "tasks/get", "params": {"id": ids[-1]}}
        )
        oldest = await http.post(
            "/", json={"jsonrpc": "2.0", "id": 98, "method": "tasks/get", "params": {"id": ids[0]}}
        )
    assert adapter.finished_bytes <= 1_000_000
    assert 3 <= adapter.finished_tasks < 20  # the oldest went first
    task = latest.json()["result"]
    assert task["status"]["state"] == "completed"
    assert task["history"][0]["parts"][0]["data"] == {"blob": big}  # what tasks/get answers
    assert task["artifacts"][0]["parts"][0]["data"] == {"echo": {"blob": big}}
    assert oldest.json()["error"]["code"] == -32001  # evicted: task not found
    assert adapter.active_tasks == 0


def test_a_finished_record_drops_the_flow_message_it_was_sent_as() -> None:
    from penguiflow import Headers, Message
    from penguiflow_a2a.tasks import Outcome, TaskRecord, TaskTable

    table = TaskTable(max_finished=10, max_finished_bytes=10_000)
    message = Message(payload={"big": "y" * 5000}, headers=Headers(tenant="t"), meta={"k": "v"})
    record = TaskRecord("t1", "c1", "tr1", None, message, request={"parts": ["req"]})
    table.active[record.task_id] = record
    record.finish("completed", Outcome("result", output={"ok": 1}))
    table.release(record)
    assert record.message.payload is None
    assert record.message.meta == {}
    assert table.lookup("t1", None) is record
    assert table.finished_bytes == record.kept_bytes > 0
    with pytest.raises(ValueError, match="max_finished_bytes must be >= 0"):
        TaskTable(max_finished_bytes=-1)


def _hostile_bodies(count: int, seed: int = 13) -> list[tuple[str, bytes]]:
    """Malformed requests (those of the safety suite) mixed with deep nesting, huge
    numbers, NaN/Infinity, oversized bodies and notifications."""
    from .test_safety import _bad_requests

    rng = random.Random(seed)
    extra = [
        lambda: send_body("message/send", nested(rng.randint(65, 3000))),
        lambda: send_body("message/send", f'{{"n": 1e{rng.randint(309, 99999)}}}'),
        lambda: send_body("message/send", f'{{"n": {"9" * rng.randint(5000, 20000)}}}'),
        lambda: send_body(
            "message/send", f'{{"n": {rng.choice(["NaN", "Infinity", "-Infinity"])}}}'
        ),
        lambda: send_body("message/send", json.dumps({"blob": "z" * 70_000})),
        lambda: '{"jsonrpc": "2.0", "method": "tasks/get", "params": {"id": "nope"}}',
    ]
    spec_extra = [
        lambda: f'{{"payload": {nested(rng.randint(65, 3000))}}}',
        lambda: f'{{"payload": 1e{rng.randint(309, 99999)}}}',
        lambda: '{"payload": NaN}',
    ]
    bodies = _bad_requests(count // 2, seed=seed)
    while len(bodies) < count:
        if rng.random() < 0.8:
            bodies.append(("/", rng.choice(extra)().encode()))
        else:
            bodies.append(("/message/send", rng.choice(spec_extra)().encode()))
    rng.shuffle(bodies)
    return bodies


async def _fire(http: httpx.AsyncClient, bodies: list[tuple[str, bytes]]) -> Counter[int]:
    """Post every body (16 at a time); the statuses seen. No reply may be a 500, nor
    echo NaN or Infinity."""
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(16)

    async def one(path: str, body: bytes) -> None:
        async with gate:
            reply = await http.post(
                path, content=body, headers={"content-type": "application/json"}
            )
        statuses[reply.status_code] += 1
        assert reply.status_code < 500, (path, body[:120], reply.text[:200])
        assert "Infinity" not in reply.text.replace("Infinity is not", "")
        assert "NaN" not in reply.text.replace("NaN is not", "")

    await asyncio.gather(*(one(path, body) for path, body in bodies))
    return statuses


async def test_five_thousand_hostile_bodies_never_get_a_500() -> None:
    import resource

    adapter = adapter_for(echo_flow())
    CALLS.clear()
    bodies = _hostile_bodies(5000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with served(create_a2a_app(adapter, max_body_bytes=64 * 1024)) as url:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as http:
            statuses = await _fire(http, bodies)
            health = await http.post("/message/send", json={"payload": "still here"})
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\n5,000 hostile bodies: statuses {dict(sorted(statuses.items()))}, "
        f"peak RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB (server and client)"
    )
    assert sum(statuses.values()) == 5000
    assert health.json()["output"] == {"echo": "still here"}
    assert CALLS == ["still here"]  # nothing hostile reached the flow
    assert adapter.active_tasks == 0


def _rss_mib(pid: int) -> float:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_a_server_process_survives_five_thousand_hostile_bodies() -> None:
    bodies = _hostile_bodies(5000, seed=29)
    async with served_in_process("tests.a2a.apps:echo") as (url, process):
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            warm = await http.post("/message/send", json={"payload": 1, "headers": TENANT})
            assert warm.status_code == 200
            rss_before = _rss_mib(process.pid)
            statuses = await _fire(http, bodies)
            health = await http.post("/message/send", json={"payload": 2, "headers": TENANT})
            rss_after = _rss_mib(process.pid)
        assert process.poll() is None  # the same process, never restarted
    print(
        f"\n5,000 hostile bodies to server pid {process.pid}: statuses "
        f"{dict(sorted(statuses.items()))}, server RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    )
    assert sum(statuses.values()) == 5000
    assert health.json()["output"] == {"done": 2}
