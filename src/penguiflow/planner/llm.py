"""The planner's side of an LLM call: which `response_format`, and one `llm_call` event."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from .clients.protocol import JSONLLMClient
from .events import EventSink
from .models import PlannerEvent, Trajectory, action_schema

__all__ = ["LLMChannel"]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "model")


class LLMChannel:
    """The planner's LLM clients and how it calls them.

    `client` answers actions; `summarizer` (when set) condenses long histories, else
    `client` does. Both may be replaced between runs. Each completion is reported
    as an `llm_call` event when anyone listens.
    """

    __slots__ = ("action_schema", "client", "events", "json_schema_mode", "summarizer")

    def __init__(
        self,
        client: JSONLLMClient,
        *,
        summarizer: JSONLLMClient | None,
        json_schema_mode: bool,
        events: EventSink,
    ) -> None:
        self.client = client
        self.summarizer = summarizer
        self.json_schema_mode = json_schema_mode
        self.action_schema: dict[str, Any] = action_schema()
        self.events = events

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The action schema when JSON-schema mode is on, else `None`."""
        return self.action_schema if self.json_schema_mode else None

    def format_for(self, client: object) -> dict[str, Any] | None:
        """The `response_format` an action request to `client` carries.

        The action schema in JSON-schema mode, or when the client declares
        `expects_json_schema`; else `None`.
        """
        if self.json_schema_mode or getattr(client, "expects_json_schema", False):
            return self.action_schema
        return None

    def complete(
        self,
        client: JSONLLMClient,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        trajectory: Trajectory,
        attempt: int,
        *,
        purpose: Literal["action", "summary"] = "action",
    ) -> Awaitable[str]:
        """One completion, to await; client errors propagate (after their `llm_call` event).

        When nobody listens this is the client's own call, with nothing around it.
        """
        if not self.events.listening():
            return client.complete(messages=messages, response_format=response_format)
        return self._reported(
            lambda: client.complete(messages=messages, response_format=response_format),
            trajectory,
            attempt,
            purpose,
        )

    async def _reported(
        self,
        call: Callable[[], Awaitable[str]],
        trajectory: Trajectory,
        attempt: int,
        purpose: str,
    ) -> str:
        events = self.events
        started = time.perf_counter()
        raw: str | None = None
        error: str | None = None
        try:
            raw = await call()
            return raw
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            extra: dict[str, Any] = {"attempt": attempt, "purpose": purpose}
            for key in _USAGE_KEYS:
                value = getattr(raw, key, None)
                if value is not None:
                    extra[key] = value
            events.emit(
                PlannerEvent(
                    "llm_call",
                    ts=events.time_source(),
                    trajectory_step=len(trajectory.steps),
                    latency_ms=(time.perf_counter() - started) * 1000,
                    error=error,
                    extra=extra,
                )
            )
