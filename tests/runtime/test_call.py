"""`flow.call(payload)`: one payload in, its own trace's result out, never a hang."""

import asyncio
import logging
import time
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import FlowError, Headers, Message, Node, NodePolicy
from penguiflow.core import NoResultError, TraceCancelled
from penguiflow.errors import FlowLifecycleError, FlowStoppedError, FlowTimeoutError


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    text: str
    words: int


async def clean(question: Question, ctx: Any) -> Question:
    return Question(text=question.text.strip().rstrip("?") + "?")


async def answer(question: Question, ctx: Any) -> Answer:
    return Answer(text=f"You asked: {question.text}", words=len(question.text.split()))


def quickstart(flows: Any, **kwargs: Any) -> Any:
    clean_node, answer_node = Node(clean), Node(answer)
    flow = flows(clean_node.to(answer_node), answer_node.to(), **kwargs)
    flow.run()
    return flow


async def nothing_for_fetch(flow: Any) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.05)


async def test_call_returns_the_result_of_its_payload(flows: Any) -> None:
    flow = quickstart(flows)
    result = await flow.call({"text": "  what is penguiflow "})
    assert result == Answer(text="You asked: what is penguiflow?", words=3)
    await nothing_for_fetch(flow)


@pytest.mark.parametrize("to_rookery", [False, True])
async def test_a_bad_payload_raises_the_traces_flow_error_within_a_second(
    flows: Any, to_rookery: bool
) -> None:
    flow = quickstart(flows, emit_errors_to_rookery=to_rookery)
    started = time.monotonic()
    with pytest.raises(FlowError) as failure:
        await flow.call({"txt": "oops"})
    assert time.monotonic() - started < 1.0
    error = failure.value
    assert (error.node_name, error.exception_type) == ("clean", "ValidationError")
    assert error.trace_id is not None
    assert flow.trace_status(error.trace_id).done
    await nothing_for_fetch(flow)  # the error went to the caller, not to fetch()


