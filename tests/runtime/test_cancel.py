"""Per-trace cancellation: one trace stops, the others finish, nothing leaks."""

import asyncio
from typing import Any

import pytest

from penguiflow import FlowEvent, Message, Node, NodePolicy
from penguiflow.core import ROOKERY, TraceCancelled
from penguiflow.observation import FlowState

from ..conftest import make_message


class Recorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def of(self, trace_id: str) -> list[str]:
        return [e.event_type for e in self.events if e.trace_id == trace_id]


async def test_cancel_one_trace_while_others_finish(flows: Any) -> None:
    recorder = Recorder()
    started: dict[str, asyncio.Event] = {}

    async def work(message: Message, ctx: Any) -> Message:
        started.setdefault(message.payload, asyncio.Event()).set()
        await asyncio.sleep(0.05 if message.payload == "keep" else 10)
        return message

    worker = Node(work, policy=NodePolicy(validate="none"))
    flow = flows(worker.to(), middlewares=[recorder])
    flow.run()
    doomed, kept = make_message("doomed"), make_message("keep")
    await flow.emit(doomed)
    await flow.emit(kept)
    started["doomed"] = started.get("doomed") or asyncio.Event()
    await started["doomed"].wait()
    assert await flow.cancel(doomed.trace_id) is True
    assert (await flow.fetch()).payload == "keep"
    assert recorder.of(doomed.trace_id) == [
        "node_start",
        "trace_cancel_start",
        "node_trace_cancelled",
        "trace_cancel_finish",
    ]
    start = next(e for e in recorder.events if e.event_type == "trace_cancel_start")
    assert (start.node_name, start.node_id, start.extra["pending"]) == ("OpenSea", "OpenSea", 1)
    finish = next(e for e in recorder.events if e.event_type == "trace_cancel_finish")
    assert (finish.node_name, finish.trace_cancelled) == ("Rookery", False)
    assert flow.traces.active() == ()


async def test_cancel_drains_queued_messages(flows: Any) -> None:
    gate = asyncio.Event()

    async def blocked(message: Message, ctx: Any) -> Message:
        await gate.wait()
        return message

    worker = Node(blocked, policy=NodePolicy(validate="none"))
    flow = flows(worker.to())
    flow.run()
    first = make_message("first")
    await flow.emit(first)
    queued = [make_message("q", trace_id=first.trace_id) for _ in range(3)]
    other = make_message("other")
    for message in queued:
        await flow.emit(message)
    await flow.emit(other)
    await asyncio.sleep(0.01)
    assert await flow.cancel(first.trace_id) is True
    assert await flow.cancel(first.trace_id) in (True, False)
    gate.set()
    assert (await flow.fetch()).payload == "other"
    assert not flow.traces.known(first.trace_id)
    assert await flow.cancel(first.trace_id) is False


async def test_cancel_unknown_and_not_running(flows: Any) -> None:
    flow = flows(Node(lambda_passthrough, policy=NodePolicy(validate="none")).to())
    with pytest.raises(RuntimeError, match="PenguiFlow is not running"):
        await flow.cancel("nope")
    flow.run()
    assert await flow.cancel("nope") is False


async def lambda_passthrough(message: Any, ctx: Any) -> Any:
    return message


async def test_node_swallowing_cancellation_still_ends_the_trace(flows: Any) -> None:
    recorder = Recorder()
    entered = asyncio.Event()

    async def stubborn(message: Message, ctx: Any) -> Message:
        if message.payload != "m":
            return message
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            message = message.model_copy(update={"meta": {"swallowed": True}})
        return message

    flow = flows(Node(stubborn, policy=NodePolicy(validate="none")).to(), middlewares=[recorder])
    flow.run()
    message = make_message("m")
    await flow.emit(message)
    await entered.wait()
    await flow.cancel(message.trace_id)
    for _ in range(100):
        if "trace_cancel_finish" in recorder.of(message.trace_id):
            break
        await asyncio.sleep(0.005)
    assert "node_trace_cancelled" in recorder.of(message.trace_id)
    assert flow.contexts[ROOKERY].queue_depth_in() == 0
    # The worker survives and keeps serving other traces.
    await flow.emit(make_message("next"))
    result = await asyncio.wait_for(flow.fetch(), 1)
    assert result.payload == "next"


