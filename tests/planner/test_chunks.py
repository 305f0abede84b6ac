"""`forward_answer`: a flow node forwards the planner's streamed answer as the trace's
stream chunks, in order, before its result."""

from __future__ import annotations

from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.chunks import forward_answer
from penguiflow.streaming import stream_flow
from penguiflow.testkit import ScriptedLLMClient
from penguiflow.types import StreamChunk

from .conftest import act
from .test_answer_stream import ANSWER, CALL, FINISH, catalog


async def test_a_node_forwards_the_answer_as_stream_chunks() -> None:
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient([CALL, FINISH], chunk_chars=5), catalog=catalog()
    )

    async def answer(message: Message, ctx: Any) -> Message:
        async with forward_answer(planner, ctx, message):
            finish = await planner.run(str(message.payload))
        assert isinstance(finish, PlannerFinish)
        return message.model_copy(update={"payload": finish.payload})

    flow = create(Node(answer, name="answer", policy=NodePolicy(validate="none")).to())
    flow.run()
    try:
        message = Message(payload="weather in Paris?", headers=Headers(tenant="t"))
        chunks = [c async for c in stream_flow(flow, message, timeout=5.0)]
    finally:
        await flow.stop()
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert "".join(c.text for c in chunks) == ANSWER
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert {c.stream_id for c in chunks} == {message.trace_id}
    assert {c.meta["stream"] for c in chunks} == {1}
    assert planner.hooks.event == []  # the hook is gone after the block


async def test_a_discarded_answer_is_marked_in_the_chunks() -> None:
    early = act("I will call get_weather", next_node=None, args={"answer": "sunny"})
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient([early, CALL, FINISH], chunk_chars=5), catalog=catalog()
    )
    sent: list[dict[str, Any]] = []

    class Collector:
        async def emit_chunk(self, **fields: Any) -> StreamChunk:
            sent.append(fields)
            return StreamChunk(stream_id="s", seq=fields["seq"], text=fields["text"])

    message = Message(payload="q", headers=Headers(tenant="t"))
    async with forward_answer(planner, Collector(), message):  # type: ignore[arg-type]
        await planner.run("weather in Paris?")
    ends = [f for f in sent if f["done"]]
    assert [f["meta"] for f in ends] == [{"stream": 1, "discarded": True}, {"stream": 2}]
    assert "".join(f["text"] for f in sent if f["meta"]["stream"] == 2) == ANSWER
