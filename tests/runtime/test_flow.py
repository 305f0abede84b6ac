"""Flow lifecycle, ingress/egress, stores, buses and middlewares."""

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import (
    BusEnvelope,
    FlowEvent,
    Headers,
    Message,
    ModelRegistry,
    Node,
    NodePolicy,
    RemoteBinding,
    StoredEvent,
    create,
)
from penguiflow.errors import FlowStoppedError, RegistryCoverageError, UnknownTargetError
from penguiflow.observation import FlowState

from ..conftest import MemoryStore, make_message


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def node(name: str, func: Any = passthrough, **policy: Any) -> Node:
    policy.setdefault("validate", "none")
    return Node(func, name=name, policy=NodePolicy(**policy))


async def test_message_travels_a_chain(flows: Any) -> None:
    async def shout(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": message.payload.upper()})

    a, b = node("a", shout), node("b")
    flow = flows(a.to(b), b.to())
    flow.run()
    sent = make_message("hello")
    await flow.emit(sent)
    result = await flow.fetch()
    assert result.payload == "HELLO"
    assert result.trace_id == sent.trace_id
    assert flow.traces.active() == ()  # fetched: the trace is finished and forgotten


async def test_run_twice_and_stop_idempotent(flows: Any) -> None:
    flow = flows(node("a").to())
    flow.run()
    with pytest.raises(RuntimeError, match="PenguiFlow already running"):
        flow.run()
    await flow.stop()
    await flow.stop()
    flow.run()  # may run again after stop


async def test_registry_gap_fails_fast_and_leaves_flow_runnable(flows: Any) -> None:
    class Payload(BaseModel):
        text: str

    checked, unchecked = node("checked", validate="both"), node("unchecked", validate="none")
    other = node("other", validate="in")
    flow = flows(checked.to(other), other.to(unchecked), unchecked.to())
    with pytest.raises(RegistryCoverageError) as info:
        flow.run(registry=ModelRegistry())
    assert str(info.value) == (
        "ModelRegistry is missing entries for nodes requiring validation: checked, other"
    )
    assert info.value.node_names == ("checked", "other")
    assert isinstance(info.value, RuntimeError)
    # Fixed defect: the failed run() did not leave the flow marked running.
    registry = ModelRegistry()
    registry.register("checked", Payload, Payload)
    registry.register("other", Payload, Payload)
    flow.run(registry=registry)
    assert flow.registry is registry
    await flow.emit({"text": "hi"})
    assert await flow.fetch() == Payload(text="hi")


def test_run_requires_a_running_loop() -> None:
    from penguiflow import create

    flow = create(node("a").to())
    with pytest.raises(RuntimeError):
        flow.run()
    # ... and the failure did not mark it running.
    assert flow.state is FlowState.CREATED


async def test_emit_after_stop_is_refused_until_run(flows: Any) -> None:
    flow = flows(node("a").to())
    await flow.emit(make_message(1))  # before the first run: waits in the queue
    flow.run()
    assert (await flow.fetch()).payload == 1
    await flow.stop()
    with pytest.raises(FlowStoppedError, match="call run\\(\\) again"):
        await flow.emit(make_message(2))
    with pytest.raises(FlowStoppedError):
        flow.emit_nowait(make_message(2))
    flow.run()
    await flow.emit(make_message(3))
    assert (await flow.fetch()).payload == 3


async def test_queued_messages_survive_stop_and_run(flows: Any) -> None:
    gate = asyncio.Event()

    async def wait_gate(message: Any, ctx: Any) -> Any:
        await gate.wait()
        return message

    a, b = node("a"), node("b", wait_gate)
    flow = flows(a.to(b), b.to())
    flow.run()
    for i in range(3):
        await flow.emit(make_message(i))
    await asyncio.sleep(0.01)
    await flow.stop()  # b was blocked on the gate: its message is dropped, the rest stay queued
    gate.set()
    flow.run()
    results = sorted([(await flow.fetch()).payload for _ in range(2)])
    assert results == [1, 2]


async def test_emit_to_names_ingress_nodes(flows: Any) -> None:
    a, b = node("a"), node("b")
    flow = flows(a.to(), b.to())
    flow.run()
    await flow.emit(make_message("only b"), to=b)
    result = await flow.fetch()
    assert result.payload == "only b"
    assert flow.contexts[a].queue_depth_in() == 0
    c = node("c")
    inner = flows(a.to(c), c.to())
    with pytest.raises(UnknownTargetError, match="Unknown target c for OpenSea"):
        await inner.emit(make_message(1), to=c)


async def test_fetch_from_named_egress_and_errors(flows: Any) -> None:
    a, b = node("a"), node("b")
    flow = flows(a.to(), b.to())
    flow.run()
    await flow.emit(make_message("x"), to=a)
    assert (await flow.fetch(from_=a)).payload == "x"
    await flow.emit(make_message("y"))
    got = {(await flow.fetch_any()).payload, (await flow.fetch_any()).payload}
    assert got == {"y"}
    ghost = node("ghost")
    with pytest.raises(KeyError, match="Unknown target ghost for Rookery"):
        await flow.fetch(from_=ghost)


async def test_fetch_without_egress_raises() -> None:
    from penguiflow import create

    a, b = node("a"), node("b")
    flow = create(a.to(b), b.to(a), allow_cycles=True)  # every node has a parent: no egress
    with pytest.raises(RuntimeError, match="context has no incoming floes to fetch from"):
        await flow.fetch()


async def test_emit_nowait_full_queue_does_not_leak_pending(flows: Any) -> None:
    a = node("a")
    flow = flows(a.to(), queue_maxsize=1)
    first = make_message(1)
    flow.emit_nowait(first)
    second = make_message(2)
    with pytest.raises(asyncio.QueueFull):
        flow.emit_nowait(second)
    # Fixed defect: the refused message is not counted as pending for its trace.
    assert not flow.traces.known(second.trace_id)
    assert flow.trace_status(first.trace_id).pending == 1


async def test_bounded_queues_apply_backpressure(flows: Any) -> None:
    a = node("a")
    flow = flows(a.to(), queue_maxsize=2)
    flow.run()
    # Nobody fetches: capacity is 2 (OpenSea->a) + 1 (held by a) + 2 (a->Rookery).
    emits = [asyncio.create_task(flow.emit(make_message(i))) for i in range(8)]
    await asyncio.sleep(0.05)
    assert all(f.queue.qsize() <= 2 for f in flow.edges)
    assert sum(task.done() for task in emits) == 5
    payloads = [(await flow.fetch()).payload for _ in range(8)]
    await asyncio.gather(*emits)
    assert payloads == list(range(8))


async def test_state_store_receives_every_event(flows: Any) -> None:
    store = MemoryStore()
    a = node("a")
    flow = flows(a.to(), state_store=store)
    flow.run()
    message = make_message(1)
    await flow.emit(message)
    await flow.fetch()
    history = await flow.load_history(message.trace_id)
    assert [e.kind for e in history] == ["node_start", "node_success"]
    assert history[0].payload["event"] == "node_start"
    await flow.save_remote_binding(RemoteBinding(message.trace_id, None, "task", "http://agent"))
    assert store.bindings[0].task_id == "task"
    await flow.stop()
    assert [e.kind for e in store.events][-1] == "node_cancelled"


async def test_load_history_without_store(flows: Any) -> None:
    flow = flows(node("a").to())
    with pytest.raises(RuntimeError, match="PenguiFlow was created without a state_store"):
        await flow.load_history("t")
    await flow.save_remote_binding(RemoteBinding("t", None, "k", "u"))  # no store: no-op


async def test_failing_store_and_middleware_are_logged_not_raised(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(MemoryStore):
        async def save_event(self, event: StoredEvent) -> None:
            raise OSError("disk full")

        async def save_remote_binding(self, binding: RemoteBinding) -> None:
            raise OSError("disk full")

    seen: list[str] = []

    async def broken_middleware(event: FlowEvent) -> None:
        raise ValueError("middleware bug")

    async def recorder(event: FlowEvent) -> None:
        seen.append(event.event_type)

    flow = flows(node("a").to(), state_store=BrokenStore(), middlewares=[broken_middleware])
    flow.add_middleware(recorder)
    flow.run()
    await flow.emit(make_message(1))
    assert (await flow.fetch()).payload == 1
    await flow.save_remote_binding(RemoteBinding("t", None, "k", "u"))
    messages = [r.getMessage() for r in caplog.records]
    assert "state_store_save_failed" in messages
    assert "middleware_error" in messages
    assert "state_store_binding_failed" in messages
    assert seen == ["node_start", "node_success"]  # later middlewares still ran


async def test_message_bus_sees_every_edge(flows: Any) -> None:
    published: list[BusEnvelope] = []

    class Bus:
        async def publish(self, envelope: BusEnvelope) -> None:
            published.append(envelope)

    a, b = node("a"), node("b")
    flow = flows(a.to(b), b.to(), message_bus=Bus())
    flow.run()
    message = make_message({"k": 1}, meta={"m": 1})
    await flow.emit(message)
    await flow.fetch()
    assert [e.edge for e in published] == ["OpenSea->a", "a->b", "b->Rookery"]
    first = published[0]
    assert (first.source, first.target, first.trace_id) == ("OpenSea", "a", message.trace_id)
    assert first.payload is message
    assert first.headers == {"tenant": "acme", "topic": None, "priority": 0}
    assert first.meta == {"m": 1}
    assert first.meta is not message.meta
    flow.emit_nowait({"bare": True})
    await flow.fetch()
    bare = [e for e in published if e.payload == {"bare": True}]
    assert bare[0].headers is None
    assert bare[0].trace_id is None


async def test_failing_bus_does_not_block_delivery(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class DownBus:
        async def publish(self, envelope: BusEnvelope) -> None:
            raise ConnectionError("broker down")

    flow = flows(node("a").to(), message_bus=DownBus())
    flow.run()
    await flow.emit(make_message(7))
    assert (await flow.fetch()).payload == 7
    failures = [r for r in caplog.records if r.getMessage() == "message_bus_publish_failed"]
    assert failures
    assert failures[0].edge == "OpenSea->a"


async def test_external_tasks_are_cancelled_by_stop(flows: Any) -> None:
    flow = flows(node("a").to())
    flow.run()
    external = asyncio.create_task(asyncio.sleep(60))
    flow.register_external_task("trace", external)
    flow.register_external_task(None, asyncio.create_task(asyncio.sleep(0)))  # ignored
    await flow.stop()
    assert external.cancelled()


async def test_record_remote_event_goes_through_the_pipeline(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="penguiflow.core")
    seen: list[FlowEvent] = []

    async def recorder(event: FlowEvent) -> None:
        seen.append(event)

    a = node("a")
    flow = flows(a.to(), middlewares=[recorder])
    await flow.record_remote_event(
        event="remote_call_start",
        node=a,
        context=flow.contexts[a],
        trace_id="t",
        latency_ms=0.0,
        level=logging.DEBUG,
        extra={"remote_skill": "search", "name": "clashes with LogRecord.name"},
    )
    assert seen[0].event_type == "remote_call_start"
    assert seen[0].extra["remote_skill"] == "search"
    assert seen[0].attempt == 0
    # A key clashing with a LogRecord attribute is renamed in the log, not a crash.
    record = next(r for r in caplog.records if r.getMessage() == "remote_call_start")
    assert record.extra_name == "clashes with LogRecord.name"  # type: ignore[attr-defined]


async def test_stop_right_after_fetch_keeps_every_event_already_started() -> None:
    from penguiflow.state import InMemoryStateStore

    class SlowStore(InMemoryStateStore):
        async def save_event(self, event: Any) -> None:
            await asyncio.sleep(0.05)
            await super().save_event(event)

    async def echo(message: Message, ctx: Any) -> Message:
        return message

    store = SlowStore()
    flow = create(Node(echo, policy=NodePolicy(validate="none")).to(), state_store=store)
    flow.run()
    sent = Message(payload="q", headers=Headers(tenant="t"))
    await flow.emit(sent)
    await asyncio.wait_for(flow.fetch(), 2)  # node_success is being saved right now
    await flow.stop()
    kinds = [event.kind for event in await store.load_history(sent.trace_id)]
    assert kinds[-1] == "node_success"
