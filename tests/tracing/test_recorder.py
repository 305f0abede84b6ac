"""The recorder: flow traces and planner runs saved to a store, without harming them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from penguiflow import Message, Node, NodePolicy
from penguiflow.errors import InvalidArgumentError
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.tracing import ContentPolicy, FlowTracer, Recorder, Span

from ..conftest import make_message


def node(func: Any, name: str, **policy: Any) -> Node:
    return Node(func, name=name, policy=NodePolicy(validate="none", **policy))


async def double(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload * 2})


async def test_a_flow_trace_is_recorded_with_a_span_per_node_attempt(
    flows: Any, tmp_path: Any
) -> None:
    attempts = {"n": 0}

    async def flaky(message: Message, ctx: Any) -> Message:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ValueError("first try fails")
        return message

    first = node(double, "double")
    second = node(flaky, "flaky", max_retries=1, backoff_base=0.001)
    flow = flows(first.to(second), second.to())
    store = SQLiteStateStore(tmp_path / "state.db")
    recorder = Recorder(store, flush_interval_s=0)
    recorder.attach(flow)
    flow.run()
    message = make_message(21)
    await flow.emit(message)
    result = await flow.fetch()
    assert result.payload == 42
    for _ in range(100):
        if flow.trace_status(message.trace_id).done:
            break
        await asyncio.sleep(0.005)
    await recorder.aclose()

    (run,) = await store.list_runs()
    assert run.run_id == message.trace_id
    assert run.kind == "trace"
    assert run.status == "ok"
    spans = await store.load_run(message.trace_id)
    nodes = [(s.name, s.attempt, s.status) for s in spans if s.kind == "node"]
    assert nodes == [("double", 1, "ok"), ("flaky", 1, "error"), ("flaky", 2, "ok")]
    failed = next(s for s in spans if s.status == "error")
    assert failed.error_type == "ValueError"
    assert "first try fails" in (failed.error_message or "")
    assert run.span_count == 4
    await store.close()


async def test_a_failed_trace_is_an_error_run(flows: Any) -> None:
    async def boom(message: Message, ctx: Any) -> Message:
        raise KeyError("missing")

    flow = flows(node(boom, "boom").to())
    store = InMemoryStateStore()
    async with Recorder(store, flush_interval_s=0) as recorder:
        recorder.attach(flow)
        flow.run()
        message = make_message(1)
        await flow.emit(message)
        for _ in range(200):
            if flow.trace_status(message.trace_id).done:
                break
            await asyncio.sleep(0.005)
    (run,) = await store.list_runs(status="error")
    assert run.error_type == "KeyError"


class BrokenStore(InMemoryStateStore):
    """A store whose span writes fail while `down` is set (an outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    async def save_spans(self, spans: Sequence[Span]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("store is down")
        await super().save_spans(spans)


class HangingStore(InMemoryStateStore):
    async def save_spans(self, spans: Sequence[Span]) -> None:
        await asyncio.sleep(3600)


async def test_a_store_outage_drops_spans_counts_and_logs_them(
    flows: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = BrokenStore()
    flow = flows(node(double, "double").to())
    recorder = Recorder(store, flush_interval_s=0)
    recorder.attach(flow)
    flow.run()
    with caplog.at_level(logging.WARNING, logger="penguiflow.tracing"):
        for n in range(5):
            await flow.emit(make_message(n))
            assert (await flow.fetch()).payload == n * 2
        await recorder.flush()
        store.down = False
        await flow.emit(make_message(10))
        assert (await flow.fetch()).payload == 20
        await asyncio.sleep(0.05)
        await recorder.aclose()
    assert recorder.dropped > 0
    assert store.attempts >= 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("recorder_dropping_spans" in m for m in messages) == 1  # once per outage
    assert any("recorder_recovered" in m for m in messages)
    assert len(await store.list_runs()) >= 1  # recorded again once the store is back


async def test_a_hanging_store_neither_blocks_nor_fails_the_run(flows: Any) -> None:
    flow = flows(node(double, "double").to())
    recorder = Recorder(HangingStore(), flush_interval_s=0, write_timeout_s=0.05, queue_size=8)
    recorder.attach(flow)
    flow.run()
    async with asyncio.timeout(5):
        for n in range(50):
            await flow.emit(make_message(n))
            assert (await flow.fetch()).payload == n * 2
    await recorder.aclose()
    assert recorder.dropped > 0


async def test_content_is_redacted_capped_or_switched_off() -> None:
    policy = ContentPolicy(max_chars=10)
    cleaned = policy.clean(
        {"api_key": "sk-abcdefghijklmnopqrstuv", "text": "Bearer abcdefghijklmnop " + "x" * 50}
    )
    assert cleaned["api_key"] == "[redacted]"
    assert cleaned["text"].startswith("[redacted]")
    assert "more characters" in cleaned["text"]

    store = InMemoryStateStore()
    recorder = Recorder(store, capture_content=False, flush_interval_s=0)
    span = Span("r" * 32, "s" * 32, None, "run", "x", 1.0, 2.0, "ok", content={"q": "secret"})
    recorder.span_ended(span)
    await recorder.aclose()
    (saved,) = await store.load_run("r" * 32)
    assert saved.content == {}


def test_recorder_options_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="queue_size"):
        Recorder(InMemoryStateStore(), queue_size=0)
    with pytest.raises(InvalidArgumentError, match="cannot record"):
        Recorder(InMemoryStateStore()).attach(object())


async def test_one_tracer_per_flow_and_close_unsubscribes(flows: Any) -> None:
    flow = flows(node(double, "double").to())
    tracer = FlowTracer.of(flow)
    assert FlowTracer.of(flow) is tracer
    assert len(flow.hooks.event) == 1
    tracer.close()
    assert len(flow.hooks.event) == 0


async def test_attributes_keep_token_counts_and_drop_quoted_content_when_off() -> None:
    store = InMemoryStateStore()
    attributes = {"prompt_tokens": 12, "total_tokens": 15, "query": "my secret question"}
    for capture, run_id in ((True, "a" * 32), (False, "b" * 32)):
        recorder = Recorder(store, capture_content=capture, flush_interval_s=0)
        recorder.span_ended(
            Span(run_id, "s" * 32, None, "run", "x", 1.0, 2.0, "ok", attributes=dict(attributes))
        )
        await recorder.aclose()
    (kept,) = await store.load_run("a" * 32)
    assert kept.attributes == attributes
    (dropped,) = await store.load_run("b" * 32)
    assert dropped.attributes == {"prompt_tokens": 12, "total_tokens": 15}


async def test_a_recorder_does_not_keep_the_planners_it_records_alive() -> None:
    import gc
    import weakref

    from penguiflow.planner import ReactPlanner
    from penguiflow.testkit import ScriptedLLMClient

    recorder = Recorder(InMemoryStateStore(), flush_interval_s=0)
    planner = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=[])
    recorder.attach(planner)
    alive = weakref.ref(planner)
    del planner
    gc.collect()
    assert alive() is None
    await recorder.aclose()


async def test_a_tracer_lets_go_of_the_oldest_trace_beyond_its_limit(
    flows: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import penguiflow.tracing.flow as flow_tracing

    monkeypatch.setattr(flow_tracing, "MAX_OPEN_TRACES", 3)
    flow = flows(node(double, "double").to())
    sink = Spans()
    FlowTracer.of(flow).sinks.append(sink)
    flow.run()
    messages = [make_message(n) for n in range(5)]
    with caplog.at_level(logging.WARNING, logger="penguiflow.tracing"):
        for message in messages:  # nobody fetches: no trace is ever done
            await flow.emit(message)
        for _ in range(200):
            if len([s for s in sink.ended if s.kind == "node"]) == 5:
                break
            await asyncio.sleep(0.005)
    abandoned = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert [messages[0].trace_id in m for m in abandoned[:1]] == [True]
    assert len(abandoned) == 2


class Spans:
    def __init__(self) -> None:
        self.ended: list[Span] = []

    def span_started(self, span: Span) -> None:
        pass

    def span_ended(self, span: Span) -> None:
        self.ended.append(span)


async def test_closing_during_an_outage_drops_the_queue_instead_of_waiting_on_it() -> None:
    recorder = Recorder(HangingStore(), write_timeout_s=0.05, batch_size=10)
    for n in range(1000):  # no loop ran the writer yet: all of it is queued
        recorder.span_ended(Span("r" * 32, f"{n:032x}", None, "run", "x", 1.0, 2.0, "ok"))
    async with asyncio.timeout(2):  # 100 batches x 0.05 s would take 5 s
        await recorder.aclose()
    assert recorder.dropped == 1000
    assert recorder.written == 0
