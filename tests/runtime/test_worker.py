"""The reliability envelope: retries with backoff, timeouts, validation, deadlines."""

import asyncio
import time
import warnings
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import FinalAnswer, FlowError, FlowEvent, Message, ModelRegistry, Node, NodePolicy
from penguiflow.core import ROOKERY

from ..conftest import make_message


class Recorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def kinds(self, *, node: str | None = None) -> list[tuple[str, int]]:
        return [
            (e.event_type, e.attempt) for e in self.events if node is None or e.node_name == node
        ]


def flaky(failures: int, exc: type[Exception] = ValueError) -> Any:
    calls = {"n": 0}

    async def run(message: Any, ctx: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc(f"failure {calls['n']}")
        return message

    run.calls = calls  # type: ignore[attr-defined]
    return run


async def test_retry_then_success_event_sequence(flows: Any) -> None:
    recorder = Recorder()
    policy = NodePolicy(validate="none", max_retries=2, backoff_base=0.01, backoff_mult=3.0)
    worker = Node(flaky(2), name="worker", policy=policy)
    flow = flows(worker.to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message("x"))
    assert (await flow.fetch()).payload == "x"
    assert recorder.kinds() == [
        ("node_start", 0),
        ("node_error", 0),
        ("node_retry", 1),
        ("node_start", 1),
        ("node_error", 1),
        ("node_retry", 2),
        ("node_start", 2),
        ("node_success", 2),
    ]
    sleeps = [e.extra["sleep_s"] for e in recorder.events if e.event_type == "node_retry"]
    assert sleeps == pytest.approx([0.01, 0.03])
    assert recorder.events[1].extra["exception"] == "ValueError('failure 1')"


async def test_backoff_is_capped(flows: Any) -> None:
    recorder = Recorder()
    policy = NodePolicy(
        validate="none", max_retries=3, backoff_base=0.01, backoff_mult=10.0, max_backoff=0.02
    )
    flow = flows(Node(flaky(3), name="w", policy=policy).to(), middlewares=[recorder])
    flow.run()
    await flow.emit(make_message(1))
    await flow.fetch()
    sleeps = [e.extra["sleep_s"] for e in recorder.events if e.event_type == "node_retry"]
    assert sleeps == pytest.approx([0.01, 0.02, 0.02])


async def test_exhausted_retries_produce_a_flow_error(flows: Any) -> None:
    recorder = Recorder()
    policy = NodePolicy(validate="none", max_retries=1, backoff_base=0.0)
    flow = flows(
        Node(flaky(5), name="fragile", policy=policy).to(),
        middlewares=[recorder],
        emit_errors_to_rookery=True,
    )
    flow.run()
    message = make_message("x")
    await flow.emit(message)
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.code == "NODE_EXCEPTION"
    assert error.message == "Node 'fragile' raised ValueError: failure 2"
    assert (error.trace_id, error.node_name) == (message.trace_id, "fragile")
    assert error.metadata["attempt"] == 1
    assert error.metadata["exception_repr"] == "ValueError('failure 2')"
    failed = next(e for e in recorder.events if e.event_type == "node_failed")
    assert failed.error_payload is not None
    assert failed.error_payload["code"] == "NODE_EXCEPTION"
    assert flow.traces.active() == ()


async def test_timeouts_are_retried_then_reported(flows: Any) -> None:
    recorder = Recorder()

    async def sleepy(message: Any, ctx: Any) -> Any:
        await asyncio.sleep(1)
        return message

    policy = NodePolicy(validate="none", timeout_s=0.01, max_retries=1, backoff_base=0.0)
    flow = flows(
        Node(sleepy, policy=policy).to(), middlewares=[recorder], emit_errors_to_rookery=True
    )
    flow.run()
    await flow.emit(make_message(1))
    error = await flow.fetch()
    assert error.code == "NODE_TIMEOUT"
    assert error.message == "Node 'sleepy' timed out after 0.01s"
    assert error.metadata["timeout_s"] == 0.01
    assert recorder.kinds() == [
        ("node_start", 0),
        ("node_timeout", 0),
        ("node_retry", 1),
        ("node_start", 1),
        ("node_timeout", 1),
        ("node_failed", 1),
    ]


async def test_timeout_of_untracked_payloads(flows: Any) -> None:
    async def sleepy(message: Any, ctx: Any) -> Any:
        await asyncio.sleep(1)

    recorder = Recorder()
    flow = flows(
        Node(sleepy, policy=NodePolicy(validate="none", timeout_s=0.01)).to(),
        middlewares=[recorder],
    )
    flow.run()
    await flow.emit({"no": "trace id"})
    for _ in range(100):
        if any(e.event_type == "node_failed" for e in recorder.events):
            break
        await asyncio.sleep(0.01)
    failed = next(e for e in recorder.events if e.event_type == "node_failed")
    assert failed.trace_id is None
    assert failed.extra["flow_error"]["code"] == "NODE_TIMEOUT"


class Query(BaseModel):
    text: str
    limit: int


async def test_invalid_payload_becomes_a_flow_error_naming_node_and_trace(flows: Any) -> None:
    async def search(query: Query, ctx: Any) -> Query:
        return query

    registry = ModelRegistry()
    registry.register("search", Query, Query)
    flow = flows(Node(search).to(), emit_errors_to_rookery=True)
    flow.run(registry=registry)
    bad = Message(payload={"text": "q"}, headers=make_message().headers)  # envelope, not Query
    await flow.emit(bad)
    error = await asyncio.wait_for(flow.fetch(), 2)
    assert isinstance(error, FlowError)
    assert (error.node_name, error.trace_id) == ("search", bad.trace_id)
    assert error.exception_type == "ValidationError"
    assert "Input should be a valid dictionary or instance of Query" in error.message
    assert error.metadata["validation_errors"][0]["type"] == "model_type"


async def test_valid_dicts_are_coerced_and_outputs_checked(flows: Any) -> None:
    async def search(query: Query, ctx: Any) -> dict[str, Any]:
        return {"text": query.text.upper(), "limit": str(query.limit)}

    registry = ModelRegistry()
    registry.register("search", Query, Query)
    flow = flows(Node(search).to())
    flow.run(registry=registry)
    await flow.emit({"text": "q", "limit": "3"})
    assert await flow.fetch() == Query(text="Q", limit=3)


async def test_message_output_guardrail_warns(flows: Any) -> None:
    async def unwrap(message: Message, ctx: Any) -> Any:
        return message.payload

    registry = ModelRegistry()
    registry.register("unwrap", Message, Message)
    flow = flows(Node(unwrap, policy=NodePolicy(validate="in")).to())
    flow.run(registry=registry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await flow.emit(make_message("raw"))
        assert await flow.fetch() == "raw"
    texts = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert texts == [
        "Node 'unwrap' is registered for Message -> Message outputs but returned str. "
        "Return a penguiflow.types.Message to preserve headers, trace_id, and meta."
    ]


async def test_stale_message_is_answered_without_running_the_node(flows: Any) -> None:
    calls: list[Any] = []
    recorder = Recorder()

    async def work(message: Any, ctx: Any) -> Any:
        calls.append(message)
        return message

    flow = flows(Node(work, policy=NodePolicy(validate="none")).to(), middlewares=[recorder])
    flow.run()
    stale = make_message("late", deadline_s=time.time() - 1)
    await flow.emit(stale)
    answer = await flow.fetch()
    assert answer.payload == FinalAnswer(text="Deadline exceeded")
    assert answer.trace_id == stale.trace_id
    assert calls == []
    assert recorder.kinds() == [("deadline_skip", 0)]
    assert recorder.events[0].extra["deadline_s"] == stale.deadline_s


async def test_deadline_is_checked_between_retries(flows: Any) -> None:
    recorder = Recorder()
    func = flaky(100)
    policy = NodePolicy(validate="none", max_retries=50, backoff_base=0.05, backoff_mult=1.0)
    flow = flows(Node(func, name="w", policy=policy).to(), middlewares=[recorder])
    flow.run()
    started = time.monotonic()
    await flow.emit(make_message("x", deadline_s=time.time() + 0.12))
    answer = await asyncio.wait_for(flow.fetch(), 2)
    elapsed = time.monotonic() - started
    # Fixed defect: retrying stops at the deadline with the documented final answer.
    assert answer.payload == FinalAnswer(text="Deadline exceeded")
    assert func.calls["n"] <= 4
    assert elapsed < 1.0
    assert recorder.kinds()[-1][0] == "deadline_skip"
    assert "node_failed" not in [k for k, _ in recorder.kinds()]


async def test_bare_payloads_flow_untracked(flows: Any) -> None:
    async def add_one(value: int, ctx: Any) -> int:
        return value + 1

    a = Node(add_one, name="a", policy=NodePolicy(validate="none"))
    b = Node(add_one, name="b", policy=NodePolicy(validate="none"))
    flow = flows(a.to(b), b.to())
    flow.run()
    await flow.emit(1)
    assert await flow.fetch() == 3
    assert flow.traces.active() == ()


async def test_returning_none_emits_nothing(flows: Any) -> None:
    recorder = Recorder()

    async def swallow(message: Any, ctx: Any) -> None:
        return None

    flow = flows(Node(swallow, policy=NodePolicy(validate="none")).to(), middlewares=[recorder])
    flow.run()
    message = make_message(1)
    await flow.emit(message)
    for _ in range(50):
        if not flow.traces.known(message.trace_id):
            break
        await asyncio.sleep(0.005)
    assert not flow.traces.known(message.trace_id)
    assert recorder.kinds() == [("node_start", 0), ("node_success", 0)]
    assert flow.contexts[ROOKERY].queue_depth_in() == 0


class Unprintable(Exception):
    """An exception whose own `__str__` and `__repr__` raise."""

    def __str__(self) -> str:
        raise ValueError("no text")

    def __repr__(self) -> str:
        raise ValueError("no repr")


async def test_a_node_raising_an_unprintable_exception_still_fails_its_trace(
    flows: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    async def broken(message: Any, ctx: Any) -> Any:
        raise Unprintable()

    policy = NodePolicy(validate="none", max_retries=1, backoff_base=0.0)  # retried, then failed
    flow = flows(Node(broken, name="broken", policy=policy).to(), emit_errors_to_rookery=True)
    flow.run()
    message = make_message("x")
    await flow.emit(message)
    error = await asyncio.wait_for(flow.fetch(), timeout=5)
    assert isinstance(error, FlowError)
    assert (
        error.message == "Node 'broken' raised Unprintable: <Unprintable: str() raised ValueError>"
    )
    assert error.metadata["exception_repr"] == "<Unprintable: repr() raised ValueError>"
    assert isinstance(error.original_exc, Unprintable)
    assert 'error="Unprintable: <Unprintable: str() raised ValueError>"' in caplog.text
    assert "Logging error" not in capfd.readouterr().err
    assert flow.traces.active() == ()
