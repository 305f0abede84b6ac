"""What the planner needs from an LLM client, and the reply type our clients return."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["JSONLLMClient", "LLMReply", "StreamingLLMClient"]


class JSONLLMClient(Protocol):
    """An LLM that answers OpenAI-style messages with JSON text."""

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str: ...


@runtime_checkable
class StreamingLLMClient(JSONLLMClient, Protocol):
    """A `JSONLLMClient` that can also hand over the reply text as it is generated.

    `complete_streaming` calls `on_delta` (a plain function) with each new piece of
    the reply, in order, and returns the whole reply (an `LLMReply` for our clients)
    once the stream ends. The returned text is exactly the pieces joined: when a
    stream breaks and is retried, the text already delivered is not delivered again,
    and a retry that answers differently raises `LLMStreamDivergedError`. Errors,
    retries and timeouts are those of `complete()`; the timeout covers the whole
    stream. `isinstance(client, StreamingLLMClient)` tells whether a client streams.
    """

    async def complete_streaming(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        on_delta: Callable[[str], None],
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
