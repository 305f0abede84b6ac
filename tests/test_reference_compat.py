"""Private names that code written for the reference implementation reads keep working."""

import asyncio
from typing import Any

import pytest

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.errors import UnknownTargetError
from penguiflow.patterns import _normalize_targets

NONE = NodePolicy(validate="none")


async def test_a_node_can_push_status_updates_with_emit_to_rookery(flows: Any) -> None:
    built: dict[str, Any] = {}  # reference code holds the flow in a closure or a global

    async def work(message: Message, ctx: Any) -> Message:
        status = message.model_copy(update={"payload": {"status": "thinking"}})
        await built["flow"]._emit_to_rookery(status, source=ctx.owner)
        return message.model_copy(update={"payload": {"answer": 42}})

    flow = built["flow"] = flows(Node(work, policy=NONE).to())
    flow.run()
    sent = Message(payload="q", headers=Headers(tenant="t"))
    await flow.emit(sent)
    first = await asyncio.wait_for(flow.fetch(), 1)
    second = await asyncio.wait_for(flow.fetch(), 1)
    assert [first.payload, second.payload] == [{"status": "thinking"}, {"answer": 42}]
    assert first.trace_id == second.trace_id == sent.trace_id
    assert flow.trace_status(sent.trace_id).done  # both updates were counted and fetched


async def test_tasks_and_trace_events_let_playbook_code_cancel(flows: Any) -> None:
    started = asyncio.Event()

    async def slow(message: Message, ctx: Any) -> Message:
        started.set()
        await asyncio.sleep(30)
        return message

    flow = flows(Node(slow, policy=NONE).to())
    assert flow._tasks == []
    flow.run()
    assert len(flow._tasks) == 1
    assert all(isinstance(task, asyncio.Task) and not task.done() for task in flow._tasks)
    sent = Message(payload="q", headers=Headers(tenant="t"))
    await flow.emit(sent)
    await started.wait()
    assert sent.trace_id not in flow._trace_events  # no event until someone asks for one
    flow.ensure_trace_event(sent.trace_id)
    assert list(flow._trace_events) == [sent.trace_id]
    flow._trace_events[sent.trace_id].set()  # cancels the trace, as flow.cancel does
    for _ in range(100):
        if flow.trace_status(sent.trace_id).done:
            break
        await asyncio.sleep(0.01)
    assert flow.trace_status(sent.trace_id).done
    assert len(flow._trace_events) == 0
    with pytest.raises(KeyError):
        flow._trace_events[sent.trace_id]
    await flow.stop()
    assert flow._tasks == []


class StandInContext:
    """What reference tests pass to `_normalize_targets`: only `_outgoing`."""

    def __init__(self, *successors: Node) -> None:
        self._outgoing = {node: object() for node in successors}


async def noop(message: Any, ctx: Any) -> Any:
    return message


def test_normalize_targets_reads_a_stand_in_contexts_outgoing() -> None:
    left, right = Node(noop, name="left"), Node(noop, name="right")
    ctx = StandInContext(left, right)
    assert _normalize_targets(ctx, "right") == [right]  # type: ignore[arg-type]
    assert _normalize_targets(ctx, ["left", right]) == [left, right]  # type: ignore[arg-type]
    assert _normalize_targets(ctx, None) == []  # type: ignore[arg-type]
    with pytest.raises(UnknownTargetError, match="No successor named 'middle'"):
        _normalize_targets(ctx, "middle")  # type: ignore[arg-type]


def test_normalize_targets_still_uses_a_real_context() -> None:
    router, target = Node(noop, name="router"), Node(noop, name="target")
    flow = create(router.to(target), target.to())
    assert _normalize_targets(flow.contexts[router], "target") == [target]


def test_normalize_targets_names_an_object_that_is_no_context() -> None:
    with pytest.raises(TypeError, match="not a penguiflow Context"):
        _normalize_targets(object(), "x")  # type: ignore[arg-type]