async def test_setting_the_trace_event_interrupts_running_nodes(flows: Any) -> None:
    recorder = Recorder()
    entered = asyncio.Event()

    async def slow(message: Message, ctx: Any) -> Message:
        entered.set()
        await asyncio.sleep(10)
        return message

    flow = flows(Node(slow, policy=NodePolicy(validate="none")).to(), middlewares=[recorder])
    flow.run()
    message = make_message("m")
    await flow.emit(message)
    await entered.wait()
    flow.ensure_trace_event(message.trace_id).set()
    for _ in range(100):
        if "node_trace_cancelled" in recorder.of(message.trace_id):
            break
        await asyncio.sleep(0.005)
    assert "node_trace_cancelled" in recorder.of(message.trace_id)


async def test_late_messages_of_a_cancelled_trace_are_dropped(flows: Any) -> None:
    recorder = Recorder()
    release = asyncio.Event()
    entered = asyncio.Event()

    async def first(message: Message, ctx: Any) -> Message:
        # Holds its trace open through the cancellation (e.g. shielded cleanup work).
        entered.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return message

    async def second(message: Message, ctx: Any) -> Message:
        return message

    a = Node(first, policy=NodePolicy(validate="none"))
    b = Node(second, policy=NodePolicy(validate="none"))
    flow = flows(a.to(b), b.to(), middlewares=[recorder])
    flow.run()
    message = make_message("m")
    await flow.emit(message)
    await entered.wait()
    assert await flow.cancel(message.trace_id)
    # A message of the same trace that was already on its way to b arrives late.
    flow.traces.track(message.trace_id)
    flow.contexts[b].incoming[a].queue.put_nowait(make_message("late", trace_id=message.trace_id))
    for _ in range(100):
        if "trace_cancel_drop" in recorder.of(message.trace_id):
            break
        await asyncio.sleep(0.005)
    release.set()
    for _ in range(100):
        if "trace_cancel_finish" in recorder.of(message.trace_id):
            break
        await asyncio.sleep(0.005)
    events = recorder.of(message.trace_id)
    assert events.index("trace_cancel_drop") < events.index("trace_cancel_finish")
    assert "node_trace_cancelled" in events
    assert flow.contexts[ROOKERY].queue_depth_in() == 0


async def test_stop_cancels_workers_with_node_cancelled(flows: Any) -> None:
    recorder = Recorder()
    a = Node(lambda_passthrough, name="a", policy=NodePolicy(validate="none"))
    b = Node(lambda_passthrough, name="b", policy=NodePolicy(validate="none"))
    flow = flows(a.to(b), b.to(), middlewares=[recorder])
    flow.run()
    await asyncio.sleep(0)  # let the workers start
    await flow.stop()
    cancelled = [e for e in recorder.events if e.event_type == "node_cancelled"]
    assert sorted(e.node_name for e in cancelled) == ["a", "b"]
    assert all(e.trace_id is None for e in cancelled)


def test_trace_cancelled_message() -> None:
    error = TraceCancelled("abc")
    assert str(error) == "trace cancelled: abc"
    assert error.trace_id == "abc"


async def test_stop_ends_even_when_a_node_swallows_cancellation() -> None:
    from penguiflow import create

    entered = asyncio.Event()

    swallowed: list[str] = []

    async def stubborn(message: Message, ctx: Any) -> None:
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.append(message.payload)  # ignores the cancellation on purpose

    flow = create(Node(stubborn, policy=NodePolicy(validate="none")).to())
    flow.run()
    await flow.emit(make_message("m"))
    await entered.wait()
    await asyncio.wait_for(flow.stop(), 2)
    assert swallowed == ["m"]
    assert flow.state is FlowState.STOPPED
