"""The one retry loop shared by the LLM clients, and the typed errors it raises."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ...errors import PenguiflowError

__all__ = [
    "LLMConnectionError",
    "LLMEmptyResponseError",
    "LLMError",
    "LLMRateLimitError",
    "LLMRequestError",
    "LLMServerError",
    "LLMTimeoutError",
    "RetryPolicy",
    "parse_retry_after",
    "retry_call",
]

logger = logging.getLogger("penguiflow.planner")

T = TypeVar("T")


class LLMError(PenguiflowError, RuntimeError):
    """An LLM call failed. `status` is the HTTP status when there was one."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts


class LLMRateLimitError(LLMError):
    """429: the provider asks us to slow down (retried, honouring `Retry-After`)."""

    retryable = True


class LLMServerError(LLMError):
    """5xx from the provider (retried)."""

    retryable = True


class LLMTimeoutError(LLMError):
    """The call exceeded its per-call timeout (retried)."""

    retryable = True


class LLMConnectionError(LLMError):
    """The connection failed or was reset (retried)."""

    retryable = True


class LLMEmptyResponseError(LLMError):
    """The provider answered without content (retried)."""

    retryable = True


class LLMRequestError(LLMError):
    """A 4xx other than 429, or a malformed response: never retried."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts, how long each may take, and how to back off between them."""

    max_retries: int = 3
    timeout_s: float = 60.0
    backoff_base_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Sleep before the next attempt: `Retry-After` (capped) or full-jitter backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_backoff_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = None  # not a number: an HTTP date
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


async def retry_call(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    describe: str,
) -> T:
    """Run `call` with the per-call timeout, retrying retryable `LLMError`s.

    Raises the last error, with `attempts` set, once the attempts are used up; a
    non-retryable error is raised at once. `describe` names the target in logs (never
    a credential).
    """
    attempts = max(policy.max_retries, 1)
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(policy.timeout_s):
                return await call()
        except TimeoutError as exc:
            error: LLMError = LLMTimeoutError(
                f"LLM call to {describe} timed out after {policy.timeout_s:g}s"
            )
            error.__cause__ = exc
        except LLMError as exc:
            error = exc
        error.attempts = attempt
        if not error.retryable:
            raise error
        if attempt >= attempts:
            logger.error(
                "llm_retries_exhausted",
                extra={"max_retries": policy.max_retries, "last_error": str(error)},
            )
            raise error
        delay = policy.delay(attempt, error.retry_after)
        logger.warning(
            "llm_retry",
            extra={
                "attempt": attempt,
                "error": str(error),
                "error_type": type(error).__name__,
                "backoff_s": delay,
            },
        )
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # the loop always returns or raises
