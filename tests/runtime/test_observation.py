"""Observing a flow through its public API: hook lists, trace status, lifecycle, views."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest

from penguiflow import FlowError, FlowEvent, Message, Node, NodePolicy
from penguiflow.core import OPEN_SEA, ROOKERY
from penguiflow.errors import FlowStoppedError
from penguiflow.observation import FlowHooks, FlowState, RookeryDelivery, TraceStatus

from ..conftest import make_message


def node(func: Any, name: str, **policy: Any) -> Node:
    return Node(func, name=name, policy=NodePolicy(validate="none", **policy))


async def double(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload * 2})


async def boom(message: Message, ctx: Any) -> Message:
    raise ValueError(f"bad {message.payload}")


async def plain(message: Message, ctx: Any) -> dict[str, Any]:
    return {"answer": message.payload}  # no trace id of its own


async def test_every_node_failed_subscriber_hears_of_a_final_failure(flows: Any) -> None:
    flow = flows(node(boom, "boom").to())
    first: list[FlowError] = []
    second: list[FlowError] = []
    flow.hooks.node_failed.append(first.append)
    flow.hooks.node_failed.append(second.append)
    flow.run()
    message = make_message(3)
    await flow.emit(message)
    while not second:
        await asyncio.sleep(0.001)
    assert [(e.trace_id, e.node_name, e.code) for e in first + second] == [
        (message.trace_id, "boom", "NODE_EXCEPTION"),
        (message.trace_id, "boom", "NODE_EXCEPTION"),
    ]
    flow.hooks.node_failed.remove(first.append)
    await flow.emit(make_message(4))
    while len(second) < 2:
        await asyncio.sleep(0.001)
    assert len(first) == 1


async def test_node_failed_hooks_stay_silent_when_errors_go_to_rookery(flows: Any) -> None:
    flow = flows(node(boom, "boom").to(), emit_errors_to_rookery=True)
    heard: list[FlowError] = []
    flow.hooks.node_failed.append(heard.append)
    flow.run()
    await flow.emit(make_message(1))
    assert isinstance(await flow.fetch(), FlowError)
    assert heard == []


async def test_rookery_hooks_see_each_result_with_its_trace_and_may_replace_it(
    flows: Any,
) -> None:
    flow = flows(node(plain, "plain").to())
    seen: list[tuple[Any, str | None]] = []

    def tag(delivery: RookeryDelivery) -> None:
        seen.append((delivery.item, delivery.trace_id))
        delivery.item = {"tagged": delivery.item, "trace": delivery.trace_id}

    flow.hooks.rookery.append(tag)
    flow.run()
    message = make_message(7)
    await flow.emit(message)
    result = await flow.fetch()
    # The plain dict has no trace id: the hook is told which trace produced it.
    assert seen == [({"answer": 7}, message.trace_id)]
    assert result == {"tagged": {"answer": 7}, "trace": message.trace_id}


async def test_event_hooks_see_every_event_debug_ones_included(flows: Any) -> None:
    flow = flows(node(double, "double").to())
    events: list[FlowEvent] = []
    flow.hooks.event.append(events.append)
    flow.run()
    message = make_message(2)
    await flow.emit(message)
    assert (await flow.fetch()).payload == 4
    assert [(e.event_type, e.node_name, e.trace_id) for e in events] == [
        ("node_start", "double", message.trace_id),
        ("node_success", "double", message.trace_id),
    ]


async def test_trace_hooks_tell_when_a_trace_is_cancelled_and_when_it_is_done(
    flows: Any,
) -> None:
    started = asyncio.Event()

    async def slow(message: Message, ctx: Any) -> Message:
        started.set()
        await asyncio.sleep(30)
        return message

    flow = flows(node(slow, "slow").to(), node(double, "other").to())
    cancelled: list[str] = []
    done: list[str] = []
    flow.hooks.trace_cancelled.append(cancelled.append)
    flow.hooks.trace_done.append(done.append)
    flow.run()
    doomed = make_message(1)
    await flow.emit(doomed, to=flow.nodes[0])
    await started.wait()
    assert await flow.cancel(doomed.trace_id) is True
    while doomed.trace_id not in done:
        await asyncio.sleep(0.001)
    kept = make_message(5)
    await flow.emit(kept, to=flow.nodes[1])
    assert (await flow.fetch()).payload == 10
    assert cancelled == [doomed.trace_id]
    assert done == [doomed.trace_id, kept.trace_id]


async def test_a_failing_hook_is_logged_and_the_flow_goes_on(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flow = flows(node(double, "double").to())

    def broken(delivery: RookeryDelivery) -> None:
        raise RuntimeError("hook bug")

    heard: list[Any] = []
    flow.hooks.rookery.extend([broken, lambda delivery: heard.append(delivery.item)])
    flow.run()
    with caplog.at_level(logging.ERROR, logger="penguiflow.core"):
        await flow.emit(make_message(1))
        assert (await flow.fetch()).payload == 2
    assert [r.getMessage() for r in caplog.records] == ["flow_hook_error"]
    assert caplog.records[0].hook == "rookery"  # type: ignore[attr-defined]
    assert len(heard) == 1


def test_hook_lists_are_changed_in_place_never_replaced() -> None:
    hooks = FlowHooks()
    with pytest.raises(AttributeError):
        hooks.rookery = []  # type: ignore[misc]
    assert repr(hooks) == (
        "FlowHooks(rookery=0, node_failed=0, event=0, trace_cancelled=0, trace_done=0)"
    )


async def test_trace_status_follows_a_trace_from_queued_to_done(flows: Any) -> None:
    gate = asyncio.Event()
    running = asyncio.Event()

    async def wait(message: Message, ctx: Any) -> Message:
        running.set()
        await gate.wait()
        return message

    flow = flows(node(wait, "wait").to())
    message = make_message("m")
    trace = message.trace_id
    assert flow.trace_status(trace) == TraceStatus(trace, 0, 0, False)
    await flow.emit(message)  # queued before the flow runs
    assert flow.trace_status(trace) == TraceStatus(trace, 1, 0, False)
    flow.run()
    await running.wait()
    assert flow.trace_status(trace) == TraceStatus(trace, 1, 1, False)
    gate.set()
    result = await flow.fetch()
    assert result is message
    assert flow.trace_status(trace).done
    assert not flow.traces.known(trace)


async def test_a_cancelled_trace_reports_cancelled_until_it_drains(flows: Any) -> None:
    release = asyncio.Event()

    async def stubborn(message: Message, ctx: Any) -> Message:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await release.wait()  # cleans up slowly
            raise
        return message

    flow = flows(node(stubborn, "stubborn").to())
    flow.run()
    message = make_message(1)
    await flow.emit(message)
    while not flow.trace_status(message.trace_id).inflight:
        await asyncio.sleep(0.001)
    await flow.cancel(message.trace_id)
    status = flow.trace_status(message.trace_id)
    assert (status.cancelled, status.done) == (True, False)
    release.set()
    while not flow.trace_status(message.trace_id).done:
        await asyncio.sleep(0.001)
    assert flow.trace_status(message.trace_id).cancelled is False


async def test_the_lifecycle_is_one_state(flows: Any) -> None:
    flow = flows(node(double, "double").to())
    assert flow.state is FlowState.CREATED
    flow.run()
    assert flow.state is FlowState.RUNNING
    await flow.stop()
    assert flow.state is FlowState.STOPPED
    with pytest.raises(FlowStoppedError):
        await flow.emit(make_message(1))
    flow.run()
    assert flow.state is FlowState.RUNNING


async def test_the_graph_is_visible_read_only(flows: Any) -> None:
    a, b = node(double, "a"), node(double, "b")
    flow = flows(a.to(b), b.to())
    assert flow.nodes == (a, b)
    assert [(e.source, e.target) for e in flow.edges] == [
        (a, b),
        (OPEN_SEA, a),
        (b, ROOKERY),
    ]
    assert set(flow.contexts) == {a, b, OPEN_SEA, ROOKERY}
    assert flow.contexts[a].outgoing[b] is flow.edges[0]
    assert flow.contexts[b].incoming[a] is flow.edges[0]
    with pytest.raises(TypeError):
        flow.contexts[a] = flow.contexts[b]  # type: ignore[index]
    with pytest.raises(TypeError):
        flow.contexts[a].outgoing[a] = flow.edges[0]  # type: ignore[index]


async def test_a_result_passed_on_keeps_its_trace_counted_once(flows: Any) -> None:
    """Whether events are watched or not, a chain counts each trace the same way."""
    seen: list[int] = []

    async def peek(message: Message, ctx: Any) -> Message:
        seen.append(ctx.runtime.trace_status(message.trace_id).pending)
        return message

    chain = [node(peek, f"n{i}") for i in range(4)]
    flow = flows(*(x.to(y) for x, y in itertools.pairwise(chain)), chain[-1].to())
    flow.run()
    await flow.emit(make_message(0))
    await flow.fetch()
    watched: list[FlowEvent] = []
    flow.hooks.event.append(watched.append)
    await flow.emit(make_message(1))
    await flow.fetch()
    assert seen == [1, 1, 1, 1, 1, 1, 1, 1]
    assert flow.traces.active() == ()
    assert [e.trace_pending for e in watched if e.event_type == "node_success"] == [2, 2, 2, 2]
