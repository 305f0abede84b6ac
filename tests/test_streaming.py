"""Streaming: SSE / WebSocket rendering and streaming through a running flow."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguiflow import (
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    StreamChunk,
    chunk_to_ws_json,
    emit_stream_events,
    format_sse_event,
    stream_flow,
)

from .conftest import make_message

NO_VALIDATION = NodePolicy(validate="none")


def parse_sse(body: str) -> list[dict[str, Any]]:
    """A minimal SSE client (per the WHATWG rules): returns the dispatched events."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {"data": []}
    for line in re.split(r"\r\n|\r|\n", body):
        if line == "":
            if current["data"]:
                events.append({**current, "data": "\n".join(current["data"])})
            current = {"data": []}
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            current["data"].append(value)
        else:
            current[field] = value
    return events


# -- format_sse_event ------------------------------------------------------------------


def test_sse_frame_for_a_plain_chunk() -> None:
    chunk = StreamChunk(stream_id="s", seq=0, text="hi")
    assert format_sse_event(chunk) == "event: chunk\nid: 0\ndata: hi\n\n"


def test_sse_frame_for_the_final_chunk_with_meta_and_retry() -> None:
    chunk = StreamChunk(stream_id="s", seq=3, text="bye", done=True, meta={"lang": "fr", "n": "é"})
    assert format_sse_event(chunk, retry_ms=1500) == (
        'event: done\nid: 3\ndata: bye\ndata: {"lang": "fr", "n": "é"}\nretry: 1500\n\n'
    )


def test_sse_event_name_overrides_chunk_and_done() -> None:
    done = StreamChunk(stream_id="s", seq=1, text="", done=True)
    assert format_sse_event(done, event_name="token") == "event: token\nid: 1\ndata: \n\n"


def test_sse_text_is_inserted_verbatim_as_in_the_reference_release() -> None:
    chunk = StreamChunk(stream_id="s", seq=2, text="line one\nline two")
    assert format_sse_event(chunk) == "event: chunk\nid: 2\ndata: line one\nline two\n\n"


@given(st.text().filter(lambda t: not re.search(r"[\r\n]", t)))
def test_sse_single_line_text_arrives_as_exactly_one_event(text: str) -> None:
    frame = format_sse_event(StreamChunk(stream_id="s", seq=7, text=text))
    assert parse_sse(frame) == [{"event": "chunk", "id": "7", "data": text}]


def test_sse_rejects_bad_input() -> None:
    chunk = StreamChunk(stream_id="s", seq=0, text="x")
    with pytest.raises(ValueError, match="must not contain line breaks"):
        format_sse_event(chunk, event_name="chunk\ndata: injected")
    with pytest.raises(TypeError, match=r"expects a penguiflow\.types\.StreamChunk, got dict"):
        format_sse_event({"text": "x"})  # type: ignore[arg-type]


# -- chunk_to_ws_json ------------------------------------------------------------------


def test_ws_json_has_fixed_key_order_and_extra_fields() -> None:
    chunk = StreamChunk(stream_id="s2", seq=0, text="other")
    assert chunk_to_ws_json(chunk, extra={"x": 1}) == (
        '{"stream_id": "s2", "seq": 0, "text": "other", "done": false, "meta": {}, "x": 1}'
    )


def test_ws_json_keeps_unicode_and_lets_extra_override() -> None:
    chunk = StreamChunk(stream_id="s", seq=4, text="héllo", done=True, meta={"k": "v"})
    frame = chunk_to_ws_json(chunk, extra={"seq": 99})
    assert "héllo" in frame
    assert json.loads(frame) == {
        "stream_id": "s",
        "seq": 99,
        "text": "héllo",
        "done": True,
        "meta": {"k": "v"},
    }
    with pytest.raises(TypeError, match="chunk_to_ws_json expects"):
        chunk_to_ws_json("hello")  # type: ignore[arg-type]


# -- stream_flow -----------------------------------------------------------------------


async def speak(message: Message, ctx: Any) -> None:
    """Stream the words of the payload, then close the stream."""
    for word in str(message.payload).split():
        await ctx.emit_chunk(parent=message, text=word)
    await ctx.emit_chunk(parent=message, text="", done=True, meta={"words": 3})


async def test_stream_flow_yields_the_chunks_of_a_trace_in_order(
    flows: Callable[..., PenguiFlow],
) -> None:
    speaker = Node(speak, name="speaker", policy=NO_VALIDATION)
    flow = flows(speaker.to())
    flow.run()
    message = make_message("hello brave world")

    chunks = [chunk async for chunk in stream_flow(flow, message, timeout=1.0)]

    assert [(c.seq, c.text, c.done) for c in chunks] == [
        (0, "hello", False),
        (1, "brave", False),
        (2, "world", False),
        (3, "", True),
    ]
    assert {c.stream_id for c in chunks} == {message.trace_id}
    assert chunks[-1].meta == {"words": 3}


async def test_stream_flow_as_an_sse_response_body(flows: Callable[..., PenguiFlow]) -> None:
    flow = flows(Node(speak, name="speaker", policy=NO_VALIDATION).to())
    flow.run()

    body = "".join([format_sse_event(c) async for c in stream_flow(flow, make_message("hi there"))])

    assert body == (
        "event: chunk\nid: 0\ndata: hi\n\n"
        "event: chunk\nid: 1\ndata: there\n\n"
        'event: done\nid: 2\ndata: \ndata: {"words": 3}\n\n'
    )