async def test_the_error_reaching_the_caller_is_not_logged_as_undelivered(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flow = quickstart(flows)
    with caplog.at_level(logging.ERROR, logger="penguiflow"), pytest.raises(FlowError):
        await flow.call({"txt": "oops"})
    failed = [r for r in caplog.records if r.getMessage().startswith("node_failed")]
    assert len(failed) == 1
    assert not hasattr(failed[0], "undelivered")


async def test_concurrent_calls_each_get_their_own_result(flows: Any) -> None:
    flow = quickstart(flows)
    texts = [f"question {i}" for i in range(50)]
    results = await asyncio.gather(*(flow.call({"text": t}) for t in texts))
    assert [r.text for r in results] == [f"You asked: {t}?" for t in texts]
    await nothing_for_fetch(flow)


async def test_a_message_is_sent_as_it_is_and_its_result_returned_whole(flows: Any) -> None:
    flow = quickstart(flows)
    message = Message(payload={"text": "hi"}, headers=Headers(tenant="acme"), meta={"k": 1})
    result = await flow.call(message)
    assert isinstance(result, Message)
    assert (result.trace_id, result.headers.tenant, result.meta) == (
        message.trace_id,
        "acme",
        {"k": 1},
    )
    assert result.payload == Answer(text="You asked: hi?", words=1)


async def test_a_timeout_cancels_the_trace_and_raises_a_typed_timeout(flows: Any) -> None:
    started = asyncio.Event()

    async def slow(question: Question, ctx: Any) -> Question:
        started.set()
        await asyncio.sleep(30)
        return question

    flow = flows(Node(slow).to())
    flow.run()
    with pytest.raises(FlowTimeoutError) as timeout:
        await flow.call({"text": "q"}, timeout_s=0.2)
    assert isinstance(timeout.value, TimeoutError)
    assert started.is_set()
    status = flow.trace_status(timeout.value.trace_id)
    for _ in range(100):
        if status.done:
            break
        await asyncio.sleep(0.01)
        status = flow.trace_status(timeout.value.trace_id)
    assert status.done
    assert status.inflight == 0


async def test_a_trace_that_ends_without_a_result_raises_no_result(flows: Any) -> None:
    async def drop(question: Question, ctx: Any) -> None:
        return None

    flow = flows(Node(drop).to())
    flow.run()
    with pytest.raises(NoResultError, match="ended without a result"):
        await asyncio.wait_for(flow.call({"text": "q"}), 1)


async def test_the_first_of_two_branch_results_is_returned_and_the_other_dropped(
    flows: Any,
) -> None:
    async def fan(message: Any, ctx: Any) -> Any:
        return message

    async def fast(message: Any, ctx: Any) -> Any:
        return "fast"

    async def slow(message: Any, ctx: Any) -> Any:
        await asyncio.sleep(0.05)
        return "slow"

    fan_node, fast_node, slow_node = Node(fan), Node(fast), Node(slow)
    flow = flows(fan_node.to(fast_node, slow_node), fast_node.to(), slow_node.to())
    flow.run()
    assert await flow.call("go") == "fast"
    await asyncio.sleep(0.1)  # the slow branch finishes
    await nothing_for_fetch(flow)
    assert flow.traces.active() == ()


async def call_in_a_stuck_flow(flows: Any, payload: Any) -> tuple[Any, asyncio.Task[Any]]:
    """A running flow whose one node never finishes, and a `call(payload)` waiting on it
    (returned once the node has started)."""
    started = asyncio.Event()

    async def slow(message: Any, ctx: Any) -> Any:
        started.set()
        await asyncio.sleep(30)

    flow = flows(Node(slow).to())
    flow.run()
    waiting = asyncio.create_task(flow.call(payload))
    await started.wait()
    return flow, waiting


async def test_cancelling_the_trace_raises_trace_cancelled(flows: Any) -> None:
    message = Message(payload="q", headers=Headers(tenant="t"))
    flow, waiting = await call_in_a_stuck_flow(flows, message)
    assert await flow.cancel(message.trace_id)
    with pytest.raises(TraceCancelled):
        await asyncio.wait_for(waiting, 1)


async def test_a_cancelled_caller_cancels_its_trace(flows: Any) -> None:
    message = Message(payload="q", headers=Headers(tenant="t"))
    flow, waiting = await call_in_a_stuck_flow(flows, message)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(100):
        if flow.trace_status(message.trace_id).done:
            break
        await asyncio.sleep(0.01)
    assert flow.trace_status(message.trace_id).done


async def test_stopping_the_flow_ends_a_waiting_call(flows: Any) -> None:
    flow, waiting = await call_in_a_stuck_flow(flows, "q")
    await flow.stop()
    with pytest.raises(FlowStoppedError, match="stopped while call"):
        await asyncio.wait_for(waiting, 1)


async def test_call_needs_a_running_flow_and_a_sane_timeout(flows: Any) -> None:
    flow = flows(Node(clean).to())
    with pytest.raises(FlowLifecycleError, match=r"call run\(\) before call\(\)"):
        await flow.call({"text": "q"})
    flow.run()
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        await flow.call({"text": "q"}, timeout_s=0)


async def test_one_message_cannot_be_awaited_by_two_calls(flows: Any) -> None:
    release = asyncio.Event()

    async def held(message: Any, ctx: Any) -> Any:
        await release.wait()
        return message

    flow = flows(Node(held, policy=NodePolicy(validate="none")).to())
    flow.run()
    message = Message(payload="q", headers=Headers(tenant="t"))
    first = asyncio.create_task(flow.call(message))
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="already awaited by another call"):
        await flow.call(message)
    release.set()
    assert (await first).payload == "q"


async def test_emit_and_fetch_work_beside_calls(flows: Any) -> None:
    flow = quickstart(flows)
    await flow.emit({"text": "plain"})
    result = await flow.call({"text": "called"})
    assert result.text == "You asked: called?"
    assert await asyncio.wait_for(flow.fetch(), 1) == Answer(text="You asked: plain?", words=1)
