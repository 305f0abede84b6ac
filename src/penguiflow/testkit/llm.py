"""An in-process scripted LLM client for testing planners offline."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError, PenguiflowError

__all__ = ["ScriptExhaustedError", "ScriptedLLMClient"]

Reply = str | Mapping[str, Any] | BaseModel | BaseException
ScriptItem = Reply | Callable[[Sequence[Mapping[str, str]]], Reply]


class ScriptExhaustedError(PenguiflowError, RuntimeError):
    """The planner asked for more completions than the script holds."""


class ScriptedLLMClient:
    """A `JSONLLMClient` that answers each `complete()` call with the next scripted item.

    Each item is returned as text (`str` as is; a mapping or pydantic model as JSON),
    raised (an exception instance), or called with the messages to produce one of
    those. Every call is recorded in `calls` (messages and response_format), so
    tests can assert on what the planner sent. `delay_s` makes each call sleep, to
    model a slow provider. Raises `ScriptExhaustedError` when the script runs out,
    unless `default` is given.

    `complete_streaming()` (it is a `StreamingLLMClient`) returns the same reply as
    `complete()` would, after handing it to `on_delta` in pieces of `chunk_chars`
    characters, `chunk_delay_s` seconds apart; its calls are recorded with
    `"stream": True`.
    """

    def __init__(
        self,
        replies: Iterable[ScriptItem] = (),
        *,
        default: ScriptItem | None = None,
        delay_s: float = 0.0,
        expects_json_schema: bool = False,
        chunk_chars: int = 4,
        chunk_delay_s: float = 0.0,
    ) -> None:
        if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
            raise InvalidArgumentError(
                f"chunk_chars must be a positive integer, got {chunk_chars!r}"
            )
        self._script: deque[ScriptItem] = deque(replies)
        self._default = default
        self._delay_s = delay_s
        self._chunk_chars = chunk_chars
        self._chunk_delay_s = chunk_delay_s
        self.expects_json_schema = expects_json_schema
        self.calls: list[dict[str, Any]] = []

    def add(self, *replies: ScriptItem) -> None:
        """Append replies to the script."""
        self._script.extend(replies)

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been used yet."""
        return len(self._script)

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """Return (or raise) the next scripted reply."""
        self.calls.append(
            {"messages": [dict(m) for m in messages], "response_format": response_format}
        )
        return await self._next(messages)

    async def complete_streaming(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        on_delta: Callable[[str], None],
    ) -> str:
        """Deliver the next scripted reply to `on_delta` in pieces, then return it.

        A scripted exception is raised before any piece is delivered.
        """
        self.calls.append(
            {
                "messages": [dict(m) for m in messages],
                "response_format": response_format,
                "stream": True,
            }
        )
        text = await self._next(messages)
        size = self._chunk_chars
        for start in range(0, len(text), size):
            if start and self._chunk_delay_s:
                await asyncio.sleep(self._chunk_delay_s)
            on_delta(text[start : start + size])
        return text

    async def _next(self, messages: Sequence[Mapping[str, str]]) -> str:
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._script:
            item = self._script.popleft()
        elif self._default is not None:
            item = self._default
        else:
            raise ScriptExhaustedError(
                f"ScriptedLLMClient has no reply left for call #{len(self.calls)}"
            )
        if callable(item) and not isinstance(item, BaseModel | BaseException):
            item = item(messages)
        return _as_text(item)


def _as_text(reply: Reply) -> str:
    if isinstance(reply, BaseException):
        raise reply
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    if isinstance(reply, Mapping):
        return json.dumps(reply, ensure_ascii=False)
    raise TypeError(
        f"scripted reply must be str, mapping, BaseModel or exception, got {type(reply).__name__}"
    )