async def speak_then_answer(message: Message, ctx: Any) -> Message:
    await ctx.emit_chunk(parent=message, text="thinking")
    await ctx.emit_chunk(parent=message, text="", done=True)
    return message.model_copy(update={"payload": "the answer"})


async def test_include_final_keeps_reading_until_the_final_result(
    flows: Callable[..., PenguiFlow],
) -> None:
    flow = flows(Node(speak_then_answer, name="agent", policy=NO_VALIDATION).to())
    flow.run()

    items = [item async for item in stream_flow(flow, make_message("q"), include_final=True)]

    assert [getattr(i, "text", i) for i in items] == ["thinking", "", "the answer"]


async def test_without_include_final_the_stream_stops_at_done(
    flows: Callable[..., PenguiFlow],
) -> None:
    flow = flows(Node(speak_then_answer, name="agent", policy=NO_VALIDATION).to())
    flow.run()

    items = [item async for item in stream_flow(flow, make_message("q"))]

    assert [i.text for i in items] == ["thinking", ""]
    # The final result was not consumed: it is still waiting at Rookery.
    leftover = await asyncio.wait_for(flow.fetch(), 1.0)
    assert leftover.payload == "the answer"


async def test_a_non_chunk_result_ends_the_stream_before_done(
    flows: Callable[..., PenguiFlow],
) -> None:
    async def answer(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": {"answer": 42}})

    flow = flows(Node(answer, policy=NO_VALIDATION).to())
    flow.run()

    items = [item async for item in stream_flow(flow, make_message("q"), include_final=False)]

    assert items == [{"answer": 42}]


async def test_stream_flow_timeout_bounds_each_fetch(flows: Callable[..., PenguiFlow]) -> None:
    never = asyncio.Event()

    async def stall(message: Message, ctx: Any) -> None:
        await ctx.emit_chunk(parent=message, text="first")
        await never.wait()

    flow = flows(Node(stall, policy=NO_VALIDATION).to())
    flow.run()
    stream = stream_flow(flow, make_message("q"), timeout=0.05)

    first = await anext(stream)
    with pytest.raises(TimeoutError):
        await anext(stream)

    assert first.text == "first"


async def test_stream_flow_sends_to_the_chosen_ingress_node(
    flows: Callable[..., PenguiFlow],
) -> None:
    async def quiet(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": "quiet"})

    speaker = Node(speak, name="speaker", policy=NO_VALIDATION)
    silent = Node(quiet, name="silent", policy=NO_VALIDATION)
    flow = flows(speaker.to(), silent.to())
    flow.run()

    items = [item async for item in stream_flow(flow, make_message("only"), to=silent)]

    assert items == ["quiet"]


# -- emit_stream_events ----------------------------------------------------------------


async def tokens(*words: str) -> AsyncIterator[str]:
    for word in words:
        yield word


async def test_emit_stream_events_from_a_node_closes_the_stream(
    flows: Callable[..., PenguiFlow],
) -> None:
    async def relay(message: Message, ctx: Any) -> None:
        await emit_stream_events(tokens("a", "b"), ctx, message, final_meta={"reason": "eof"})

    flow = flows(Node(relay, policy=NO_VALIDATION).to())
    flow.run()

    chunks = [c async for c in stream_flow(flow, make_message("q"), timeout=1.0)]

    assert [(c.seq, c.text, c.done, c.meta) for c in chunks] == [
        (0, "a", False, {}),
        (1, "b", False, {}),
        (2, "", True, {"reason": "eof"}),
    ]


async def test_emit_stream_events_uses_the_adapter_and_its_done_flag(
    flows: Callable[..., PenguiFlow],
) -> None:
    events: list[dict[str, Any]] = [{"delta": "Hel"}, {"delta": "lo", "finish": True}]

    async def source() -> AsyncIterator[dict[str, Any]]:
        for event in events:
            yield event

    def adapt(event: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
        return event["delta"], bool(event.get("finish")), {"raw": event}

    async def relay(message: Message, ctx: Any) -> None:
        await emit_stream_events(source(), ctx, message, adapter=adapt)

    flow = flows(Node(relay, policy=NO_VALIDATION).to())
    flow.run()

    chunks = [c async for c in stream_flow(flow, make_message("q"), timeout=1.0)]

    # The adapter's done chunk ends the stream: no extra empty closing chunk.
    assert [(c.text, c.done) for c in chunks] == [("Hel", False), ("lo", True)]
    assert chunks[1].meta == {"raw": events[1]}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flow.fetch(), 0.05)


async def test_emit_stream_events_into_a_flow_from_outside(
    flows: Callable[..., PenguiFlow],
) -> None:
    async def upper(message: Message, ctx: Any) -> Message:
        chunk = message.payload
        return message.model_copy(update={"payload": chunk.text.upper()})

    flow = flows(Node(upper, policy=NO_VALIDATION).to())
    flow.run()
    parent = make_message(None)

    await emit_stream_events(tokens("x", "y"), flow, parent)

    results = [await asyncio.wait_for(flow.fetch(), 1.0) for _ in range(3)]
    assert [r.payload for r in results] == ["X", "Y", ""]
    assert {r.trace_id for r in results} == {parent.trace_id}


async def test_emit_stream_events_needs_something_that_emits_chunks() -> None:
    with pytest.raises(TypeError, match="needs a Context or PenguiFlow with emit_chunk, got dict"):
        await emit_stream_events(tokens("x"), {}, make_message(None))  # type: ignore[arg-type]
