"""LLM clients for the planner: the protocol, our reply type, the retrying clients.

The concrete clients import their HTTP/LiteLLM dependency only when built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .protocol import JSONLLMClient, LLMReply, StreamingLLMClient
from .retry import (
    LLMAuthenticationError,
    LLMConnectionError,
    LLMEmptyResponseError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMStreamDivergedError,
    LLMTimeoutError,
    RetryPolicy,
)

if TYPE_CHECKING:
    from .openai_compat import OpenAICompatibleClient

__all__ = [
    "JSONLLMClient",
    "LLMAuthenticationError",
    "LLMConnectionError",
    "LLMEmptyResponseError",
    "LLMError",
    "LLMRateLimitError",
    "LLMReply",
    "LLMRequestError",
    "LLMServerError",
    "LLMStreamDivergedError",
    "LLMTimeoutError",
    "OpenAICompatibleClient",
    "RetryPolicy",
    "StreamingLLMClient",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAICompatibleClient":
        from .openai_compat import OpenAICompatibleClient

        return OpenAICompatibleClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
