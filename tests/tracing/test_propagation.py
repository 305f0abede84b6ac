"""Trace context across processes: `inject`/`extract` round trips (OpenTelemetry's
span first, penguiflow's own span otherwise), invalid headers ignored, the bounded
registry; an A2A call carries the caller's context to the server, which adopts it
for the flow trace; a bus envelope carries it to a worker, which adopts it too."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.bus import BusEnvelope, ConsumerBus, Delivery, with_trace_context
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.bus.worker import consume_edge, run_worker
from penguiflow.remote import RemoteCallRequest
from penguiflow.spans import Span
from penguiflow.tracing.emitter import SpanEmitter
from penguiflow.tracing.propagation import MAX_ADOPTED, adopt, extract, inject, take

from ..bus.conftest import nats_bus, redis_bus
from .otel_fixtures import Memory, memory_provider

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def memory() -> Iterator[Memory]:
    with memory_provider() as value:
        yield value


@pytest.fixture
def our_span() -> Iterator[Span]:
    """A penguiflow span, current in this task (no sink: nothing is exported)."""
    emitter = SpanEmitter()
    span = emitter.open("tool", "lookup", parent=None)
    token = emitter.enter(span)
    yield span
    emitter.exit(token)


def injected() -> dict[str, str]:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


# -- inject / extract ------------------------------------------------------------------


def test_without_a_current_span_nothing_is_injected() -> None:
    assert injected() == {}


def test_our_current_span_is_injected_and_extracted_back(our_span: Span) -> None:
    expected = f"00-{our_span.run_id}-{our_span.span_id[:16]}-01"
    carrier = injected()
    assert carrier == {"traceparent": expected}
    assert extract(carrier) == expected


def test_a_current_opentelemetry_span_wins_over_ours(memory: Memory, our_span: Span) -> None:
    tracer = memory.provider.get_tracer("test")
    parent = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    with tracer.start_as_current_span(
        "call", context=trace.set_span_in_context(NonRecordingSpan(parent))
    ) as span:
        context = span.get_span_context()
        carrier = injected()
    assert carrier == {
        "traceparent": f"00-4bf92f3577b34da6a3ce929d0e0e4736-{context.span_id:016x}-01",
        "tracestate": "vendor=v1",
    }
    assert injected() == {"traceparent": f"00-{our_span.run_id}-{our_span.span_id[:16]}-01"}


def test_extract_finds_the_header_in_any_case() -> None:
    assert extract({"TraceParent": VALID, "other": "x"}) == VALID
    assert extract({"traceparent": f"  {VALID} "}) == VALID
    assert extract({"other": VALID}) is None


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        VALID.upper(),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        VALID + "-extra",  # version 00 has exactly four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        42,
    ],
)
def test_invalid_traceparents_are_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="penguiflow.tracing"):
        assert extract({"traceparent": value}) is None
    assert [r.message for r in caplog.records] == ["traceparent_ignored"]


def test_a_later_version_may_add_fields() -> None:
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"
    assert extract({"traceparent": future}) == future


# -- the registry ----------------------------------------------------------------------


def test_adopt_then_take_once() -> None:
    trace_id = uuid.uuid4().hex
    adopt(trace_id, VALID)
    assert (take(trace_id), take(trace_id)) == (VALID, None)


def test_adopting_none_or_an_invalid_value_forgets_the_earlier_one() -> None:
    trace_id = uuid.uuid4().hex
    adopt(trace_id, VALID)
    adopt(trace_id, None)
    assert take(trace_id) is None
    adopt(trace_id, VALID)
    adopt(trace_id, "not-a-traceparent")
    assert take(trace_id) is None


def test_the_registry_keeps_the_latest_entries() -> None:
    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-{index}" for index in range(MAX_ADOPTED + 1)]
    adopt(ids[0], VALID)
    adopt(ids[1], VALID)
    adopt(ids[0], VALID)  # adopted again: now the newer of the two
    for trace_id in ids[2:]:  # one more than fits: the oldest (ids[1]) is dropped
        adopt(trace_id, VALID)
    assert (take(ids[1]), take(ids[0]), take(ids[2]), take(ids[-1])) == (None, VALID, VALID, VALID)
    for trace_id in ids[3:-1]:
        assert take(trace_id) == VALID


# -- A2A -------------------------------------------------------------------------------

SEEN: list[tuple[str, Any]] = []  # (trace id, meta traceparent) per call of the node


async def record(message: Message, _ctx: Any) -> Message:
    SEEN.append((message.trace_id, message.meta.get("traceparent")))
    return message.model_copy(update={"payload": {"echo": message.payload}})


@pytest.fixture
async def agent() -> AsyncIterator[str]:
    pytest.importorskip("uvicorn", reason="the a2a-server extra is not installed")
    from penguiflow_a2a import create_a2a_app

    from ..a2a.conftest import adapter_for, served

    SEEN.clear()
    flow = create(Node(record, name="record", policy=NodePolicy(validate="none")).to())
    adapter = adapter_for(flow)
    async with served(create_a2a_app(adapter)) as url:
        adapter.agent_url = url
        yield url


async def test_an_a2a_call_carries_the_callers_context_and_the_server_adopts_it(
    agent: str, memory: Memory
) -> None:
    pytest.importorskip("httpx_sse", reason="the a2a-client extra is not installed")
    from penguiflow.transports import A2AHttpTransport

    message = Message(payload="hi", headers=Headers(tenant="t"))
    tracer = memory.provider.get_tracer("test")
    async with A2AHttpTransport(allow_private=True) as transport:
        with tracer.start_as_current_span("tool call") as span:
            context = span.get_span_context()
            result = await transport.send(
                RemoteCallRequest(message=message, skill="echo", agent_url=agent)
            )
    assert result.result == {"echo": "hi"}
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    ((trace_id, seen),) = SEEN
    assert seen == expected  # the message's meta carries it into the flow
    assert take(trace_id) == expected  # adopted for the flow trace


async def test_spec_routes_take_the_header_then_the_meta(agent: str) -> None:
    async with httpx.AsyncClient(base_url=agent) as client:
        header = await client.post(
            "/message/send", json={"payload": 1}, headers={"traceparent": VALID}
        )
        other = "00-11111111111111111111111111111111-2222222222222222-01"
        meta = await client.post(
            "/message/send", json={"payload": 2, "meta": {"traceparent": other}}
        )
        bad = await client.post("/message/send", json={"payload": 3}, headers={"traceparent": "x"})
    assert [r.status_code for r in (header, meta, bad)] == [200, 200, 200]
    assert [seen for _, seen in SEEN] == [VALID, other, None]
    assert [take(trace_id) for trace_id, _ in SEEN] == [VALID, other, None]


# -- the bus ---------------------------------------------------------------------------


def envelope(payload: Any, edge: str) -> BusEnvelope:
    message = Message(payload=payload, headers=Headers(tenant="t"))
    return BusEnvelope(edge, "client", edge, message.trace_id, message, None, None)


def test_with_trace_context_copies_the_envelope_with_the_current_context(
    our_span: Span,
) -> None:
    plain = BusEnvelope("e", None, None, None, {"x": 1}, None, {"keep": 1})
    traced = with_trace_context(plain)
    assert traced.meta == {
        "keep": 1,
        "traceparent": f"00-{our_span.run_id}-{our_span.span_id[:16]}-01",
    }
    assert plain.meta == {"keep": 1}


def test_with_trace_context_without_a_context_returns_the_envelope() -> None:
    plain = BusEnvelope("e", None, None, None, {"x": 1}, None, None)
    assert with_trace_context(plain) is plain


@pytest.fixture(params=["redis", "nats"])
async def consumer_bus(request: pytest.FixtureRequest) -> AsyncIterator[ConsumerBus]:
    make = redis_bus if request.param == "redis" else nats_bus
    async for value in make():
        yield value


async def test_a_published_envelope_carries_the_publishers_context(
    consumer_bus: ConsumerBus,
) -> None:
    emitter = SpanEmitter()
    span = emitter.open("node", "publish", parent=None)
    token = emitter.enter(span)
    try:
        await consumer_bus.publish(envelope("traced", "jobs"))
    finally:
        emitter.exit(token)
    await consumer_bus.publish(envelope("plain", "jobs"))
    received: list[BusEnvelope] = []
    stop = asyncio.Event()

    async def keep(delivery: Delivery) -> None:
        received.append(delivery.envelope)
        if len(received) == 2:
            stop.set()

    await asyncio.wait_for(consume_edge(consumer_bus, "jobs", "g", keep, stop=stop), 15)
    metas = {env.payload.payload: env.meta for env in received}
    assert metas == {
        "traced": {"traceparent": f"00-{span.run_id}-{span.span_id[:16]}-01"},
        "plain": None,
    }
    # The message itself is unchanged: the context travels beside it.
    assert [env.payload.meta for env in received] == [{}, {}]


async def test_a_worker_adopts_the_envelopes_context_for_its_flow_trace(
    bus: RedisStreamsBus,
) -> None:
    seen: list[tuple[str, Any]] = []

    async def work(message: Message, _ctx: Any) -> Message:
        seen.append((message.trace_id, message.meta.get("traceparent")))
        return message.model_copy(update={"payload": message.payload * 2})

    flow = create(Node(work, name="work", policy=NodePolicy(validate="none")).to())
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(bus, flow, ingress="in", egress="out", stop=stop))
    emitter = SpanEmitter()
    span = emitter.open("tool", "enqueue", parent=None)
    token = emitter.enter(span)
    try:
        sent = envelope(21, "in")
        await bus.publish(sent)
    finally:
        emitter.exit(token)
    results: list[BusEnvelope] = []
    done = asyncio.Event()

    async def keep(delivery: Delivery) -> None:
        results.append(delivery.envelope)
        done.set()

    await asyncio.wait_for(consume_edge(bus, "out", "collector", keep, stop=done), 15)
    stop.set()
    await asyncio.wait_for(worker, 10)
    expected = f"00-{span.run_id}-{span.span_id[:16]}-01"
    assert seen == [(sent.trace_id, expected)]
    assert take(sent.trace_id or "") == expected
    ((result,),) = [results]
    assert (result.payload.payload, result.meta["traceparent"]) == (42, expected)  # type: ignore[index]


@pytest.fixture
async def bus() -> AsyncIterator[RedisStreamsBus]:
    async for value in redis_bus():
        yield value
