"""A native client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Needs `httpx` (extra `openai`), imported when the client is built, not when the
planner is imported. The API key is sent only in the `Authorization` header of
requests to `base_url`; it never appears in logs, errors or `repr()`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import InvalidArgumentError
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
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in messages],
            "temperature": self._temperature,
        }
        if self._max_tokens is not None:
            body["max_tokens"] = self._max_tokens
        if self._json_schema_mode and response_format is not None:
            body["response_format"] = dict(response_format)
        return await retry_call(lambda: self._once(body), self._policy, describe=self._url)

    async def _once(self, body: dict[str, Any]) -> LLMReply:
        import httpx

        started = time.perf_counter()
        try:
            response = await self._http.post(
                self._url, json=body, headers=self._headers, timeout=self._policy.timeout_s
            )
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
        if not isinstance(usage, dict):
            usage = {}
        model = data.get("model")
        return LLMReply(
            str(content),
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
