"""ScriptedLLMClient.complete_streaming: the scripted reply, handed over in pieces."""

from __future__ import annotations

import asyncio

import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.planner.clients import LLMReply, LLMTimeoutError, StreamingLLMClient
from penguiflow.testkit import ScriptedLLMClient

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_the_reply_is_delivered_in_pieces_and_returned_whole() -> None:
    client = ScriptedLLMClient([{"answer": "café"}, {"answer": "café"}], chunk_chars=3)
    assert isinstance(client, StreamingLLMClient)
    pieces: list[str] = []
    streamed = await client.complete_streaming(messages=MESSAGES, on_delta=pieces.append)
    assert streamed == await client.complete(messages=MESSAGES) == '{"answer": "café"}'
    assert pieces == ['{"a', "nsw", 'er"', ': "', "caf", 'é"}']


async def test_streamed_calls_are_recorded_with_stream() -> None:
    client = ScriptedLLMClient(["x", "y"])
    schema = {"type": "json_schema"}
    await client.complete_streaming(messages=MESSAGES, response_format=schema, on_delta=print)
    await client.complete(messages=MESSAGES)
    assert client.calls == [
        {"messages": MESSAGES, "response_format": schema, "stream": True},
        {"messages": MESSAGES, "response_format": None},
    ]


async def test_a_scripted_error_is_raised_before_any_piece() -> None:
    pieces: list[str] = []
    client = ScriptedLLMClient([LLMTimeoutError("too slow"), "ok"])
    with pytest.raises(LLMTimeoutError, match="too slow"):
        await client.complete_streaming(messages=MESSAGES, on_delta=pieces.append)
    assert pieces == []
    assert await client.complete_streaming(messages=MESSAGES, on_delta=pieces.append) == "ok"
    assert pieces == ["ok"]


async def test_a_scripted_reply_keeps_its_usage() -> None:
    client = ScriptedLLMClient([LLMReply("{}", prompt_tokens=3, model="m")])
    reply = await client.complete_streaming(messages=MESSAGES, on_delta=print)
    assert isinstance(reply, LLMReply)
    assert (reply.prompt_tokens, reply.model) == (3, "m")


async def test_chunk_delay_spaces_the_pieces() -> None:
    pieces: list[str] = []
    client = ScriptedLLMClient(["abcdefgh"], chunk_chars=2, chunk_delay_s=0.5)
    call = client.complete_streaming(messages=MESSAGES, on_delta=pieces.append)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call, timeout=0.2)
    assert pieces == ["ab"]  # the first piece at once, the next after the delay


@pytest.mark.parametrize("chunk_chars", [0, -1, True, 1.5])
def test_chunk_chars_must_be_a_positive_integer(chunk_chars: object) -> None:
    with pytest.raises(InvalidArgumentError, match="chunk_chars"):
        ScriptedLLMClient(chunk_chars=chunk_chars)  # type: ignore[arg-type]
