"""The planner streams its final answer as `llm_stream_chunk` events while the LLM
writes it; the `PlannerFinish` is the one a run without streaming returns."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerEvent, PlannerFinish, ReactPlanner
from penguiflow.planner.clients.openai_compat import OpenAICompatibleClient
from penguiflow.testkit import ScriptedLLMClient, ScriptedLLMServer, ServerReply

from .conftest import act

ANSWER = 'It is 18.5 °C in Paris: "mild", with a breeze.\nBring a coat.'
CALL = act("I need the weather", next_node="get_weather", args={"city": "Paris"})
FINISH = act("The tool answered", next_node=None, args={"answer": ANSWER})


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    celsius: float


def catalog() -> list[Any]:
    async def get_weather(args: City, ctx: Any) -> Weather:
        return Weather(city=args.city, celsius=18.5)

    registry = ModelRegistry()
    registry.register("get_weather", City, Weather)
    return build_catalog([Node(get_weather, name="get_weather")], registry)


def chunks_of(events: list[PlannerEvent]) -> list[dict[str, Any]]:
    return [dict(e.extra) for e in events if e.event_type == "llm_stream_chunk"]


def assert_one_clean_stream(chunks: list[dict[str, Any]], stream: int, answer: str) -> None:
    """The chunks of `stream`: numbered 0..n without gaps, ending with one `done`,
    joining into `answer`."""
    mine = [c for c in chunks if c["stream"] == stream]
    assert [c["index"] for c in mine] == list(range(len(mine)))
    assert [c["done"] for c in mine] == [False] * (len(mine) - 1) + [True]
    assert not mine[-1].get("discarded")
    assert "".join(c["text"] for c in mine) == answer
    assert len(mine) > 3  # it really came in pieces


async def run_observed(
    planner: ReactPlanner, query: str = "weather in Paris?"
) -> tuple[PlannerFinish, list[PlannerEvent]]:
    events: list[PlannerEvent] = []
    planner.hooks.event.append(events.append)
    result = await planner.run(query)
    assert isinstance(result, PlannerFinish)
    return result, events


def same_finish(a: PlannerFinish, b: PlannerFinish) -> None:
    assert (a.reason, a.payload) == (b.reason, b.payload)
    assert a.metadata["thought"] == b.metadata["thought"]
    assert a.metadata["steps"] == b.metadata["steps"]


async def test_the_answer_streams_in_order_and_the_finish_is_unchanged() -> None:
    client = ScriptedLLMClient([CALL, FINISH], chunk_chars=3)
    streamed, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
    assert_one_clean_stream(chunks_of(events), 1, ANSWER)
    plain = await ReactPlanner(llm_client=ScriptedLLMClient([CALL, FINISH]), catalog=catalog()).run(
        "weather in Paris?"
    )
    assert isinstance(plain, PlannerFinish)
    same_finish(streamed, plain)
    # Chunks come while the finish is written, before the `finish` event.
    kinds = [e.event_type for e in events]
    assert kinds.index("llm_stream_chunk") < kinds.index("finish")
    assert [c.get("stream") for c in client.calls] == [True, True]


async def test_a_tool_call_streams_no_chunks() -> None:
    client = ScriptedLLMClient([CALL, act("done", next_node=None, args={"answer": 7})])
    _, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
    assert chunks_of(events) == []  # a tool call, then an answer that is not text


async def test_an_answer_written_before_next_node_is_released_when_next_node_comes() -> None:
    finish = json.dumps({"args": {"answer": ANSWER}, "next_node": None, "thought": "t"})
    client = ScriptedLLMClient([CALL, finish], chunk_chars=2)
    _, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
    chunks = chunks_of(events)
    assert "".join(c["text"] for c in chunks) == ANSWER
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert chunks[-1]["done"] is True


async def test_a_finish_the_planner_rejects_is_discarded_and_the_next_one_streams() -> None:
    early = act("I will call get_weather", next_node=None, args={"answer": "sunny, probably"})
    client = ScriptedLLMClient([early, CALL, FINISH], chunk_chars=5)
    result, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
    chunks = chunks_of(events)
    first = [c for c in chunks if c["stream"] == 1]
    assert first[-1] == {
        "stream": 1,
        "index": len(first) - 1,
        "text": "",
        "done": True,
        "discarded": True,
    }
    assert "".join(c["text"] for c in first) == "sunny, probably"
    assert_one_clean_stream(chunks, 2, ANSWER)
    assert result.payload == {"answer": ANSWER}
    kinds = [e.event_type for e in events]
    assert kinds.index("finish_rejected") < len(kinds) - kinds[::-1].index("llm_stream_chunk")


async def test_an_invalid_streamed_reply_is_discarded_before_the_repair() -> None:
    broken = '{"thought": "t", "next_node": null, "args": {"answer": "half'
    client = ScriptedLLMClient([CALL, broken, FINISH], chunk_chars=4)
    result, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
    chunks = chunks_of(events)
    assert chunks[[c["stream"] for c in chunks].index(1)]["text"] == "half"
    assert [c for c in chunks if c["stream"] == 1][-1]["discarded"] is True
    assert_one_clean_stream(chunks, 2, ANSWER)
    assert result.payload == {"answer": ANSWER}


async def test_nothing_streams_without_an_observer_or_when_turned_off() -> None:
    quiet = ScriptedLLMClient([CALL, FINISH])
    result = await ReactPlanner(llm_client=quiet, catalog=catalog()).run("weather in Paris?")
    assert isinstance(result, PlannerFinish)
    assert [c.get("stream") for c in quiet.calls] == [None, None]

    off = ScriptedLLMClient([CALL, FINISH])
    _, events = await run_observed(
        ReactPlanner(llm_client=off, catalog=catalog(), stream_answer=False)
    )
    assert chunks_of(events) == []
    assert [c.get("stream") for c in off.calls] == [None, None]


async def test_through_the_http_client_with_a_drop_mid_stream() -> None:
    """The local OpenAI-compatible server streams in 3-character pieces and drops the
    connection in the middle of the answer; the retried stream adds no duplicates."""
    replies = [
        ServerReply(content=CALL),
        ServerReply(content=FINISH, drop_after_chunks=12),
        ServerReply(content=FINISH),
    ]
    with ScriptedLLMServer(replies, chunk_chars=3) as server:
        async with OpenAICompatibleClient(
            server.base_url, "scripted-model", backoff_base_s=0.01
        ) as client:
            streamed, events = await run_observed(
                ReactPlanner(llm_client=client, catalog=catalog())
            )
        assert [r.body.get("stream") for r in server.requests] == [True, True, True]
    assert_one_clean_stream(chunks_of(events), 1, ANSWER)

    with ScriptedLLMServer([CALL, FINISH]) as server:
        async with OpenAICompatibleClient(server.base_url, "scripted-model") as client:
            plain = await ReactPlanner(llm_client=client, catalog=catalog()).run(
                "weather in Paris?"
            )
    assert isinstance(plain, PlannerFinish)
    same_finish(streamed, plain)


async def test_a_retried_stream_that_differs_is_withdrawn_and_asked_again() -> None:
    other = "Mild in Paris today."
    second = act("The tool answered", next_node=None, args={"answer": other})
    replies = [
        ServerReply(content=CALL),
        ServerReply(content=FINISH, drop_after_chunks=28),
        ServerReply(content=second),  # the client's retry: not what it had shown
        ServerReply(content=second),  # the planner's new request
    ]
    with ScriptedLLMServer(replies, chunk_chars=3) as server:
        async with OpenAICompatibleClient(
            server.base_url, "scripted-model", backoff_base_s=0.01
        ) as client:
            result, events = await run_observed(ReactPlanner(llm_client=client, catalog=catalog()))
        assert len(server.requests) == 4
    chunks = chunks_of(events)
    first = [c for c in chunks if c["stream"] == 1]
    assert first[-1]["discarded"] is True
    assert ANSWER.startswith("".join(c["text"] for c in first))
    assert_one_clean_stream(chunks, 2, other)
    assert result.payload == {"answer": other}
