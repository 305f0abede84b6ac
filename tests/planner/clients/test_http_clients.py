"""Both LLM clients through real HTTP against the scripted OpenAI-compatible server.

The native client (httpx) and the LiteLLM client share one retry loop: these tests
drive each through success, rate limits with `Retry-After`, 5xx, timeouts, resets,
malformed and empty replies, and check that keys never leak.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from typing import Any

import pytest

from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.clients import (
    LLMConnectionError,
    LLMEmptyResponseError,
    LLMRateLimitError,
    LLMReply,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    RetryPolicy,
)
from penguiflow.planner.clients.retry import parse_retry_after
from penguiflow.planner.react import _LiteLLMJSONClient
from penguiflow.testkit import ScriptedLLMServer, ServerReply

from .conftest import CLIENTS, MESSAGES, SECRET, ClientFactory, native

SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_completion_returns_text_with_usage(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    server.add(ServerReply(content='{"ok": true}', usage={"prompt_tokens": 7, "total_tokens": 9}))
    reply = await make(server).complete(messages=MESSAGES, response_format=SCHEMA)
    assert reply == '{"ok": true}'
    assert isinstance(reply, LLMReply)
    assert reply.prompt_tokens == 7
    assert reply.total_tokens == 9
    request = server.requests[0]
    assert request.body["messages"] == MESSAGES
    assert request.body["response_format"] == SCHEMA
    assert request.headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("make", CLIENTS)
async def test_response_format_is_only_sent_in_json_schema_mode(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    server.add("{}")
    await make(server, json_schema_mode=False).complete(messages=MESSAGES, response_format=SCHEMA)
    assert "response_format" not in server.requests[0].body


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(ServerReply.error(500), id="500"),
        pytest.param(ServerReply.error(503), id="503"),
        pytest.param(ServerReply.rate_limited("0"), id="429"),
        pytest.param(ServerReply.empty(), id="empty-null"),
        pytest.param(ServerReply.empty(""), id="empty-string"),
        pytest.param(ServerReply.reset_connection(), id="reset"),
    ],
)
async def test_transient_faults_are_retried(
    server: ScriptedLLMServer, make: ClientFactory, fault: ServerReply
) -> None:
    server.add(fault, '{"after": "retry"}')
    reply = await make(server).complete(messages=MESSAGES)
    assert reply == '{"after": "retry"}'
    assert len(server.requests) == 2


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_are_never_retried(
    server: ScriptedLLMServer, make: ClientFactory, status: int
) -> None:
    server.add(ServerReply.error(status, "bad request"), "{}")
    with pytest.raises(LLMRequestError) as raised:
        await make(server).complete(messages=MESSAGES)
    assert raised.value.status == status
    assert len(server.requests) == 1


@pytest.mark.parametrize("make", CLIENTS)
async def test_retries_stop_at_the_limit_with_a_typed_error(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    server.add(*[ServerReply.error(503)] * 3)
    with pytest.raises(LLMServerError) as raised:
        await make(server, max_retries=3).complete(messages=MESSAGES)
    assert raised.value.attempts == 3
    assert len(server.requests) == 3


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
async def test_retry_after_is_honoured(
    server: ScriptedLLMServer, make: ClientFactory, as_date: bool
) -> None:
    # HTTP dates have 1 s resolution: ask for ~2 s and expect at least 1 s.
    value = email.utils.formatdate(time.time() + 2, usegmt=True) if as_date else "0.6"
    server.add(ServerReply.rate_limited(value), "{}")
    started = time.monotonic()
    assert await make(server).complete(messages=MESSAGES) == "{}"
    assert time.monotonic() - started >= (1.0 if as_date else 0.6)
    assert len(server.requests) == 2


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") is None  # negative: absent, backoff applies
    soon = parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert soon is not None
    assert 28 <= soon <= 30
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    capped = RetryPolicy(max_retry_after_s=5).delay(1, retry_after=600)
    assert capped == 5
    jitter = [RetryPolicy(backoff_base_s=1, max_backoff_s=4).delay(3, None) for _ in range(50)]
    assert all(0 <= d <= 4 for d in jitter)


@pytest.mark.parametrize("make", CLIENTS)
async def test_a_slow_reply_times_out_and_is_retried(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    server.add(ServerReply.slow(1.0, "{}"), '{"fast": 1}')
    reply = await make(server, timeout_s=0.3).complete(messages=MESSAGES)
    assert reply == '{"fast": 1}'


@pytest.mark.parametrize("make", CLIENTS)
async def test_timeouts_exhaust_into_a_typed_error(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    server.add(ServerReply.slow(1.0), ServerReply.slow(1.0))
    with pytest.raises(LLMTimeoutError):
        await make(server, timeout_s=0.2, max_retries=2).complete(messages=MESSAGES)


async def test_a_malformed_body_is_a_typed_error(server: ScriptedLLMServer) -> None:
    server.add(*[ServerReply.malformed()] * 3)
    with pytest.raises(LLMServerError, match="malformed completion"):
        await native(server).complete(messages=MESSAGES)


async def test_the_empty_reply_error_is_typed_once_retries_run_out(
    server: ScriptedLLMServer,
) -> None:
    server.add(ServerReply.empty(), ServerReply.empty())
    with pytest.raises(LLMEmptyResponseError):
        await native(server, max_retries=2).complete(messages=MESSAGES)


@pytest.mark.parametrize("make", CLIENTS)
async def test_the_api_key_never_appears_in_errors_logs_or_repr(
    server: ScriptedLLMServer, make: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(ServerReply.error(500, f"echo {SECRET}"), ServerReply.error(401, f"bad {SECRET}"))
    client = make(server)
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMRequestError) as raised:
        await client.complete(messages=MESSAGES)
    assert SECRET not in repr(client)
    assert SECRET not in str(raised.value)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in json.dumps(record.__dict__, default=str)


async def test_rate_limit_errors_carry_the_server_delay(server: ScriptedLLMServer) -> None:
    server.add(ServerReply.rate_limited("0"))
    with pytest.raises(LLMRateLimitError) as raised:
        await native(server, max_retries=1).complete(messages=MESSAGES)
    assert raised.value.retry_after == 0.0
    assert raised.value.status == 429


async def test_a_planner_runs_against_the_server_through_the_native_client(
    server: ScriptedLLMServer,
) -> None:
    from penguiflow import ModelRegistry, build_catalog

    server.add(ServerReply.rate_limited("0"), '{"thought": "done", "args": {"answer": 42}}')
    async with native(server) as client:
        planner = ReactPlanner(llm_client=client, catalog=build_catalog([], ModelRegistry()))
        result = await planner.run("what is the answer?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": 42}
    system = server.requests[-1].body["messages"][0]["content"]
    assert "Available tools:\n(none)" in system


async def test_litellm_missing_gives_the_documented_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_litellm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "litellm":
            raise ImportError("No module named 'litellm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litellm)
    client = _LiteLLMJSONClient("openai/x", temperature=0.0, json_schema_mode=True)
    with pytest.raises(RuntimeError, match="LiteLLM is not installed"):
        await client.complete(messages=MESSAGES)


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_a_connection_the_server_dropped_before_answering_is_sent_again(
    server: ScriptedLLMServer, make: ClientFactory, streamed: bool
) -> None:
    # A kept-alive connection the server closed as the request went out on it (as
    # llama.cpp's server does after a streamed reply): sent again on a new one, even
    # with no retries left.
    server.add(ServerReply.dropped_connection(), '{"after": "reconnect"}')
    client = make(server, max_retries=1)
    if streamed:
        pieces: list[str] = []
        reply = await client.complete_streaming(messages=MESSAGES, on_delta=pieces.append)
        assert "".join(pieces) == '{"after": "reconnect"}'
    else:
        reply = await client.complete(messages=MESSAGES)
    assert reply == '{"after": "reconnect"}'
    assert len(server.requests) == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_a_server_that_keeps_dropping_the_connection_is_a_typed_error(
    server: ScriptedLLMServer, streamed: bool
) -> None:
    server.add(ServerReply.dropped_connection(), ServerReply.dropped_connection(), "{}")
    client = native(server, max_retries=1)
    call = (
        client.complete_streaming(messages=MESSAGES, on_delta=lambda _: None)
        if streamed
        else client.complete(messages=MESSAGES)
    )
    with pytest.raises(LLMConnectionError, match="RemoteProtocolError"):
        await call
    assert len(server.requests) == 2  # one reconnect, then the error
