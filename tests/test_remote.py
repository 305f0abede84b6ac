"""Remote nodes inside real flows, talking to in-process fake agents (the transport edge)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

import penguiflow
from penguiflow import (
    FlowEvent,
    Message,
    Node,
    NodePolicy,
    RemoteBinding,
    StreamChunk,
)
from penguiflow.remote import (
    RemoteCallRequest,
    RemoteCallResult,
    RemoteNode,
    RemoteStreamEvent,
)

from .conftest import MemoryStore, make_message

AGENT = "https://agents.example/research"


def research_node(agent: Any, **options: Any) -> Node:
    """The remote "research" skill of `AGENT`, as a node (validation off)."""
    return RemoteNode(
        transport=agent,
        skill="research",
        agent_url=AGENT,
        name="research",
        policy=NodePolicy(validate="none"),
        **options,
    )


class FakeAgent:
    """An in-process remote agent implementing `RemoteTransport`.

    `send` echoes the payload; `stream` replays `script`, then, with `hang=True`,
    keeps the task running until it is cancelled.
    """

    def __init__(
        self,
        *,
        script: Sequence[RemoteStreamEvent] = (),
        hang: bool = False,
        failures: int = 0,
        cancel_error: Exception | None = None,
    ) -> None:
        self.script = list(script)
        self.hang = hang
        self.failures = failures
        self.cancel_error = cancel_error
        self.requests: list[RemoteCallRequest] = []
        self.cancels: list[tuple[str, str]] = []
        self.cancelled = asyncio.Event()
        self.stream_closed = False

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        self.requests.append(request)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("agent unavailable")
        return RemoteCallResult(
            result=f"echo:{request.message.payload}", context_id="ctx-1", task_id="task-1"
        )

    async def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]:
        self.requests.append(request)
        try:
            for event in self.script:
                yield event
            if self.hang:
                await asyncio.Event().wait()
        finally:
            self.stream_closed = True

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        self.cancels.append((agent_url, task_id))
        self.cancelled.set()
        await asyncio.sleep(0.01)  # a network round trip
        if self.cancel_error is not None:
            raise self.cancel_error


class Recorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def kinds(self, trace_id: str | None) -> list[str]:
        return [e.event_type for e in self.events if e.trace_id == trace_id]

    def first(self, kind: str) -> FlowEvent:
        return next(e for e in self.events if e.event_type == kind)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2.0):
        while not condition():
            await asyncio.sleep(0.001)


def json_size(value: Any) -> int:
    return len(json.dumps(value).encode("utf-8"))


def test_remote_node_is_a_plain_node_with_keyword_only_parameters() -> None:
    agent = FakeAgent()
    node = RemoteNode(transport=agent, skill="search", agent_url=AGENT, name="research")

    assert isinstance(node, Node)
    assert node.name == "research"
    assert node.policy == NodePolicy()
    assert penguiflow.RemoteNode is RemoteNode
    with pytest.raises(TypeError):
        RemoteNode(agent, "search", AGENT, "research")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RemoteNode(  # type: ignore[call-arg]
            transport=agent, skill="s", agent_url=AGENT, name="r", catalog=[]
        )


async def test_unary_call_returns_the_remote_result_and_stores_the_binding(flows: Any) -> None:
    agent, store = FakeAgent(), MemoryStore()
    remote = RemoteNode(
        transport=agent,
        skill="search",
        agent_url=AGENT,
        name="research",
        agent_card={"name": "Researcher"},
        policy=NodePolicy(validate="none", timeout_s=5.0),
    )
    flow = flows(remote.to(), state_store=store)
    flow.run()
    message = make_message("penguins", meta={"user": "u1"})

    await flow.emit(message)
    assert await flow.fetch() == "echo:penguins"

    (request,) = agent.requests
    assert request.message.trace_id == message.trace_id
    assert (request.skill, request.agent_url, request.timeout_s) == ("search", AGENT, 5.0)
    assert request.agent_card == {"name": "Researcher"}
    assert request.metadata == {"user": "u1"}
    assert store.bindings == [RemoteBinding(message.trace_id, "ctx-1", "task-1", AGENT)]

    start, success = store.remote(message.trace_id)
    assert (start.kind, success.kind) == ("remote_call_start", "remote_call_success")
    request_bytes = json_size(message.model_dump(mode="json"))
    assert start.payload["remote_request_bytes"] == request_bytes
    assert start.payload["remote_agent_url"] == AGENT
    assert "remote_task_id" not in start.payload
    assert success.payload["remote_skill"] == "search"
    assert success.payload["remote_transport"] == "FakeAgent"
    assert success.payload["remote_streaming"] is False
    assert success.payload["remote_task_id"] == "task-1"
    assert success.payload["remote_context_id"] == "ctx-1"
    assert success.payload["remote_response_bytes"] == json_size("echo:penguins")
    assert success.payload["remote_stream_events"] == 0
    assert success.payload["remote_status"] == "success"

    # The call is over: its cancel watcher is gone and a late cancel reaches nobody.
    await until(lambda: not flow.external_tasks())
    assert await flow.cancel(message.trace_id) is False
    assert agent.cancels == []


async def test_streaming_chunks_are_forwarded_in_order_then_the_result(flows: Any) -> None:
    agent = FakeAgent(
        script=[
            RemoteStreamEvent(
                text="Pen", task_id="task-7", context_id="ctx-7", agent_url="https://b.example"
            ),
            RemoteStreamEvent(text="gu", meta={"lang": "en", "conf": 0.9}),
            RemoteStreamEvent(meta={"progress": 0.5}),
            RemoteStreamEvent(text="ins", done=True, result={"answer": "Penguins"}),
        ]
    )
    store, recorder = MemoryStore(), Recorder()
    remote = RemoteNode(
        transport=agent,
        skill="write",
        agent_url=AGENT,
        name="writer",
        policy=NodePolicy(validate="none"),
        streaming=True,
    )
    received: list[Any] = []

    async def collect(item: Any, ctx: Any) -> Any:
        received.append(item)
        return item

    sink = Node(collect, policy=NodePolicy(validate="none"))
    flow = flows(remote.to(sink), sink.to(), state_store=store, middlewares=[recorder])
    flow.run()
    message = make_message("topic")
    await flow.emit(message)

    chunks = [await flow.fetch() for _ in range(3)]
    final = await flow.fetch()

    assert all(isinstance(c, Message) and isinstance(c.payload, StreamChunk) for c in chunks)
    payloads = [c.payload for c in chunks]
    assert [(p.seq, p.text, p.done) for p in payloads] == [
        (0, "Pen", False),
        (1, "gu", False),
        (2, "ins", True),
    ]
    assert {p.stream_id for p in payloads} == {message.trace_id}
    assert payloads[1].meta == {"lang": "en", "conf": 0.9}
    assert {c.trace_id for c in chunks} == {message.trace_id}
    assert final == {"answer": "Penguins"}
    assert received[-1] == final

    assert store.bindings == [
        RemoteBinding(message.trace_id, "ctx-7", "task-7", "https://b.example")
    ]
    stream_events = [e for e in recorder.events if e.event_type == "remote_stream_event"]
    assert [e.extra["remote_stream_seq"] for e in stream_events] == [0, 1, 2, 3]
    assert stream_events[0].extra["remote_task_id"] == "task-7"
    assert stream_events[0].extra["remote_agent_url"] == "https://b.example"
    assert stream_events[0].extra["remote_chunk_bytes"] == 3
    meta_bytes = json_size({"lang": "en", "conf": 0.9})
    assert stream_events[1].extra["remote_chunk_bytes"] == 2 + meta_bytes
    assert stream_events[1].extra["remote_chunk_meta_keys"] == ["conf", "lang"]
    assert [e.extra["remote_chunk_done"] for e in stream_events] == [False, False, False, True]
    success = recorder.first("remote_call_success")
    assert success.extra["remote_stream_events"] == 4
    assert success.extra["remote_response_bytes"] == sum(
        e.extra.get("remote_chunk_bytes", 0) for e in stream_events
    ) + json_size({"answer": "Penguins"})
    assert agent.stream_closed
    assert agent.cancels == []


async def test_cancelling_the_trace_cancels_the_remote_task(flows: Any) -> None:
    agent = FakeAgent(script=[RemoteStreamEvent(text="thinking", task_id="task-9")], hang=True)
    store, recorder = MemoryStore(), Recorder()
    remote = research_node(agent, streaming=True)
    flow = flows(remote.to(), state_store=store, middlewares=[recorder])
    flow.run()
    doomed, other = make_message("doomed"), make_message("other")
    await flow.emit(doomed)

    first = await flow.fetch()
    assert first.payload.text == "thinking"
    assert await flow.cancel(doomed.trace_id) is True
    await asyncio.wait_for(agent.cancelled.wait(), 2.0)
    await until(lambda: "node_trace_cancelled" in recorder.kinds(doomed.trace_id))

    assert agent.cancels == [(AGENT, "task-9")]
    assert store.bindings == [RemoteBinding(doomed.trace_id, None, "task-9", AGENT)]
    kinds = recorder.kinds(doomed.trace_id)
    # The remote agent is told before the invocation counts as finished.
    assert kinds.index("remote_call_cancelled") < kinds.index("node_trace_cancelled")
    assert "remote_call_error" not in kinds
    assert "remote_call_success" not in kinds
    cancelled = recorder.first("remote_call_cancelled")
    assert cancelled.extra["remote_cancel_reason"] == "trace_cancel"
    assert cancelled.extra["remote_status"] == "cancelled"
    assert cancelled.extra["remote_task_id"] == "task-9"
    assert agent.stream_closed

    # The node is free again for other traces.
    agent.hang = False
    await flow.emit(other)
    assert (await flow.fetch()).payload.text == "thinking"


async def test_cancel_failure_is_reported_and_binding_can_be_skipped(flows: Any) -> None:
    agent = FakeAgent(
        script=[RemoteStreamEvent(text="...", task_id="task-3", context_id="ctx-3")],
        hang=True,
        cancel_error=ConnectionResetError("gone"),
    )
    store, recorder = MemoryStore(), Recorder()
    remote = RemoteNode(
        transport=agent,
        skill="research",
        agent_url=AGENT,
        name="research",
        policy=NodePolicy(validate="none"),
        streaming=True,
        record_binding=False,
    )
    flow = flows(remote.to(), state_store=store, middlewares=[recorder])
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    await flow.fetch()

    assert await flow.cancel(message.trace_id) is True
    await until(lambda: "node_trace_cancelled" in recorder.kinds(message.trace_id))

    assert store.bindings == []
    assert agent.cancels == [(AGENT, "task-3")]
    error = recorder.first("remote_cancel_error")
    assert error.extra["remote_error"] == repr(ConnectionResetError("gone"))
    assert error.extra["remote_status"] == "cancel_error"
    assert error.extra["remote_context_id"] == "ctx-3"
    assert "remote_call_cancelled" not in recorder.kinds(message.trace_id)


async def test_remote_errors_are_recorded_and_each_retry_is_a_new_call(flows: Any) -> None:
    agent, recorder = FakeAgent(failures=1), Recorder()
    remote = RemoteNode(
        transport=agent,
        skill="search",
        agent_url=AGENT,
        name="research",
        policy=NodePolicy(validate="none", max_retries=1, backoff_base=0.001),
    )
    flow = flows(remote.to(), middlewares=[recorder])
    flow.run()
    message = make_message("retry me")
    await flow.emit(message)

    assert await flow.fetch() == "echo:retry me"
    assert len(agent.requests) == 2
    remote_kinds = [k for k in recorder.kinds(message.trace_id) if k.startswith("remote_")]
    assert remote_kinds == [
        "remote_call_start",
        "remote_call_error",
        "remote_call_start",
        "remote_call_success",
    ]
    error = recorder.first("remote_call_error")
    assert error.extra["remote_error"] == repr(ConnectionError("agent unavailable"))
    assert error.extra["remote_status"] == "error"
    assert error.attempt == 0
    assert "node_retry" in recorder.kinds(message.trace_id)


async def test_pre_cancelled_trace_cancels_the_remote_task(flows: Any) -> None:
    class StubbornAgent(FakeAgent):
        """A transport that ignores local cancellation and finishes its call."""

        def __init__(self) -> None:
            super().__init__()
            self.started = asyncio.Event()
            self.swallowed = 0

        async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.swallowed += 1  # deliberately misbehaving transport under test
            return RemoteCallResult(result="late", task_id="task-5", agent_url="https://c.example")

    agent, store, recorder = StubbornAgent(), MemoryStore(), Recorder()
    remote = RemoteNode(
        transport=agent,
        skill="slow",
        agent_url=AGENT,
        name="slow",
        policy=NodePolicy(validate="none"),
    )
    flow = flows(remote.to(), state_store=store, middlewares=[recorder])
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    await agent.started.wait()

    assert await flow.cancel(message.trace_id) is True
    await until(lambda: "node_trace_cancelled" in recorder.kinds(message.trace_id))

    assert agent.cancels == [("https://c.example", "task-5")]
    assert store.bindings == [RemoteBinding(message.trace_id, None, "task-5", "https://c.example")]
    cancelled = recorder.first("remote_call_cancelled")
    assert cancelled.extra["remote_cancel_reason"] == "pre_cancelled"
    assert "remote_call_success" not in recorder.kinds(message.trace_id)


async def test_non_message_input_fails_the_node_without_calling_the_agent(flows: Any) -> None:
    agent, recorder = FakeAgent(), Recorder()
    remote = RemoteNode(
        transport=agent,
        skill="search",
        agent_url=AGENT,
        name="research",
        policy=NodePolicy(validate="none"),
    )
    flow = flows(remote.to(), middlewares=[recorder])
    flow.run()
    await flow.emit({"not": "a message"})
    await until(lambda: any(e.event_type == "node_failed" for e in recorder.events))

    failed = recorder.first("node_failed")
    assert "Remote nodes require penguiflow.types.Message inputs" in failed.extra["exception"]
    assert agent.requests == []
    assert not [e for e in recorder.events if e.event_type.startswith("remote_")]


async def test_stream_that_is_a_coroutine_is_a_remote_error(flows: Any) -> None:
    class AwaitableStream(FakeAgent):
        async def stream(  # type: ignore[override]
            self, request: RemoteCallRequest
        ) -> AsyncIterator[RemoteStreamEvent]:
            return FakeAgent.stream(self, request)

    agent, recorder = AwaitableStream(), Recorder()
    remote = RemoteNode(
        transport=agent,  # type: ignore[arg-type]  # the mistake under test
        skill="s",
        agent_url=AGENT,
        name="broken",
        policy=NodePolicy(validate="none"),
        streaming=True,
    )
    flow = flows(remote.to(), middlewares=[recorder])
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    await until(lambda: "node_failed" in recorder.kinds(message.trace_id))

    error = recorder.first("remote_call_error")
    assert error.extra["remote_error"].startswith("TypeError(")
    assert "async iterator" in error.extra["remote_error"]


async def test_timeouts_and_stop_never_cancel_remotely(flows: Any) -> None:
    agent, recorder = (
        FakeAgent(script=[RemoteStreamEvent(text="...", task_id="task-4")], hang=True),
        Recorder(),
    )
    remote = RemoteNode(
        transport=agent,
        skill="research",
        agent_url=AGENT,
        name="research",
        policy=NodePolicy(validate="none", timeout_s=0.05),
        streaming=True,
    )
    flow = flows(remote.to(), middlewares=[recorder])
    flow.run()
    timed_out = make_message("slow")
    await flow.emit(timed_out)
    await until(lambda: "node_failed" in recorder.kinds(timed_out.trace_id))

    assert "node_timeout" in recorder.kinds(timed_out.trace_id)
    assert "remote_call_error" not in recorder.kinds(timed_out.trace_id)

    remote.policy = NodePolicy(validate="none")
    stopped = make_message("stopped")
    await flow.emit(stopped)
    await until(lambda: "remote_stream_event" in recorder.kinds(stopped.trace_id))
    await flow.stop()

    assert agent.cancels == []
    assert "remote_call_cancelled" not in recorder.kinds(stopped.trace_id)


async def test_cancel_while_saving_the_binding_still_reaches_the_agent(flows: Any) -> None:
    class SlowStore(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.saving = asyncio.Event()

        async def save_remote_binding(self, binding: RemoteBinding) -> None:
            self.saving.set()
            await asyncio.sleep(10)

    agent, store, recorder = (
        FakeAgent(script=[RemoteStreamEvent(text="...", task_id="task-6")]),
        SlowStore(),
        Recorder(),
    )
    remote = research_node(agent, streaming=True)
    flow = flows(remote.to(), state_store=store, middlewares=[recorder])
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    await store.saving.wait()

    assert await flow.cancel(message.trace_id) is True
    await until(lambda: "node_trace_cancelled" in recorder.kinds(message.trace_id))

    assert agent.cancels == [(AGENT, "task-6")]
    kinds = recorder.kinds(message.trace_id)
    assert kinds.index("remote_call_cancelled") < kinds.index("node_trace_cancelled")
