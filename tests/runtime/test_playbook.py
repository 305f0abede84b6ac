"""Subflows called from a node with `call_playbook`."""

import asyncio
from typing import Any

import pytest

from penguiflow import Message, ModelRegistry, Node, NodePolicy, PenguiFlow, call_playbook, create
from penguiflow.core import Context, TraceCancelled

from ..conftest import make_message


def sub_playbook(delay: float = 0.0, entered: asyncio.Event | None = None) -> Any:
    def factory() -> tuple[PenguiFlow, ModelRegistry | None]:
        async def enrich(message: Message, ctx: Any) -> Message:
            if entered is not None:
                entered.set()
            await asyncio.sleep(delay)
            return message.model_copy(update={"payload": f"enriched {message.payload}"})

        node = Node(enrich, policy=NodePolicy(validate="none"))
        return create(node.to()), None

    return factory


async def test_node_calls_a_subflow_and_gets_the_payload(flows: Any) -> None:
    async def parent(message: Message, ctx: Context) -> Message:
        enriched = await ctx.call_playbook(sub_playbook(), message)
        return message.model_copy(update={"payload": enriched})

    flow = flows(Node(parent, policy=NodePolicy(validate="none")).to())
    flow.run()
    await flow.emit(make_message("doc"))
    assert (await flow.fetch()).payload == "enriched doc"


async def test_timeout_bounds_the_wait(baseline_tasks: Any) -> None:
    with pytest.raises(TimeoutError):
        await call_playbook(sub_playbook(delay=5), make_message("x"), timeout=0.02)
    await asyncio.sleep(0)
    assert baseline_tasks() == set()


async def test_cancelling_the_parent_trace_cancels_the_subflow(flows: Any) -> None:
    entered = asyncio.Event()
    outcome: list[str] = []

    async def parent(message: Message, ctx: Context) -> Message:
        try:
            return await ctx.call_playbook(sub_playbook(delay=10, entered=entered), message)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    flow = flows(Node(parent, policy=NodePolicy(validate="none")).to())
    flow.run()
    message = make_message("x")
    await flow.emit(message)
    await entered.wait()
    await flow.cancel(message.trace_id)
    await asyncio.sleep(0.02)
    assert outcome == ["cancelled"]
    assert flow.traces.active() == ()


async def test_pre_cancelled_trace_raises_without_running(flows: Any) -> None:
    flow = flows(Node(_noop, policy=NodePolicy(validate="none")).to())
    flow.run()
    message = make_message("x")
    flow.ensure_trace_event(message.trace_id).set()
    entered = asyncio.Event()
    with pytest.raises(TraceCancelled):
        await call_playbook(sub_playbook(entered=entered), message, runtime=flow)
    assert not entered.is_set()


async def _noop(message: Any, ctx: Any) -> None:
    return None


async def test_subflow_errors_are_returned_when_sent_to_rookery() -> None:
    def failing() -> tuple[PenguiFlow, ModelRegistry | None]:
        async def boom(message: Any, ctx: Any) -> Any:
            raise ValueError("nope")

        return create(
            Node(boom, policy=NodePolicy(validate="none")).to(), emit_errors_to_rookery=True
        ), None

    result = await call_playbook(failing, make_message("x"), timeout=2)
    assert result.code == "NODE_EXCEPTION"
    assert result.message == "Node 'boom' raised ValueError: nope"
