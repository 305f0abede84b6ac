"""Streaming: ScriptedLLMServer answers `"stream": true` with OpenAI-style server-sent
events, and both LLM clients' `complete_streaming` read them, through drops, retries,
timeouts and broken chunks."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from penguiflow.planner.clients import (
    LLMAuthenticationError,
    LLMConnectionError,
    LLMEmptyResponseError,
    LLMReply,
    LLMRequestError,
    LLMServerError,
    LLMStreamDivergedError,
    LLMTimeoutError,
    StreamingLLMClient,
)
from penguiflow.testkit import ScriptedLLMServer, ServerReply

from .conftest import CLIENTS, MESSAGES, SECRET, ClientFactory, native

TEXT = '{"thought": "done", "next_node": null, "args": {"answer": "caf\\u00e9 ok"}}'


async def _events(server: ScriptedLLMServer, body: dict[str, Any]) -> list[Any]:
    async with (
        httpx.AsyncClient() as http,
        http.stream("POST", server.base_url + "/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        found: list[Any] = []
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                found.append(data if data == "[DONE]" else json.loads(data))
        return found


async def test_a_streamed_reply_is_split_in_order_with_usage_and_done() -> None:
    with ScriptedLLMServer([ServerReply(content=TEXT)], chunk_chars=3) as server:
        body = {"stream": True, "stream_options": {"include_usage": True}, "messages": []}
        events = await _events(server, body)
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    chunks = [e for e in events[:-2] if e["choices"][0]["finish_reason"] is None]
    pieces = [e["choices"][0]["delta"]["content"] for e in chunks]
    assert "".join(pieces) == TEXT
    assert all(len(piece) <= 3 for piece in pieces)
    assert events[-3]["choices"][0]["finish_reason"] == "stop"


async def test_usage_is_only_sent_when_asked_for() -> None:
    with ScriptedLLMServer(["{}"]) as server:
        events = await _events(server, {"stream": True, "messages": []})
    assert all("usage" not in e for e in events[:-1])


async def test_a_drop_mid_stream_is_a_transport_error() -> None:
    with ScriptedLLMServer([ServerReply(content=TEXT, drop_after_chunks=2)]) as server:
        with pytest.raises(httpx.TransportError):
            await _events(server, {"stream": True, "messages": []})


async def test_non_streamed_requests_are_unchanged() -> None:
    with ScriptedLLMServer([TEXT]) as server:
        async with httpx.AsyncClient() as http:
            url = server.base_url + "/chat/completions"
            reply = (await http.post(url, json={"messages": []})).json()
    assert reply["choices"][0]["message"]["content"] == TEXT


# Both clients' `complete_streaming`, against the server above.

REPLY = ServerReply(content=TEXT, usage={"prompt_tokens": 12, "completion_tokens": 8})


class Deltas(list[str]):
    """What `on_delta` received, in order."""

    @property
    def text(self) -> str:
        return "".join(self)


async def stream(client: Any, **options: Any) -> tuple[LLMReply, Deltas]:
    deltas = Deltas()
    reply = await client.complete_streaming(messages=MESSAGES, on_delta=deltas.append, **options)
    assert isinstance(reply, LLMReply)
    return reply, deltas


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_reply_streams_in_order_and_ends_as_the_whole_completion(
    make: ClientFactory,
) -> None:
    with ScriptedLLMServer([REPLY, REPLY], chunk_chars=3) as server:
        client = make(server)
        assert isinstance(client, StreamingLLMClient)
        reply, deltas = await stream(client)
        whole = await client.complete(messages=MESSAGES)
    assert reply == deltas.text == whole == TEXT
    assert len(deltas) > 1  # pieces as they came, not the reply at the end
    assert all(0 < len(piece) <= 3 for piece in deltas)
    assert (reply.prompt_tokens, reply.completion_tokens) == (12, 8)
    assert (whole.prompt_tokens, whole.completion_tokens) == (12, 8)
    assert reply.model
    assert reply.latency_ms is not None
    assert reply.latency_ms > 0
    body = server.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == MESSAGES
    assert "stream" not in server.requests[1].body


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_drop_mid_stream_is_retried_without_repeating_delivered_text(
    make: ClientFactory,
) -> None:
    dropped = ServerReply(content=TEXT, drop_after_chunks=4)
    with ScriptedLLMServer([dropped, REPLY], chunk_chars=3) as server:
        reply, deltas = await stream(make(server))
    assert reply == deltas.text == TEXT
    assert deltas[:4] == [TEXT[0:3], TEXT[3:6], TEXT[6:9], TEXT[9:12]]
    assert len(server.requests) == 2
    assert reply.prompt_tokens == 12


def streamed_in(text: str, size: int) -> ServerReply:
    """`text` streamed in pieces of `size` characters (whatever the server's chunk_chars)."""

    def event(choice: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps({"choices": [{"index": 0, **choice}]}).encode() + b"\n\n"

    pieces = [event({"delta": {"content": text[i : i + size]}}) for i in range(0, len(text), size)]
    done = (event({"delta": {}, "finish_reason": "stop"}), b"data: [DONE]\n\n")
    return ServerReply(raw_events=(*pieces, *done))


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_retry_cut_in_other_pieces_delivers_only_what_is_new(make: ClientFactory) -> None:
    dropped = ServerReply(content=TEXT, drop_after_chunks=4)  # 12 characters delivered
    with ScriptedLLMServer([dropped, streamed_in(TEXT, 5)], chunk_chars=3) as server:
        reply, deltas = await stream(make(server))
    assert reply == deltas.text == TEXT
    assert deltas[4:6] == [TEXT[12:15], TEXT[15:20]]  # the piece 10..15 is cut at 12


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize(
    "retried",
    [
        pytest.param(TEXT.replace("thought", "thinking"), id="different"),
        pytest.param(TEXT[:5], id="shorter"),
    ],
)
async def test_a_retry_that_answers_differently_raises_diverged(
    make: ClientFactory, retried: str
) -> None:
    dropped = ServerReply(content=TEXT, drop_after_chunks=4)
    with ScriptedLLMServer([dropped, retried, TEXT], chunk_chars=3) as server:
        deltas = Deltas()
        with pytest.raises(LLMStreamDivergedError) as raised:
            await make(server).complete_streaming(messages=MESSAGES, on_delta=deltas.append)
    assert deltas.text == TEXT[:12]  # what was delivered stays delivered, once
    assert raised.value.delivered_chars == 12
    assert raised.value.attempts == 2
    assert not raised.value.retryable
    assert "12 characters" in str(raised.value)
    assert "differed" in str(raised.value)
    assert len(server.requests) == 2  # not retried again


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_stream_that_drops_on_every_attempt_raises_a_connection_error(
    make: ClientFactory,
) -> None:
    dropped = ServerReply(content=TEXT, drop_after_chunks=2)
    with ScriptedLLMServer([dropped] * 3, chunk_chars=3) as server:
        deltas = Deltas()
        with pytest.raises(LLMConnectionError) as raised:
            await make(server, max_retries=3).complete_streaming(
                messages=MESSAGES, on_delta=deltas.append
            )
    assert raised.value.retryable
    assert raised.value.attempts == 3
    assert len(server.requests) == 3
    assert deltas.text == TEXT[:6]


@pytest.mark.parametrize("make", CLIENTS)
async def test_faults_before_the_stream_are_classified_as_in_complete(
    make: ClientFactory,
) -> None:
    with ScriptedLLMServer(
        [ServerReply.rate_limited("0"), ServerReply.error(503), REPLY], chunk_chars=3
    ) as server:
        reply, deltas = await stream(make(server))
    assert reply == deltas.text == TEXT
    assert len(server.requests) == 3

    with ScriptedLLMServer([ServerReply.error(401, "Incorrect API key"), REPLY]) as server:
        deltas = Deltas()
        with pytest.raises(LLMAuthenticationError) as refused:
            await make(server).complete_streaming(messages=MESSAGES, on_delta=deltas.append)
    assert refused.value.attempts == 1
    assert SECRET not in str(refused.value)
    assert len(server.requests) == 1
    assert deltas == []

    with ScriptedLLMServer([ServerReply.error(400, "bad schema"), REPLY]) as server:
        with pytest.raises(LLMRequestError) as bad:
            await make(server).complete_streaming(messages=MESSAGES, on_delta=print)
    assert not isinstance(bad.value, LLMAuthenticationError)
    assert bad.value.status == 400
    assert len(server.requests) == 1


@pytest.mark.parametrize("make", CLIENTS)
async def test_the_timeout_covers_the_whole_stream(make: ClientFactory) -> None:
    # Each chunk comes in time; the whole stream (about 1.4 s) does not.
    with ScriptedLLMServer([TEXT], chunk_chars=3, chunk_delay_s=0.05) as server:
        deltas = Deltas()
        with pytest.raises(LLMTimeoutError) as raised:
            await make(server, timeout_s=0.4, max_retries=1).complete_streaming(
                messages=MESSAGES, on_delta=deltas.append
            )
    assert raised.value.attempts == 1
    assert deltas
    assert TEXT.startswith(deltas.text)
    assert deltas.text != TEXT


@pytest.mark.parametrize("make", CLIENTS)
async def test_an_empty_stream_is_a_retried_empty_response(make: ClientFactory) -> None:
    with ScriptedLLMServer([ServerReply.empty(""), REPLY]) as server:
        reply, deltas = await stream(make(server))
    assert reply == deltas.text == TEXT
    assert len(server.requests) == 2

    with ScriptedLLMServer([ServerReply.empty("")] * 2) as server:
        with pytest.raises(LLMEmptyResponseError) as raised:
            await make(server, max_retries=2).complete_streaming(messages=MESSAGES, on_delta=print)
    assert raised.value.attempts == 2


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_malformed_chunk_is_a_retried_server_fault(make: ClientFactory) -> None:
    with ScriptedLLMServer([ServerReply.malformed_chunk(), REPLY]) as server:
        reply, deltas = await stream(make(server))
    assert reply == deltas.text == TEXT
    assert len(server.requests) == 2

    with ScriptedLLMServer([ServerReply.malformed_chunk()] * 2) as server:
        with pytest.raises(LLMServerError) as raised:
            await make(server, max_retries=2).complete_streaming(messages=MESSAGES, on_delta=print)
    assert raised.value.attempts == 2


@pytest.mark.parametrize("make", CLIENTS)
async def test_an_on_delta_that_raises_stops_the_call_unretried(make: ClientFactory) -> None:
    def refuse(piece: str) -> None:
        raise ValueError(f"no thanks: {piece}")

    with ScriptedLLMServer([REPLY, REPLY]) as server:
        with pytest.raises(ValueError, match="no thanks"):
            await make(server).complete_streaming(messages=MESSAGES, on_delta=refuse)
    assert len(server.requests) == 1


async def test_the_native_client_reads_a_server_that_ignores_stream() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": TEXT}}],
        "usage": {"total_tokens": 3},
    }
    with ScriptedLLMServer([ServerReply(raw_body=json.dumps(body).encode())]) as server:
        reply, deltas = await stream(native(server))
    assert deltas == [TEXT]
    assert reply == TEXT
    assert reply.total_tokens == 3


@pytest.mark.parametrize(
    "events",
    [
        pytest.param((b'data: {"error": {"message": "overloaded"}}\n\n',), id="error-event"),
        pytest.param((b"data: [1, 2]\n\n",), id="not-an-object"),
        pytest.param(
            (b'data: {"choices": [{"index": 0, "delta": {"content": 7}}]}\n\n',),
            id="content-not-text",
        ),
    ],
)
async def test_chunks_the_native_client_cannot_use_are_server_faults(
    events: tuple[bytes, ...],
) -> None:
    with ScriptedLLMServer([ServerReply(raw_events=events)]) as server:
        with pytest.raises(LLMServerError) as raised:
            await native(server, max_retries=1).complete_streaming(
                messages=MESSAGES, on_delta=print
            )
    assert "overloaded" in str(raised.value) or "chunk" in str(raised.value)


async def test_a_stream_cut_cleanly_before_its_end_is_a_connection_error() -> None:
    piece = b'data: {"choices": [{"index": 0, "delta": {"content": "{}"}}]}\n\n'
    with ScriptedLLMServer([ServerReply(raw_events=(piece,))]) as server:
        with pytest.raises(LLMConnectionError):
            await native(server, max_retries=1).complete_streaming(
                messages=MESSAGES, on_delta=print
            )


async def test_events_split_over_lines_and_comments_are_read() -> None:
    # SSE allows comments, other fields, and a chunk's JSON over several data lines.
    events = (
        b": keep-alive\n\n",
        b'event: message\nid: 1\ndata: {"choices": [{"index": 0,\ndata:  "delta":'
        b' {"content": "{\\"a\\": "}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "1}"},'
        b' "finish_reason": "stop"}]}\n\n',
    )
    with ScriptedLLMServer([ServerReply(raw_events=events)]) as server:
        reply, deltas = await stream(native(server))
    assert deltas == ['{"a": ', "1}"]
    assert reply == '{"a": 1}'
