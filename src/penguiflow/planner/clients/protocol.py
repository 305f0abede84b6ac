"""What the planner needs from an LLM client, and the reply type our clients return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["JSONLLMClient", "LLMReply"]


class JSONLLMClient(Protocol):
    """An LLM that answers OpenAI-style messages with JSON text."""

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str: ...


class LLMReply(str):
    """The reply text, carrying the provider's usage figures when it reports them.

    It is a `str`, so any code expecting the protocol's plain text keeps working; the
    planner reads the attributes with `getattr` to fill its `llm_call` events.
    `cost_source` says where `cost_usd` came from (`"provider"` when not given).
    """

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    cost_source: str | None
    model: str | None
    latency_ms: float | None

    def __new__(
        cls,
        text: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
        cost_usd: float | None = None,
        cost_source: str | None = None,
        model: str | None = None,
        latency_ms: float | None = None,
    ) -> LLMReply:
        reply = super().__new__(cls, text)
        reply.prompt_tokens = prompt_tokens
        reply.completion_tokens = completion_tokens
        reply.total_tokens = total_tokens
        reply.cost_usd = cost_usd
        reply.cost_source = cost_source
        reply.model = model
        reply.latency_ms = latency_ms
        return reply
