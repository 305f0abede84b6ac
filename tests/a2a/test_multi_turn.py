"""Multi-turn tasks: a planner that pauses puts its task in `input-required`; a
follow-up message carrying the `taskId` resumes the run; `contextId` groups the
tasks of one conversation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, create
from penguiflow.planner import ReactPlanner
from penguiflow.testkit import ScriptedLLMClient
from penguiflow_a2a import A2AServerAdapter, create_a2a_app, planner_node

from .conftest import CARD, served

RAN: list[str] = []


class Order(BaseModel):
    item: str


class Shipped(BaseModel):
    shipped: str


async def ship(args: Order, ctx: Any) -> Shipped:
    RAN.append(args.item)
    await ctx.pause("approval_required", {"prompt": f"Ship {args.item}?", "item": args.item})
    raise AssertionError("pause() never returns")


def act(thought: str, **fields: Any) -> str:
    return json.dumps({"thought": thought, **fields})


def planner(script: list[str]) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("ship", Order, Shipped)
    catalog = build_catalog([Node(ship, name="ship")], registry)
    return ReactPlanner(llm_client=ScriptedLLMClient(script), catalog=catalog)


def approval_script(turns: int = 1) -> list[str]:
    script = []
    for _ in range(turns):
        script += [
            act("ask first", next_node="ship", args={"item": "boots"}),
            act("the user answered", next_node=None, args={"answer": "boots are on their way"}),
        ]
    return script


def rpc(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def say(text: str, **fields: Any) -> dict[str, Any]:
    message = {"role": "user", "messageId": f"m-{text}", "parts": [{"kind": "text", "text": text}]}
    return {"message": {**message, **fields}}


@pytest.fixture
async def agent() -> AsyncIterator[tuple[httpx.AsyncClient, A2AServerAdapter]]:
    RAN.clear()
    flow = create(planner_node(planner(approval_script(turns=2))).to())
    adapter = A2AServerAdapter(flow, agent_card=CARD, agent_url="http://127.0.0.1")
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield client, adapter


async def send(client: httpx.AsyncClient, text: str, **fields: Any) -> dict[str, Any]:
    reply = await client.post("/", json=rpc("message/send", say(text, **fields)))
    body: dict[str, Any] = reply.json()
    return body


async def test_a_pause_asks_for_input_and_a_follow_up_resumes_the_run(agent) -> None:
    client, adapter = agent
    asked = (await send(client, "ship my boots"))["result"]
    assert asked["status"]["state"] == "input-required"
    question = asked["status"]["message"]
    assert question["role"] == "agent"
    assert question["parts"][0] == {"kind": "text", "text": "Ship boots?"}
    assert question["parts"][1]["data"] == {
        "reason": "approval_required",
        "payload": {"prompt": "Ship boots?", "item": "boots"},
    }
    assert "resume_token" not in json.dumps(asked)  # the token never leaves the server
    assert adapter.active_tasks == 0  # nothing runs while waiting

    task_id, context_id = asked["id"], asked["contextId"]
    done = (await send(client, "yes", taskId=task_id))["result"]
    assert (done["id"], done["contextId"]) == (task_id, context_id)
    assert done["status"]["state"] == "completed"
    assert done["artifacts"][0]["parts"][0]["data"] == {"answer": "boots are on their way"}
    assert [m["role"] for m in done["history"]] == ["user", "agent", "user"]
    assert [m["parts"][0]["text"] for m in done["history"]] == [
        "ship my boots",
        "Ship boots?",
        "yes",
    ]
    assert RAN == ["boots"]  # resuming did not run the paused tool again

    got = await client.post("/", json=rpc("tasks/get", {"id": task_id}))
    assert got.json()["result"]["status"]["state"] == "completed"


async def test_a_streamed_pause_ends_the_stream_with_input_required(agent) -> None:
    client, _ = agent
    async with client.stream("POST", "/", json=rpc("message/stream", say("ship"))) as reply:
        results = [
            json.loads(line[6:])["result"]
            async for line in reply.aiter_lines()
            if line.startswith("data: ")
        ]
    final = results[-1]
    assert final["kind"] == "status-update"
    assert final["final"] is True
    assert final["status"]["state"] == "input-required"
    assert final["status"]["message"]["parts"][0]["text"] == "Ship boots?"

    done = (await send(client, "yes", taskId=final["taskId"]))["result"]
    assert done["status"]["state"] == "completed"


async def test_follow_ups_that_cannot_continue_are_refused_with_their_code(agent) -> None:
    client, _ = agent
    asked = (await send(client, "ship"))["result"]
    wrong_context = await send(client, "yes", taskId=asked["id"], contextId="another")
    assert wrong_context["error"]["code"] == -32602
    assert "contextId" in wrong_context["error"]["message"]
    unknown = await send(client, "yes", taskId="no-such-task")
    assert unknown["error"]["code"] == -32001

    done = (await send(client, "yes", taskId=asked["id"]))["result"]
    assert done["status"]["state"] == "completed"
    again = await send(client, "and again", taskId=asked["id"])
    assert again["error"]["code"] == -32004
    assert "completed" in again["error"]["message"]


async def test_a_task_waiting_for_input_can_be_cancelled(agent) -> None:
    client, _ = agent
    asked = (await send(client, "ship"))["result"]
    cancelled = await client.post("/", json=rpc("tasks/cancel", {"id": asked["id"]}))
    assert cancelled.json()["result"]["status"]["state"] == "canceled"
    follow_up = await send(client, "yes", taskId=asked["id"])
    assert follow_up["error"]["code"] == -32004


async def test_a_context_groups_the_tasks_of_one_conversation(agent) -> None:
    client, _ = agent
    first = (await send(client, "ship", contextId="chat-1"))["result"]
    second = (await send(client, "ship", contextId="chat-1"))["result"]
    assert first["id"] != second["id"]
    assert first["contextId"] == second["contextId"] == "chat-1"
    follow_up = (await send(client, "yes", taskId=first["id"], contextId="chat-1"))["result"]
    assert follow_up["contextId"] == "chat-1"
    assert follow_up["status"]["state"] == "completed"


async def test_the_spec_route_answers_the_whole_pause_as_before(agent) -> None:
    client, _ = agent
    body = {"payload": "ship", "headers": {"tenant": "acme"}}
    reply = await client.post("/message/send", json=body)
    body = reply.json()
    assert body["status"] == "succeeded"
    assert body["output"]["reason"] == "approval_required"
    assert isinstance(body["output"]["resume_token"], str)
