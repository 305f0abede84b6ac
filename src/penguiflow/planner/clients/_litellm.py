"""The LiteLLM-backed client the planner builds from `llm=` (extra `planner`).

Private, as specified: users reach it as `penguiflow.planner.react._LiteLLMJSONClient`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import MissingExtraError
from ._usage import dollars, provider_cost, token_count
from .protocol import LLMReply
from .retry import (
    LLMConnectionError,
    LLMEmptyResponseError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    RetryPolicy,
    parse_retry_after,
    retry_call,
)

logger = logging.getLogger("penguiflow.planner")

_SECRET_KEYS = ("api_key", "azure_ad_token", "aws_secret_access_key", "vertex_credentials")


class _LiteLLMJSONClient:
    """`JSONLLMClient` over `litellm.acompletion`, with the shared retry loop.

    LiteLLM is imported at the first call (the planner stays importable without it).
    Credentials given in the `llm` mapping are passed to LiteLLM only; they are
    redacted from every error message and never logged.
    """

    def __init__(
        self,
        llm: str | Mapping[str, Any],
        *,
        temperature: float,
        json_schema_mode: bool,
        max_retries: int = 3,
        timeout_s: float = 60.0,
        backoff_base_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._llm = llm
        self._temperature = temperature
        self._json_schema_mode = json_schema_mode
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._policy = RetryPolicy(
            max_retries=max_retries,
            timeout_s=timeout_s,
            backoff_base_s=backoff_base_s,
            max_backoff_s=max_backoff_s,
        )

    def __repr__(self) -> str:
        return f"_LiteLLMJSONClient(model={self.model!r})"

    @property
    def model(self) -> str | None:
        """The configured model name (`llm`, or its `"model"` entry)."""
        model = self._llm if isinstance(self._llm, str) else self._llm.get("model")
        return str(model) if model else None

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """One completion, retried per the policy; returns an `LLMReply`."""
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise MissingExtraError(
                "LiteLLM is not installed. Install penguiflow[planner] or provide a custom "
                "llm_client.",
                extra="planner",
            ) from exc
        params: dict[str, Any] = (
            {"model": self._llm} if isinstance(self._llm, str) else dict(self._llm)
        )
        params.setdefault("temperature", self._temperature)
        params.setdefault("num_retries", 0)  # one retry loop: ours
        params.setdefault("max_retries", 0)
        params["messages"] = [dict(m) for m in messages]
        if self._json_schema_mode and response_format is not None:
            params["response_format"] = dict(response_format)
        secrets = [str(params[k]) for k in _SECRET_KEYS if params.get(k)]
        model = str(params.get("model"))

        async def once() -> LLMReply:
            started = time.perf_counter()
            try:
                response = await litellm.acompletion(**params)
            except Exception as exc:
                raise _classify(exc, model, secrets) from None
            content = response["choices"][0]["message"]["content"]
            if not content:
                raise LLMEmptyResponseError(f"LiteLLM returned empty content from {model}")
            usage = response.get("usage") or {}
            cost, source = _cost(usage, response.get("_hidden_params") or {})
            if cost:
                logger.debug("llm_call_success", extra={"cost_usd": cost})
            reported = response.get("model")
            return LLMReply(
                str(content),
                prompt_tokens=token_count(_get(usage, "prompt_tokens")),
                completion_tokens=token_count(_get(usage, "completion_tokens")),
                total_tokens=token_count(_get(usage, "total_tokens")),
                cost_usd=cost,
                cost_source=source,
                model=reported if isinstance(reported, str) and reported else None,
                latency_ms=(time.perf_counter() - started) * 1000,
            )

        return await retry_call(once, self._policy, describe=model)


def _get(usage: Any, key: str) -> Any:
    if isinstance(usage, Mapping):
        return usage.get(key)
    return getattr(usage, key, None)


def _cost(usage: Any, hidden: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The call's cost and where it came from: the provider's own figure
    (`"provider"`), else LiteLLM's positive `response_cost` (`"litellm"`, from
    LiteLLM's price table).

    LiteLLM prices calls from its own table and reports 0 or nothing for models it
    does not know (a local server's, say): 0 then means "no cost known", so the
    planner prices the call by model name or counts it unpriced, never as free.
    A 0 the provider itself reports in `usage.cost` is kept.
    """
    reported = provider_cost({key: _get(usage, key) for key in ("cost", "cost_usd")})
    if reported is not None:
        return reported, "provider"
    computed = dollars(hidden.get("response_cost"))
    return (computed, "litellm") if computed else (None, None)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _classify(exc: Exception, model: str, secrets: Sequence[str]) -> Exception:
    """Map a LiteLLM/provider exception to our typed errors (what is retried)."""
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return TimeoutError(f"LiteLLM call to {model} timed out")
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    retry_after = parse_retry_after(headers.get("retry-after")) if headers else None
    message = f"LiteLLM call to {model} failed: {type(exc).__name__}: {_redact(str(exc), secrets)}"
    name = type(exc).__name__
    error: LLMError
    if status == 429 or "RateLimit" in name:
        error = LLMRateLimitError(message, status=status, retry_after=retry_after)
    elif (isinstance(status, int) and status >= 500) or "ServiceUnavailable" in name:
        error = LLMServerError(message, status=status, retry_after=retry_after)
    elif "Connection" in name:
        error = LLMConnectionError(message, status=status)
    else:
        error = LLMRequestError(message, status=status)
    return error
