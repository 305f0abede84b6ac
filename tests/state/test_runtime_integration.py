"""Flows write their history to every store, and it reads back in order."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, create


async def test_a_flow_records_its_trace_history_in_the_store(store: Any) -> None:
    async def double(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": message.payload * 2})

    node = Node(double, name="double", policy=NodePolicy(validate="none"))
    flow = create(node.to(), state_store=store)
    flow.run()
    message = Message(payload=21, headers=Headers(tenant="acme"))
    try:
        await flow.emit(message)
        assert (await flow.fetch()).payload == 42
        # node_success is saved right after the result reached Rookery.
        for _ in range(200):
            history = await flow.load_history(message.trace_id)
            if len(history) == 2:
                break
            await asyncio.sleep(0.005)
    finally:
        await flow.stop()
    assert [e.kind for e in history] == ["node_start", "node_success"]
    assert all(e.trace_id == message.trace_id for e in history)
    assert history[0].payload["node_name"] == "double"
