"""What node code can do with its `Context`: targeted emits, streaming, fetching."""

import asyncio
from typing import Any

import pytest

from penguiflow import Message, Node, NodePolicy, StreamChunk
from penguiflow.core import ROOKERY, Context
from penguiflow.errors import UnknownTargetError

from ..conftest import make_message


def node(name: str, func: Any) -> Node:
    return Node(func, name=name, policy=NodePolicy(validate="none"))


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


async def test_emit_by_node_name(flows: Any) -> None:
    async def router(message: Message, ctx: Context) -> None:
        await ctx.emit(message, to="right")

    left, right = node("left", passthrough), node("right", passthrough)
    source = node("router", router)
    flow = flows(source.to(left, right), left.to(), right.to())
    flow.run()
    await flow.emit(make_message("go"))
    await flow.fetch(from_=right)
    assert flow.contexts[left].queue_depth_in() == 0


async def test_unknown_target_is_a_typed_error(flows: Any) -> None:
    failures: list[BaseException] = []

    async def router(message: Message, ctx: Context) -> None:
        try:
            await ctx.emit(message, to="nowhere")
        except UnknownTargetError as exc:
            failures.append(exc)
            await ctx.emit(message)

    sink = node("sink", passthrough)
    source = node("router", router)
    flow = flows(source.to(sink), sink.to())
    flow.run()
    await flow.emit(make_message("x"))
    await flow.fetch()
    error = failures[0]
    assert isinstance(error, KeyError)
    assert error.args == ("Unknown target nowhere for router",)
    assert (error.target, error.owner) == ("nowhere", "router")  # type: ignore[attr-defined]


async def test_emit_to_rookery_endpoint(flows: Any) -> None:
    async def shortcut(message: Message, ctx: Context) -> None:
        await ctx.emit(message, to=ROOKERY)

    only = node("only", shortcut)
    flow = flows(only.to())
    flow.run()
    await flow.emit(make_message("direct"))
    assert (await flow.fetch()).payload == "direct"


async def test_context_without_runtime() -> None:
    ctx = Context(node("lonely", passthrough))
    with pytest.raises(RuntimeError, match="Context is not attached to a running flow"):
        await ctx.emit(1)
    with pytest.raises(RuntimeError, match="Context is not attached to a running flow"):
        ctx.emit_nowait(1)
    with pytest.raises(asyncio.QueueEmpty, match="no messages available"):
        ctx.fetch_nowait()
    with pytest.raises(RuntimeError, match="context has no incoming floes to fetch from"):
        await ctx.fetch()
    assert ctx.owner.name == "lonely"
    assert ctx.runtime is None
    assert (ctx.outgoing_count(), ctx.queue_depth_in(), ctx.queue_depth_out()) == (0, 0, 0)


async def test_stream_chunks_are_numbered_per_stream(flows: Any) -> None:
    async def streamer(message: Message, ctx: Context) -> None:
        for word in ("a", "b"):
            await ctx.emit_chunk(parent=message, text=word)
        await ctx.emit_chunk(parent=message, text="end", done=True)
        await ctx.emit_chunk(parent=message, text="again")  # restarts at 0 after done
        await ctx.emit_chunk(parent=message, text="custom", stream_id="side", seq=10)
        await ctx.emit_chunk(parent=message, text="next", stream_id="side")

    flow = flows(node("streamer", streamer).to())
    flow.run()
    parent = make_message("q", meta={"user": "u1"}, deadline_s=None)
    await flow.emit(parent)
    chunks = [await flow.fetch() for _ in range(6)]
    seen = [(m.payload.stream_id, m.payload.seq, m.payload.text, m.payload.done) for m in chunks]
    tid = parent.trace_id
    assert seen == [
        (tid, 0, "a", False),
        (tid, 1, "b", False),
        (tid, 2, "end", True),
        (tid, 0, "again", False),
        ("side", 10, "custom", False),
        ("side", 11, "next", False),
    ]
    assert all(m.trace_id == tid and m.headers == parent.headers for m in chunks)
    assert chunks[0].meta == {"user": "u1"}
    assert chunks[0].meta is not parent.meta


async def test_emit_chunk_returns_the_chunk(flows: Any) -> None:
    flow = flows(node("sink", passthrough).to())
    chunk = await flow.emit_chunk(parent=make_message("p"), text="hi", meta={"k": 1})
    assert chunk == StreamChunk(stream_id=chunk.stream_id, seq=0, text="hi", meta={"k": 1})


async def test_streaming_backpressure_is_per_trace_whatever_the_stream_id(flows: Any) -> None:
    produced: list[int] = []

    async def firehose(message: Message, ctx: Context) -> None:
        for i in range(20):
            await ctx.emit_chunk(parent=message, text=str(i), stream_id=f"custom-{i % 2}")
            produced.append(i)

    flow = flows(node("firehose", firehose).to(), queue_maxsize=4)
    flow.run()
    parent = make_message("go")
    await flow.emit(parent)
    await asyncio.sleep(0.05)
    # Fixed defect: a custom stream_id no longer disables the per-trace throttle.
    assert len(produced) <= 5
    assert flow.trace_status(parent.trace_id).pending <= 5
    received = [await flow.fetch() for _ in range(20)]
    assert len(received) == 20
    assert len(produced) == 20


async def test_node_that_fetches_for_itself_marks_messages_done(flows: Any) -> None:
    collected: list[Any] = []

    async def gather_two(message: Message, ctx: Context) -> Message:
        other = await ctx.fetch()  # takes the next message itself
        collected.append(other.payload)
        return message.model_copy(update={"payload": [message.payload, other.payload]})

    flow = flows(node("gather", gather_two).to())
    first, second = make_message(1), make_message(2)
    await flow.emit(first)
    await flow.emit(second)
    flow.run()
    result = await flow.fetch()
    assert result.payload == [1, 2]
    # Fixed defect: the self-fetched message's trace is finished, not pending forever.
    assert not flow.traces.known(second.trace_id)
    assert flow.traces.active() == ()


async def test_fetch_any_and_nowait_from_node_code(flows: Any) -> None:
    results: list[Any] = []

    async def merge(message: Message, ctx: Context) -> None:
        results.append(message.payload)
        try:
            results.append(ctx.fetch_nowait().payload)
        except asyncio.QueueEmpty:
            results.append(None)

    left, right = node("left", passthrough), node("right", passthrough)
    merger = node("merge", merge)
    flow = flows(left.to(merger), right.to(merger), merger.to())
    flow.run()
    await flow.emit(make_message("L"), to=left)
    await asyncio.sleep(0.02)
    assert results == ["L", None]
