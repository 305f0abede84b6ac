"""Controller loops: working memory, hop/token budgets, deadlines and final answers."""

import asyncio
import time
from typing import Any

import pytest

from penguiflow import WM, FinalAnswer, FlowEvent, Message, Node, NodePolicy

from ..conftest import make_message


def controller(func: Any, name: str = "controller") -> Node:
    return Node(func, name=name, allow_cycle=True, policy=NodePolicy(validate="none"))


async def think(message: Message, ctx: Any) -> Message:
    wm = message.payload
    return message.model_copy(
        update={"payload": wm.model_copy(update={"facts": [*wm.facts, wm.hops]})}
    )


async def test_hop_budget_ends_the_loop_with_the_documented_answer(flows: Any) -> None:
    calls: list[int] = []

    async def loop(message: Message, ctx: Any) -> Message:
        calls.append(message.payload.hops)
        return message

    node = controller(loop)
    flow = flows(node.to(node))
    flow.run()
    await flow.emit(make_message(WM(query="q", budget_hops=3)))
    answer = await flow.fetch()
    assert answer.payload == FinalAnswer(text="Hop budget exhausted")
    assert calls == [0, 1, 2]  # hops 0..B-1, then the B-th result becomes the answer
    await asyncio.sleep(0.02)
    # Fixed defect: the node is not invoked again after its answer went to Rookery.
    assert calls == [0, 1, 2]
    assert flow.traces.active() == ()


async def test_budget_of_zero_still_runs_once(flows: Any) -> None:
    calls: list[int] = []

    async def loop(message: Message, ctx: Any) -> Message:
        calls.append(1)
        return message

    node = controller(loop)
    flow = flows(node.to(node))
    flow.run()
    await flow.emit(make_message(WM(query="q", budget_hops=0)))
    assert (await flow.fetch()).payload.text == "Hop budget exhausted"
    assert calls == [1]


async def test_token_budget(flows: Any) -> None:
    async def spend(message: Message, ctx: Any) -> Message:
        wm = message.payload
        return message.model_copy(
            update={"payload": wm.model_copy(update={"tokens_used": wm.tokens_used + 40})}
        )

    node = controller(spend)
    flow = flows(node.to(node))
    flow.run()
    await flow.emit(make_message(WM(query="q", budget_tokens=100, budget_hops=None)))
    answer = await flow.fetch()
    if isinstance(answer.payload, WM):  # budgets None -> progress snapshots come first
        pytest.fail("token budget set: no snapshots expected")
    assert answer.payload == FinalAnswer(text="Token budget exhausted")


async def test_final_answer_bypasses_successors_and_finishes(flows: Any) -> None:
    events: list[FlowEvent] = []

    async def record(event: FlowEvent) -> None:
        events.append(event)

    async def answer(message: Message, ctx: Any) -> Message:
        if message.payload.hops >= 2:
            return message.model_copy(update={"payload": FinalAnswer(text="42")})
        return message

    summarize_calls: list[Any] = []

    async def summarize(message: Any, ctx: Any) -> Any:
        summarize_calls.append(message)
        return message

    node = controller(answer)
    summary = Node(summarize, policy=NodePolicy(validate="none"))
    flow = flows(node.to(node, summary), summary.to(), middlewares=[record])
    flow.run()
    await flow.emit(make_message(WM(query="q")))
    result = await flow.fetch()
    assert result.payload == FinalAnswer(text="42")
    await asyncio.sleep(0.02)
    assert summarize_calls == []
    controller_events = [e.event_type for e in events if e.node_name == "controller"]
    assert controller_events.count("node_success") == 3  # hops 0, 1 and the answer
    assert controller_events.count("node_start") == 3


async def test_snapshots_stream_progress_when_unbudgeted(flows: Any) -> None:
    async def step(message: Message, ctx: Any) -> Message:
        if message.payload.hops >= 2:
            return message.model_copy(update={"payload": FinalAnswer(text="done")})
        return message

    node = controller(step)
    flow = flows(node.to(node))
    flow.run()
    start = make_message(WM(query="q", budget_hops=None))
    await flow.emit(start)
    first = await flow.fetch()
    second = await flow.fetch()
    final = await flow.fetch()
    assert (first.payload.hops, second.payload.hops) == (1, 2)
    assert final.payload == FinalAnswer(text="done")
    assert first.trace_id == start.trace_id
    assert first.payload is not second.payload  # snapshots are copies


async def test_reemitted_snapshot_is_ignored(flows: Any) -> None:
    gate = asyncio.Event()

    async def step(message: Message, ctx: Any) -> Message:
        await gate.wait()
        gate.clear()  # the next iteration waits again
        return message

    node = controller(step)
    flow = flows(node.to(node))
    flow.run()
    start = make_message(WM(query="q", budget_hops=None))
    await flow.emit(start)
    gate.set()
    snapshot = await flow.fetch()
    assert snapshot.payload.hops == 1
    await asyncio.sleep(0.01)  # the second iteration is now waiting on the gate
    depth_before = flow.contexts[node].queue_depth_in()
    await flow.emit(snapshot)  # same trace, same hops: dropped
    assert flow.contexts[node].queue_depth_in() == depth_before == 0
    await flow.cancel(start.trace_id)


async def test_wm_without_self_edge_is_a_node_error(flows: Any) -> None:
    async def returns_wm(message: Any, ctx: Any) -> Message:
        return message

    plain = Node(returns_wm, name="plain", policy=NodePolicy(validate="none"))
    flow = flows(plain.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message(WM(query="q")))
    error = await flow.fetch()
    assert error.code == "NODE_EXCEPTION"
    assert (
        error.message == "Node 'plain' raised UnknownTargetError: 'Unknown target plain for plain'"
    )


async def test_deadline_inside_the_loop(flows: Any) -> None:
    async def slow_step(message: Message, ctx: Any) -> Message:
        await asyncio.sleep(0.02)
        return message

    node = controller(slow_step)
    flow = flows(node.to(node))
    flow.run()
    await flow.emit(make_message(WM(query="q", budget_hops=1000), deadline_s=time.time() + 0.05))
    answer = await asyncio.wait_for(flow.fetch(), 2)
    assert answer.payload == FinalAnswer(text="Deadline exceeded")


async def test_bare_wm_is_an_ordinary_result(flows: Any) -> None:
    async def bare(message: Any, ctx: Any) -> WM:
        return WM(query="bare")

    node = Node(bare, policy=NodePolicy(validate="none"))
    flow = flows(node.to())
    flow.run()
    await flow.emit(make_message(1))
    assert await flow.fetch() == WM(query="bare")


async def test_facts_accumulate_across_hops(flows: Any) -> None:
    node = controller(think)
    flow = flows(node.to(node))
    flow.run()
    await flow.emit(make_message(WM(query="q", budget_hops=4)))
    assert (await flow.fetch()).payload.text == "Hop budget exhausted"
