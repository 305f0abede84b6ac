"""A native client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Needs `httpx` (extra `openai`), imported when the client is built, not when the
planner is imported. The API key is sent only in the `Authorization` header of
requests to `base_url`; it never appears in logs, errors or `repr()`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import InvalidArgumentError
from ._reconnect import reconnecting
from ._stream import DeltaRelay
from ._usage import provider_cost, token_count
from .protocol import LLMReply
from .retry import (
    LLMAuthenticationError,
    LLMConnectionError,
    LLMEmptyResponseError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    RetryPolicy,
    parse_retry_after,
    retry_call,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAICompatibleClient"]


class OpenAICompatibleClient:
    """`JSONLLMClient` over HTTP for OpenAI-compatible `/chat/completions` endpoints.

    Retries rate limits (429, honouring `Retry-After`), 5xx, connection errors,
    timeouts and empty replies with exponential backoff and jitter; never retries
    other 4xx. Returns an `LLMReply` carrying token usage when the server reports it.
    `max_tokens` caps each reply's length (sent as `max_tokens`; unset, the server's
    own limit applies). Use as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 0.0,
        json_schema_mode: bool = True,
        max_retries: int = 3,
        timeout_s: float = 60.0,
        backoff_base_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_tokens: int | None = None,
    ) -> None:
        import httpx

        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise InvalidArgumentError(
                f"max_tokens must be None or a positive integer, got {max_tokens!r}"
            )
        self._max_tokens = max_tokens

        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._temperature = temperature
        self._json_schema_mode = json_schema_mode
        self._policy = RetryPolicy(
            max_retries=max_retries,
            timeout_s=timeout_s,
            backoff_base_s=backoff_base_s,
            max_backoff_s=max_backoff_s,
            max_retry_after_s=max_retry_after_s,
        )
        self._api_key = api_key
        request_headers = dict(headers or {})
        if api_key:
            request_headers["Authorization"] = f"Bearer {api_key}"
        self._headers = request_headers
        self._owns_client = http_client is None
        # Redirects are not followed: credentials must never go to another origin.
        self._http = http_client or httpx.AsyncClient(follow_redirects=False)

    def __repr__(self) -> str:
        return f"OpenAICompatibleClient(url={self._url!r}, model={self._model!r})"

    @property
    def model(self) -> str:
        """The model name sent with every request (the planner prices calls by it)."""
        return self._model

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool (when the client created it)."""
        if self._owns_client:
            await self._http.aclose()

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """Send the messages; return the reply text (an `LLMReply`)."""
        body = self._body(messages, response_format)
        return await retry_call(lambda: self._once(body), self._policy, describe=self._url)

    async def complete_streaming(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        on_delta: Callable[[str], None],
    ) -> str:
        """Stream the reply (`"stream": true`), calling `on_delta` with each new piece.

        Returns the whole reply as an `LLMReply` (usage from the stream's last chunk);
        its text is exactly the pieces delivered. Retries and errors are those of
        `complete()`, and `timeout_s` bounds each whole streamed attempt. A stream
        that breaks is retried without delivering its text twice; a retry that
        answers differently raises `LLMStreamDivergedError`. A server that ignores
        `"stream"` and sends one completion is read as one piece.
        """
        body = self._body(messages, response_format)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        relay = DeltaRelay(on_delta, describe=self._url)
        return await retry_call(
            lambda: self._stream_once(body, relay), self._policy, describe=self._url
        )

    def _body(
        self, messages: Sequence[Mapping[str, str]], response_format: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in messages],
            "temperature": self._temperature,
        }
        if self._max_tokens is not None:
            body["max_tokens"] = self._max_tokens
        if self._json_schema_mode and response_format is not None:
            body["response_format"] = dict(response_format)
        return body

    async def _once(self, body: dict[str, Any]) -> LLMReply:
        started = time.perf_counter()
        with self._translated():
            response = await reconnecting(
                lambda: self._http.post(
                    self._url, json=body, headers=self._headers, timeout=self._policy.timeout_s
                )
            )
        self._check_status(response)
        content, usage, model = self._completion(response)
        return _reply(content, usage, model, started)

    async def _stream_once(self, body: dict[str, Any], relay: DeltaRelay) -> LLMReply:
        started = time.perf_counter()
        relay.begin()
        with self._translated():
            async with contextlib.AsyncExitStack() as stack:
                response = await reconnecting(
                    lambda: stack.enter_async_context(
                        self._http.stream(
                            "POST",
                            self._url,
                            json=body,
                            headers=self._headers,
                            timeout=self._policy.timeout_s,
                        )
                    )
                )
                if response.status_code >= 300:
                    await response.aread()
                    self._check_status(response)
                if "text/event-stream" in response.headers.get("content-type", ""):
                    usage, model = await self._read_events(response, relay)
                else:
                    await response.aread()
                    content, usage, model = self._completion(response)
                    relay.feed(content)
        return _reply(relay.finish(), usage, model, started)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Raise httpx's transport errors as ours (a timeout as `TimeoutError`)."""
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from exc
        except httpx.DecodingError as exc:
            # A body labelled with an encoding it does not have (say gzip): the same
            # retried server fault as LiteLLM reports for it.
            raise LLMServerError(
                f"{self._url} sent a body that does not decode: {type(exc).__name__}"
            ) from exc
        except httpx.TransportError as exc:
            raise LLMConnectionError(
                f"connection to {self._url} failed: {type(exc).__name__}"
            ) from exc

    def _check_status(self, response: httpx.Response) -> None:
        """Raise the typed error for a status that is not a success (body read)."""
        status = response.status_code
        if status == 429:
            raise LLMRateLimitError(
                f"{self._url} answered 429 (rate limited)",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 500:
            raise LLMServerError(
                f"{self._url} answered {status}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 300:
            detail = _error_text(response)
            if self._api_key:
                detail = detail.replace(self._api_key, "***")
            if status in (401, 403):
                fix = (
                    "check the api_key given to OpenAICompatibleClient"
                    if self._api_key
                    else "pass api_key= to OpenAICompatibleClient"
                )
                raise LLMAuthenticationError(
                    f"{self._url} refused the credentials ({status}: {detail}); {fix}",
                    provider=self._url,
                    status=status,
                )
            raise LLMRequestError(f"{self._url} answered {status}: {detail}", status=status)

    def _completion(self, response: httpx.Response) -> tuple[str, dict[str, Any], Any]:
        """The content, usage and model of a whole (not streamed) completion."""
        status = response.status_code
        try:
            data = response.json()
            choice = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            # Truncated, nested past the parser's depth or of the wrong shape: a server
            # fault, retried, as the LiteLLM client treats the same bodies.
            raise LLMServerError(
                f"{self._url} returned a malformed completion ({type(exc).__name__})",
                status=status,
            ) from exc
        content = choice.get("content") if isinstance(choice, dict) else None
        if not content:
            raise LLMEmptyResponseError(f"{self._url} returned empty content", status=status)
        usage = data.get("usage")
        return str(content), usage if isinstance(usage, dict) else {}, data.get("model")

    async def _read_events(
        self, response: httpx.Response, relay: DeltaRelay
    ) -> tuple[dict[str, Any], Any]:
        """Feed a stream's content to `relay`; return its usage and model."""
        usage: dict[str, Any] = {}
        model: Any = None
        finished = done = False
        async with contextlib.aclosing(_sse_data(response.aiter_lines())) as events:
            async for data in events:
                # Read on past [DONE] to the end of the body: the connection is reused.
                done = done or data == "[DONE]"
                if done:
                    continue
                chunk = self._chunk(data)
                model = model or chunk.get("model")
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if content is not None and not isinstance(content, str):
                        raise LLMServerError(
                            f"{self._url} streamed a chunk whose content is not text"
                        )
                    relay.feed(content or "")
                    finished = finished or bool(choice.get("finish_reason"))
        if not (done or finished):
            raise LLMConnectionError(f"the stream from {self._url} ended before its last chunk")
        return usage, model

    def _chunk(self, data: str) -> dict[str, Any]:
        """One streamed chunk, decoded; an `error` event or a bad chunk raises."""
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise LLMServerError(
                f"{self._url} streamed a malformed chunk ({type(exc).__name__})"
            ) from exc
        if not isinstance(chunk, dict):
            raise LLMServerError(f"{self._url} streamed a chunk that is not an object")
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            detail = str(message)[:200]
            if self._api_key:
                detail = detail.replace(self._api_key, "***")
            raise LLMServerError(f"{self._url} reported an error mid-stream: {detail}")
        return chunk


async def _sse_data(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The `data` of each server-sent event (other fields and comments skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[len("data:") :]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _reply(text: str, usage: Mapping[str, Any], model: Any, started: float) -> LLMReply:
    return LLMReply(
        text,
        prompt_tokens=token_count(usage.get("prompt_tokens")),
        completion_tokens=token_count(usage.get("completion_tokens")),
        total_tokens=token_count(usage.get("total_tokens")),
        cost_usd=provider_cost(usage),
        model=model if isinstance(model, str) and model else None,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return response.text[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])[:200]
    return response.text[:200]
