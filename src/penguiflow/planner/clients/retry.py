"""The one retry loop shared by the LLM clients, and the typed errors it raises."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ...errors import PenguiflowError

__all__ = [
    "LLMAuthenticationError",
    "LLMConnectionError",
    "LLMEmptyResponseError",
    "LLMError",
    "LLMRateLimitError",
    "LLMRequestError",
    "LLMServerError",
    "LLMStreamDivergedError",
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


class LLMStreamDivergedError(LLMError):
    """A stream broke, and its retry answered differently from the text already
    delivered to `on_delta` (never retried: that text cannot be taken back).

    `delivered_chars` is how many characters the caller had received.
    """

    def __init__(self, message: str, *, delivered_chars: int, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.delivered_chars = delivered_chars


class LLMRequestError(LLMError):
    """A 4xx other than 429: never retried."""


class LLMAuthenticationError(LLMRequestError):
    """The provider refused the credentials, or none were given (never retried).

    The message names the provider and what to set; `provider` and `variable` (the
    environment variable to set, when known) say it as data.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        variable: str | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, attempts=attempts)
        self.provider = provider
        self.variable = variable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts, how long each may take, and how to back off between them.

    `max_retries` is the number of attempts in all (at least one), as in the
    reference: `max_retries=3` makes at most three calls. The whole loop, sleeps
    included, ends by `total_timeout_s` (default: `timeout_s` per attempt): the last
    attempt gets only what is left, and a backoff that would end past the deadline is
    not slept, the last error is raised at once.
    """

    max_retries: int = 3
    timeout_s: float = 60.0
    backoff_base_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0
    total_timeout_s: float | None = None

    @property
    def attempts(self) -> int:
        """How many calls the loop makes at most."""
        return max(self.max_retries, 1)

    @property
    def deadline_s(self) -> float:
        """Seconds the whole loop may take, sleeps included."""
        if self.total_timeout_s is not None:
            return self.total_timeout_s
        return self.timeout_s * self.attempts

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Sleep before the next attempt: `Retry-After` (capped) or full-jitter backoff.

        A `Retry-After` that is not a finite number is ignored (backoff applies).
        """
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_backoff_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date).

    `None` when the header is absent or says nothing usable: not a number or a date,
    NaN, infinite, or negative. A date in the past means "now" (0).
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = None  # not a number: an HTTP date
    if seconds is not None:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    try:
        remaining = when.timestamp() - time.time()
    except (OverflowError, OSError, ValueError):
        return None
    return max(remaining, 0.0) if math.isfinite(remaining) else None


async def retry_call(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    describe: str,
) -> T:
    """Run `call` with the per-call timeout, retrying retryable `LLMError`s.

    Raises the last error, with `attempts` set, once the attempts or the policy's
    deadline are used up (a backoff that would end past the deadline is not slept);
    a non-retryable error is raised at once. `describe` names the target in logs (never
    a credential).
    """
    attempts = policy.attempts
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.deadline_s
    for attempt in range(1, attempts + 1):
        budget = min(policy.timeout_s, deadline - loop.time())
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                return await call()
        except TimeoutError as exc:
            error: LLMError = LLMTimeoutError(
                f"LLM call to {describe} timed out after {max(budget, 0.0):g}s"
            )
            error.__cause__ = exc
        except LLMError as exc:
            error = exc
        error.attempts = attempt
        if not error.retryable:
            raise error
        delay = policy.delay(attempt, error.retry_after)
        remaining = deadline - loop.time()
        if attempt >= attempts or remaining <= 0 or delay >= remaining:
            logger.error(
                "llm_retries_exhausted",
                extra={
                    "max_retries": policy.max_retries,
                    "last_error": str(error),
                    "attempts": attempt,
                    "deadline_s": policy.deadline_s,
                },
            )
            raise error
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
