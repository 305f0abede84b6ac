"""The LiteLLM-backed client the planner builds from `llm=` (extra `planner`).

Private, as specified: users reach it as `penguiflow.planner.react._LiteLLMJSONClient`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from ...errors import MissingExtraError
from ._reconnect import reconnecting
from ._stream import DeltaRelay
from ._usage import dollars, provider_cost, token_count
from .protocol import LLMReply
from .retry import (
    LLMAuthenticationError,
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

# What LiteLLM and the provider SDKs say when the key is missing or wrong; a missing
# OpenAI key arrives as an InternalServerError (500), so the class alone is not enough.
_AUTH_TEXT = re.compile(
    r"missing (credentials|[\w ]*api[ _-]?key)|no api key|api[ _]?key[\w ]* must be set"
    r"|(incorrect|invalid) api[ _-]?key",
    re.IGNORECASE,
)
_KEY_VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*_(?:API_KEY|ACCESS_KEY_ID|API_TOKEN)\b")

_quiet = False


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
        litellm, params = self._prepare(messages, response_format)
        secrets = [str(params[k]) for k in _SECRET_KEYS if params.get(k)]
        model = str(params.get("model"))

        async def once() -> LLMReply:
            started = time.perf_counter()
            try:
                response = await reconnecting(lambda: litellm.acompletion(**params))
            except Exception as exc:
                raise _classify(exc, model, secrets) from exc
            try:
                content = response["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                raise LLMServerError(
                    f"LiteLLM returned a malformed completion from {model} ({type(exc).__name__})"
                ) from exc
            if not content:
                raise LLMEmptyResponseError(f"LiteLLM returned empty content from {model}")
            return _reply(str(content), response, started)

        return await retry_call(once, self._policy, describe=model)

    async def complete_streaming(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        on_delta: Callable[[str], None],
    ) -> str:
        """Stream the reply, calling `on_delta` with each new piece; returns an `LLMReply`.

        As `complete()`, with `stream=True` and usage asked for in the last chunk.
        A stream that breaks is retried without delivering its text twice; a retry
        that answers differently raises `LLMStreamDivergedError`.
        """
        litellm, params = self._prepare(messages, response_format)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        secrets = [str(params[k]) for k in _SECRET_KEYS if params.get(k)]
        model = str(params.get("model"))
        relay = DeltaRelay(on_delta, describe=model)

        async def once() -> LLMReply:
            started = time.perf_counter()
            relay.begin()
            last: Any = None
            with_usage: Any = None  # the last chunk (usage asked for) carries the usage
            try:
                stream = await reconnecting(lambda: litellm.acompletion(**params))
            except Exception as exc:
                raise _classify(exc, model, secrets) from exc
            async with contextlib.aclosing(_chunks(stream, model, secrets)) as chunks:
                async for chunk in chunks:
                    last = chunk
                    if _get(chunk, "usage"):
                        with_usage = chunk
                    relay.feed(_delta_text(chunk, model))
            response = with_usage or last
            return _reply(
                relay.finish(), response, started, own_cost=_table_cost(litellm, model, response)
            )

        return await retry_call(once, self._policy, describe=model)

    def _prepare(
        self, messages: Sequence[Mapping[str, str]], response_format: Mapping[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        """LiteLLM (imported now) and the parameters of `acompletion` for a call."""
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise MissingExtraError(
                "LiteLLM is not installed. Install penguiflow[planner] or provide a custom "
                "llm_client.",
                extra="planner",
            ) from exc
        _quiet_litellm(litellm)
        params: dict[str, Any] = (
            {"model": self._llm} if isinstance(self._llm, str) else dict(self._llm)
        )
        params.setdefault("temperature", self._temperature)
        params.setdefault("num_retries", 0)  # one retry loop: ours
        params.setdefault("max_retries", 0)
        params["messages"] = [dict(m) for m in messages]
        if self._json_schema_mode and response_format is not None:
            params["response_format"] = dict(response_format)
        return litellm, params


async def _chunks(stream: Any, model: str, secrets: Sequence[str]) -> AsyncGenerator[Any, None]:
    """The chunks of a LiteLLM stream, its failures raised as our typed errors.

    LiteLLM raises a `MidStreamFallbackError` (a 500) both when the connection drops
    and when a chunk is not JSON: the first is a connection error, the second a
    server fault, as the native client reports them (both retried).
    """
    try:
        async for chunk in stream:
            yield chunk
    except Exception as exc:
        error = _classify(exc, model, secrets)
        if "MidStream" in type(exc).__name__ and isinstance(error, LLMServerError):
            if any(isinstance(cause, json.JSONDecodeError) for cause in _chain(exc)):
                error = LLMServerError(f"LiteLLM streamed a malformed chunk from {model}: {error}")
            else:
                error = LLMConnectionError(f"the stream from {model} broke: {error}")
        raise error from exc
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _delta_text(chunk: Any, model: str) -> str:
    """The text a streamed chunk adds (empty for role, finish and usage chunks)."""
    choices = _get(chunk, "choices") or ()
    try:
        content = _get(_get(choices[0], "delta"), "content") if choices else None
    except (TypeError, KeyError, IndexError) as exc:
        raise LLMServerError(
            f"LiteLLM streamed a malformed chunk from {model} ({type(exc).__name__})"
        ) from exc
    if content is not None and not isinstance(content, str):
        raise LLMServerError(f"LiteLLM streamed a chunk from {model} whose content is not text")
    return content or ""


def _reply(text: str, response: Any, started: float, *, own_cost: float | None = None) -> LLMReply:
    """Our reply: `text` with the usage, cost and model `response` reports (for a
    stream, its last chunk with usage, and `own_cost`: see `_cost`)."""
    usage = _get(response, "usage") or {}
    hidden = _get(response, "_hidden_params") or {}
    cost, source = _cost(usage, hidden if isinstance(hidden, Mapping) else {}, own_cost)
    if cost:
        logger.debug("llm_call_success", extra={"cost_usd": cost})
    reported = _get(response, "model")
    return LLMReply(
        text,
        prompt_tokens=token_count(_get(usage, "prompt_tokens")),
        completion_tokens=token_count(_get(usage, "completion_tokens")),
        total_tokens=token_count(_get(usage, "total_tokens")),
        cost_usd=cost,
        cost_source=source,
        model=reported if isinstance(reported, str) and reported else None,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _get(usage: Any, key: str) -> Any:
    if isinstance(usage, Mapping):
        return usage.get(key)
    return getattr(usage, key, None)


def _cost(
    usage: Any, hidden: Mapping[str, Any], own_cost: float | None = None
) -> tuple[float | None, str | None]:
    """The call's cost and where it came from: the provider's own figure
    (`"provider"`), else LiteLLM's positive `response_cost` (`"litellm"`, from
    LiteLLM's price table).

    LiteLLM prices calls from its own table and reports 0 or nothing for models it
    does not know (a local server's, say): 0 then means "no cost known", so the
    planner prices the call by model name or counts it unpriced, never as free.
    A 0 the provider itself reports in `usage.cost` is kept. In a stream's last
    chunk LiteLLM writes its own price into `usage.cost` when the provider gave none:
    a figure there equal to `own_cost` (LiteLLM's table price of the call's tokens)
    is LiteLLM's, not the provider's.
    """
    reported = provider_cost({key: _get(usage, key) for key in ("cost", "cost_usd")})
    if reported is not None and not (own_cost and math.isclose(reported, own_cost)):
        return reported, "provider"
    computed = dollars(hidden.get("response_cost")) or own_cost
    return (computed, "litellm") if computed else (None, None)


def _table_cost(litellm: Any, model: str, response: Any) -> float | None:
    """LiteLLM's table price of the tokens `response` reports, if it knows `model`."""
    usage = _get(response, "usage")
    prompt = token_count(_get(usage, "prompt_tokens"))
    completion = token_count(_get(usage, "completion_tokens"))
    if prompt is None or completion is None:
        return None
    try:
        prices = litellm.cost_per_token(
            model=model, prompt_tokens=prompt, completion_tokens=completion
        )
    except Exception:  # LiteLLM raises plain exceptions for models it does not price
        return None
    return dollars(sum(prices))


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _quiet_litellm(litellm: Any) -> None:
    """Turn off LiteLLM's console banners ("Give Feedback / Get Help"), once: errors
    reach the caller as exceptions, and its logger still logs at WARNING."""
    global _quiet
    if not _quiet:
        litellm.suppress_debug_info = True
        _quiet = True


def _classify(exc: Exception, model: str, secrets: Sequence[str]) -> Exception:
    """Map a LiteLLM/provider exception to our typed errors (what is retried).

    A non-retryable error is raised as an instance of both the typed class and the
    original LiteLLM class (with the original's attributes), so code that catches
    LiteLLM's exceptions, as written for the reference, still catches it.
    """
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return TimeoutError(f"LiteLLM call to {model} timed out")
    status = _status(exc)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    retry_after = parse_retry_after(headers.get("retry-after")) if headers else None
    text = _redact(str(exc), secrets)
    message = f"LiteLLM call to {model} failed: {type(exc).__name__}: {text}"
    name = type(exc).__name__
    error: LLMError
    if _is_auth_failure(exc, status):
        provider = getattr(exc, "llm_provider", None) or model.partition("/")[0]
        found = _KEY_VARIABLE.search(_chain_text(exc))
        variable = found.group(0) if found else f"{str(provider).upper()}_API_KEY"
        return _as_original(
            LLMAuthenticationError(
                f"LiteLLM call to {model} failed: the {provider} API key is missing or "
                f"was refused. Set {variable} (or pass api_key in llm=...). "
                f"Provider said: {text[:300]}",
                provider=str(provider),
                variable=variable,
                status=status,
            ),
            exc,
        )
    if status == 429 or "RateLimit" in name:
        error = LLMRateLimitError(message, status=status, retry_after=retry_after)
    elif (status is not None and status >= 500) or "ServiceUnavailable" in name:
        error = LLMServerError(message, status=status, retry_after=retry_after)
    elif "Connection" in name:
        error = LLMConnectionError(message, status=status)
    else:
        return _as_original(LLMRequestError(message, status=status), exc)
    return error


def _status(exc: Exception) -> int | None:
    """The HTTP status LiteLLM reports (an int, or sometimes its text)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, bool):
        return None
    if isinstance(status, int):
        return status
    if isinstance(status, str) and status.isdigit():
        return int(status)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (at most eight)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _chain_text(exc: BaseException) -> str:
    """The messages of `exc` and the exceptions it was raised from."""
    return "\n".join(str(cause) for cause in _chain(exc))


def _is_auth_failure(exc: Exception, status: int | None) -> bool:
    name = type(exc).__name__
    if "Authentication" in name or "PermissionDenied" in name or status in (401, 403):
        return True
    return bool(_AUTH_TEXT.search(_chain_text(exc)))


_BOTH: dict[tuple[type[LLMError], type[BaseException]], type[LLMError] | None] = {}


def _as_original(error: LLMError, original: Exception) -> LLMError:
    """`error`, as an instance of its class and of `original`'s class.

    Falls back to `error` alone (chained to `original`) when the two classes cannot
    be combined (an exception class with an incompatible layout).
    """
    key = (type(error), type(original))
    if key not in _BOTH:
        try:
            combined: type[LLMError] | None = type(
                type(error).__name__,
                (type(error), type(original)),
                {
                    "__module__": type(error).__module__,
                    "__qualname__": type(error).__qualname__,
                    "__str__": BaseException.__str__,
                    "__repr__": BaseException.__repr__,
                },
            )
        except TypeError:
            logger.debug("llm_error_not_combined", extra={"original": type(original).__name__})
            combined = None
        _BOTH[key] = combined
    combined = _BOTH[key]
    if combined is None:
        return error
    both = combined.__new__(combined, *error.args)
    both.__dict__.update(vars(original))
    both.__dict__.update(vars(error))
    both.args = error.args
    return both
