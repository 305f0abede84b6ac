"""Faults found by probing the LLM clients from outside: bad `Retry-After` values,
bodies that do not decode, missing keys. Each one ends in a typed `LLMError`, retried
or not the same way by both clients, within the retry loop's deadline."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

import pytest

from penguiflow.planner.clients import (
    LLMAuthenticationError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    RetryPolicy,
)
from penguiflow.planner.clients.retry import parse_retry_after
from penguiflow.planner.react import _LiteLLMJSONClient
from penguiflow.testkit import ScriptedLLMServer, ServerReply

from .conftest import CLIENTS, MESSAGES, SECRET, ClientFactory, native, via_litellm


def completion(content: str = "{}", **extra: Any) -> bytes:
    body = {"choices": [{"message": {"role": "assistant", "content": content}}], **extra}
    return json.dumps(body).encode()


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "soon", "1e400"])
def test_a_retry_after_that_says_nothing_usable_is_absent(value: str) -> None:
    assert parse_retry_after(value) is None
    delay = RetryPolicy(backoff_base_s=0.01).delay(1, float(value) if value != "soon" else None)
    assert 0 <= delay <= 0.01


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("value", ["nan", "inf", "-5", "garbage"])
async def test_a_bad_retry_after_never_hangs_the_call(
    server: ScriptedLLMServer, make: ClientFactory, value: str
) -> None:
    server.add(ServerReply.rate_limited(value), '{"after": "backoff"}')
    client = make(server)
    started = time.monotonic()
    reply = await asyncio.wait_for(client.complete(messages=MESSAGES), timeout=10)
    assert reply == '{"after": "backoff"}'
    assert time.monotonic() - started < 5
    assert len(server.requests) == 2


@pytest.mark.parametrize("make", CLIENTS)
async def test_the_whole_retry_loop_obeys_its_deadline(
    server: ScriptedLLMServer, make: ClientFactory
) -> None:
    # The server asks for 30 s; three attempts of 0.5 s give the loop 1.5 s in all.
    server.add(*[ServerReply.rate_limited("30")] * 3)
    started = time.monotonic()
    with pytest.raises(LLMRateLimitError) as raised:
        await make(server, timeout_s=0.5, max_retries=3).complete(messages=MESSAGES)
    assert time.monotonic() - started < 1.5
    assert raised.value.attempts == 1
    assert len(server.requests) == 1


async def test_the_last_attempt_gets_only_what_is_left_of_the_deadline(
    server: ScriptedLLMServer,
) -> None:
    server.add(ServerReply.error(503), ServerReply.slow(3.0))
    client = native(server, timeout_s=2.0, max_retries=2)
    client_policy = RetryPolicy(max_retries=2, timeout_s=2.0, total_timeout_s=1.0)
    assert client_policy.deadline_s == 1.0
    assert RetryPolicy(max_retries=2, timeout_s=2.0).deadline_s == 4.0
    started = time.monotonic()
    with pytest.raises(LLMError):
        await client.complete(messages=MESSAGES)
    assert time.monotonic() - started < 3.0  # 2 s of the 4 s deadline, not 2 + 3


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(ServerReply.malformed(), id="truncated-json"),
        pytest.param(
            ServerReply(raw_body=b"not gzip at all", headers={"Content-Encoding": "gzip"}),
            id="bad-gzip",
        ),
        pytest.param(
            ServerReply(raw_body=b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
            id="deep-json",
        ),
        pytest.param(ServerReply(raw_body=b'{"choices": []}'), id="no-choices"),
    ],
)
async def test_a_body_that_does_not_decode_is_a_retried_server_fault(
    server: ScriptedLLMServer, make: ClientFactory, body: ServerReply
) -> None:
    server.add(body, '{"after": "retry"}')
    assert await make(server).complete(messages=MESSAGES) == '{"after": "retry"}'
    assert len(server.requests) == 2

    server.add(body, body)
    with pytest.raises(LLMServerError) as raised:
        await make(server, max_retries=2).complete(messages=MESSAGES)
    assert raised.value.attempts == 2


async def test_a_gzip_body_that_is_gzip_is_read(server: ScriptedLLMServer) -> None:
    server.add(
        ServerReply(raw_body=gzip.compress(completion()), headers={"Content-Encoding": "gzip"})
    )
    assert await native(server).complete(messages=MESSAGES) == "{}"


async def test_usage_of_the_wrong_type_is_ignored_by_the_native_client(
    server: ScriptedLLMServer,
) -> None:
    server.add(ServerReply(raw_body=completion(usage="x", model=7)))
    reply = await native(server).complete(messages=MESSAGES)
    assert reply == "{}"
    assert reply.prompt_tokens is None
    assert reply.model is None


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_never_retried_and_say_what_to_fix(
    server: ScriptedLLMServer, make: ClientFactory, status: int
) -> None:
    server.add(ServerReply.error(status, "Incorrect API key provided"), "{}")
    with pytest.raises(LLMAuthenticationError) as raised:
        await make(server).complete(messages=MESSAGES)
    assert isinstance(raised.value, LLMRequestError)
    assert raised.value.status == status
    assert "api_key" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert len(server.requests) == 1


async def test_a_missing_litellm_key_names_the_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = _LiteLLMJSONClient(
        "openai/gpt-4o-mini", temperature=0.0, json_schema_mode=True, backoff_base_s=0.001
    )
    started = time.monotonic()
    with pytest.raises(LLMAuthenticationError) as raised:
        await client.complete(messages=MESSAGES)
    assert time.monotonic() - started < 5  # not retried
    assert raised.value.attempts == 1
    assert raised.value.variable == "OPENAI_API_KEY"
    assert raised.value.provider == "openai"
    assert "Set OPENAI_API_KEY" in str(raised.value)
    # LiteLLM's own banners are off.
    captured = capfd.readouterr()
    assert "Give Feedback" not in captured.out + captured.err


async def test_litellm_errors_keep_their_class_and_cause(server: ScriptedLLMServer) -> None:
    import litellm

    server.add(ServerReply.error(400, "bad request"))
    with pytest.raises(litellm.BadRequestError) as raised:  # as the reference's callers catch
        await via_litellm(server).complete(messages=MESSAGES)
    error = raised.value
    assert isinstance(error, LLMRequestError)
    assert isinstance(error, RuntimeError)
    assert error.status == 400
    assert error.status_code == 400
    assert isinstance(error.__cause__, litellm.BadRequestError)
    assert "bad request" in str(error)

    server.add(*[ServerReply.error(503)] * 2)
    with pytest.raises(LLMServerError) as exhausted:
        await via_litellm(server, max_retries=2).complete(messages=MESSAGES)
    assert isinstance(exhausted.value, RuntimeError)
    assert exhausted.value.attempts == 2
    assert isinstance(exhausted.value.__cause__, litellm.ServiceUnavailableError)
