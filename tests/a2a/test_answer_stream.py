"""A planner served over A2A streams its answer: `message/stream` clients get the
answer as artifact updates while it is written, then the result."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, create
from penguiflow.planner import ReactPlanner
from penguiflow.testkit import ScriptedLLMClient
from penguiflow_a2a import A2AServerAdapter, create_a2a_app, planner_node

from .conftest import CARD, served

ANSWER = "Boots ship on Monday; the tracking number follows by mail."


class Order(BaseModel):
    item: str


class Shipped(BaseModel):
    shipped: str


async def ship(args: Order, ctx: Any) -> Shipped:
    return Shipped(shipped=args.item)


def act(thought: str, **fields: Any) -> str:
    return json.dumps({"thought": thought, **fields})


def streaming_planner() -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("ship", Order, Shipped)
    script = [
        act("ship them", next_node="ship", args={"item": "boots"}),
        act("shipped", next_node=None, args={"answer": ANSWER}),
    ]
    return ReactPlanner(
        llm_client=ScriptedLLMClient(script, chunk_chars=6),
        catalog=build_catalog([Node(ship, name="ship")], registry),
    )


def rpc(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def test_message_stream_carries_the_answer_as_it_is_written() -> None:
    flow = create(planner_node(streaming_planner()).to())
    adapter = A2AServerAdapter(flow, agent_card=CARD, agent_url="http://127.0.0.1")
    message = {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "ship"}]}
    async with (
        served(create_a2a_app(adapter)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("POST", "/", json=rpc("message/stream", {"message": message})) as reply,
    ):
        results = [
            json.loads(line[6:])["result"]
            async for line in reply.aiter_lines()
            if line.startswith("data: ")
        ]
    updates = [r for r in results if r["kind"] == "artifact-update"]
    stream = [u for u in updates if u["artifact"]["name"] == "stream"]
    assert len(stream) > 3
    assert "".join(u["artifact"]["parts"][0]["text"] for u in stream) == ANSWER
    assert [u["artifact"]["metadata"]["seq"] for u in stream] == list(range(len(stream)))
    assert [u["append"] for u in stream] == [False] + [True] * (len(stream) - 1)
    assert [u["lastChunk"] for u in stream] == [False] * (len(stream) - 1) + [True]
    # The streamed answer comes before the result artifact and the final status.
    result = updates[-1]
    assert result["artifact"]["name"] != "stream"
    assert result["artifact"]["parts"][0]["data"] == {"answer": ANSWER}
    assert results.index(stream[-1]) < results.index(result)
    assert results[-1]["status"]["state"] == "completed"
