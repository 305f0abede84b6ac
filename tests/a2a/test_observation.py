"""The adapter observes flows only through their public hooks, and serves hookless ones too."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from penguiflow import FlowError, Message
from penguiflow.state import RemoteBinding
from penguiflow_a2a import A2AMessagePayload, A2AServerAdapter
from penguiflow_a2a.server import A2ARequestError

from .conftest import CARD, echo_flow


class SpecOnlyFlow:
    """A flow with only the spec'd public methods (no `hooks`, no `trace_status`).

    It echoes each message's payload back, under the message's own trace id, unless
    the payload is `"nothing"` (the trace ends without a result).
    """

    def __init__(self) -> None:
        self.results: asyncio.Queue[Any] = asyncio.Queue()
        self.bindings: list[RemoteBinding] = []
        self.running = False

    def run(self, *, registry: Any | None = None) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def emit(self, msg: Message, to: Any = None) -> None:
        if msg.payload != "nothing":
            await self.results.put(msg.model_copy(update={"payload": {"echo": msg.payload}}))

    async def fetch(self, from_: Any = None) -> Any:
        return await self.results.get()

    async def cancel(self, trace_id: str) -> bool:
        return False

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        self.bindings.append(binding)


async def test_a_flow_without_hooks_is_served_with_a_clear_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = SpecOnlyFlow()
    with caplog.at_level(logging.WARNING, logger="penguiflow_a2a"):
        adapter = A2AServerAdapter(
            flow,  # type: ignore[arg-type]
            agent_card=CARD,
            agent_url="http://agent",
            result_timeout_s=0.2,
        )
    assert [r.getMessage() for r in caplog.records] == [
        "a2a: SpecOnlyFlow offers no observation hooks (flow.hooks): results without a "
        "trace id are dropped, and a failed node or a trace that ends without a result "
        "is only noticed after result_timeout_s=0.2"
    ]
    await adapter.start()
    try:
        reply = await adapter.handle_send(
            A2AMessagePayload(payload="hi", headers={"tenant": "t"}, traceId="t1")
        )
        assert (reply["status"], reply["output"], reply["traceId"]) == (
            "succeeded",
            {"echo": "hi"},
            "t1",
        )
        assert [b.trace_id for b in flow.bindings] == ["t1"]
        # Without hooks, a trace that ends without a result is noticed at the time limit.
        with pytest.raises(A2ARequestError) as info:
            await adapter.handle_send(A2AMessagePayload(payload="nothing", headers={"tenant": "t"}))
        assert info.value.status_code == 504
    finally:
        await adapter.stop()


async def test_the_adapter_subscribes_while_started_and_leaves_other_subscribers_alone() -> None:
    flow = echo_flow()
    mine: list[FlowError] = []
    flow.hooks.node_failed.append(mine.append)
    adapter = A2AServerAdapter(flow, agent_card=CARD, agent_url="http://agent")
    assert [len(flow.hooks.rookery), len(flow.hooks.node_failed)] == [0, 1]
    await adapter.start()
    try:
        assert [len(flow.hooks.rookery), len(flow.hooks.node_failed)] == [1, 2]
        reply = await adapter.handle_send(
            A2AMessagePayload(payload={"fail": True}, headers={"tenant": "t"})
        )
        assert reply["status"] == "failed"
        assert reply["error"]["code"] == "NODE_EXCEPTION"
        assert [e.trace_id for e in mine] == [reply["traceId"]]  # both subscribers heard it
    finally:
        await adapter.stop()
    hooks = flow.hooks
    assert [
        len(hooks.rookery),
        len(hooks.node_failed),
        len(hooks.trace_cancelled),
        len(hooks.trace_done),
    ] == [0, 1, 0, 0]
