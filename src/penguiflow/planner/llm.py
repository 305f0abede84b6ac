"""The planner's side of an LLM call: which `response_format`, the run's usage and cost,
its `llm` span, and one `llm_call` event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .action_schema import ActionSchemas
from .answer_stream import AnswerStream
from .clients.protocol import JSONLLMClient
from .events import EventSink
from .models import PlannerEvent, Trajectory, action_schema
from .observe import RunState
from .usage import price_of

if TYPE_CHECKING:
    from .checks import RepeatedCall

__all__ = ["LLMChannel"]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "model")


class LLMChannel:
    """The planner's LLM clients and how it calls them.

    `client` answers actions; `summarizer` (when set) condenses long histories, else
    `client` does. Both may be replaced between runs. Each completion is counted in
    the active run's usage (`active`, set by the planner loop), recorded as an `llm`
    span when the run is traced, and reported as an `llm_call` event when anyone
    listens. With `stream_answer` on, an action asked of a client that streams
    (`complete_streaming`) during a run that code observes is streamed, so its answer
    can be emitted as it is written (see `AnswerStream`).
    """

    __slots__ = (
        "action_schema",
        "active",
        "client",
        "events",
        "json_schema_mode",
        "schemas",
        "stream_answer",
        "summarizer",
    )

    def __init__(
        self,
        client: JSONLLMClient,
        *,
        summarizer: JSONLLMClient | None,
        json_schema_mode: bool,
        events: EventSink,
        schemas: ActionSchemas | None = None,
        stream_answer: bool = True,
    ) -> None:
        self.client = client
        self.stream_answer = stream_answer
        self.summarizer = summarizer
        self.json_schema_mode = json_schema_mode
        # The generic action schema (the reference's), and the catalog's with its
        # fallbacks, which JSON-schema mode sends.
        self.action_schema: dict[str, Any] = action_schema()
        self.schemas = schemas if schemas is not None else ActionSchemas((), level="generic")
        self.events = events
        self.active: RunState | None = None

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The action schema when JSON-schema mode is on, else `None`."""
        return self.action_schema if self.json_schema_mode else None

    def format_for(
        self, client: object, *, held: str | None = None, repeated: RepeatedCall | None = None
    ) -> dict[str, Any] | None:
        """The `response_format` an action request to `client` carries.

        In JSON-schema mode the catalog's action schema (or the fallback a server
        that refused it was given, see `ActionSchemas`): with tool `held` held to its
        own arguments; or after a `repeated` call, a finish (the same result twice) or
        the schema without that tool (it failed twice). Else the generic action schema
        when the client declares `expects_json_schema`, or `None`.
        """
        if self.json_schema_mode:
            if held is not None:
                return self.schemas.holding(held)
            if repeated is None:
                return self.schemas.current
            if repeated.failed:
                return self.schemas.without(repeated.tool)
            return self.schemas.finishing()
        if getattr(client, "expects_json_schema", False):
            return self.action_schema
        return None

    def answer_stream(self, client: JSONLLMClient, trajectory: Trajectory) -> AnswerStream | None:
        """A new `AnswerStream` when an action asked of `client` now is streamed, else
        `None`: streaming is on, the client streams, and a run's events are observed."""
        run = self.active
        if (
            run is None
            or not self.stream_answer
            or not self.events.observed()
            or not callable(getattr(client, "complete_streaming", None))
        ):
            return None
        return AnswerStream(self.events, number=run.next_answer_stream, step=len(trajectory.steps))

    def complete(
        self,
        client: JSONLLMClient,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        trajectory: Trajectory,
        attempt: int,
        *,
        purpose: Literal["action", "summary"] = "action",
        on_delta: Callable[[str], None] | None = None,
    ) -> Awaitable[str]:
        """One completion, to await; client errors propagate (after their `llm_call` event).

        With `on_delta`, the reply is streamed (`client.complete_streaming`) and each
        piece of its text is given to `on_delta` as it arrives. Outside a run, with
        nobody listening, this is the client's own call.
        """
        run = self.active
        listening = self.events.listening()
        if run is None and not listening:
            return _call(client, messages, response_format, on_delta)
        if run is not None and run.trace is None and not listening:
            return self._counted(client, messages, response_format, run, on_delta)
        return self._reported(
            client,
            messages,
            response_format,
            trajectory,
            attempt,
            purpose,
            run,
            on_delta,
        )

    @staticmethod
    async def _counted(
        client: JSONLLMClient,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        run: RunState,
        on_delta: Callable[[str], None] | None,
    ) -> str:
        """The call counted in the run's usage, and nothing else (nobody observes)."""
        raw = await _call(client, messages, response_format, on_delta)
        prompt = getattr(raw, "prompt_tokens", None)
        completion = getattr(raw, "completion_tokens", None)
        cost, _ = _cost_of(raw, getattr(raw, "model", None) or _model_of(client))
        run.ledger.add_llm_call(prompt, completion, getattr(raw, "total_tokens", None), cost)
        return raw

    async def _reported(
        self,
        client: JSONLLMClient,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        trajectory: Trajectory,
        attempt: int,
        purpose: str,
        run: RunState | None,
        on_delta: Callable[[str], None] | None,
    ) -> str:
        events = self.events
        trace = run.trace if run is not None else None
        configured = _model_of(client)
        span = summary = None
        if trace is not None:
            if purpose == "summary":
                summary = trace.emitter.open("summary", "summary", parent=trace.parent)
            span = trace.open_llm(purpose, attempt, messages, configured)
            if summary is not None:
                span.parent_id = summary.span_id
        started = time.perf_counter()
        raw: str | None = None
        failure: BaseException | None = None
        try:
            raw = await _call(client, messages, response_format, on_delta)
            return raw
        except BaseException as exc:
            failure = exc
            raise
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            extra: dict[str, Any] = {"attempt": attempt, "purpose": purpose}
            for key in _USAGE_KEYS:
                value = getattr(raw, key, None)
                if value is not None:
                    extra[key] = value
            if raw is not None:
                cost, source = _cost_of(raw, extra.get("model") or configured)
                if cost is not None:
                    extra["cost_usd"] = cost
                    extra["cost_source"] = source
                if run is not None:
                    run.ledger.add_llm_call(
                        extra.get("prompt_tokens"),
                        extra.get("completion_tokens"),
                        extra.get("total_tokens"),
                        cost,
                    )
            error = None if failure is None else f"{type(failure).__name__}: {failure}"
            if span is not None and trace is not None:
                attrs = span.attributes
                attrs.update(extra)
                attrs.pop("attempt", None)
                attrs["latency_ms"] = latency_ms
                if raw is not None:
                    span.content["reply"] = str(raw)
                    model = extra.get("model")
                    if model and span.name == "llm":
                        span.name = str(model)
                status = "ok" if failure is None else _failed_status(failure)
                trace.emitter.close(span, status, error=failure)
                if summary is not None:
                    trace.emitter.close(summary, status, error=failure)
            if events.listening() and not isinstance(failure, asyncio.CancelledError):
                events.emit(
                    PlannerEvent(
                        "llm_call",
                        ts=events.time_source(),
                        trajectory_step=len(trajectory.steps),
                        latency_ms=latency_ms,
                        error=error,
                        extra=extra,
                    )
                )


def _call(
    client: JSONLLMClient,
    messages: Sequence[Mapping[str, str]],
    response_format: Mapping[str, Any] | None,
    on_delta: Callable[[str], None] | None,
) -> Awaitable[str]:
    """The client's completion: streamed to `on_delta` when given, else whole."""
    if on_delta is None:
        return client.complete(messages=messages, response_format=response_format)
    stream: Callable[..., Awaitable[str]] = getattr(client, "complete_streaming")  # noqa: B009
    return stream(messages=messages, response_format=response_format, on_delta=on_delta)


def _cost_of(raw: object, model: str | None) -> tuple[float | None, str | None]:
    """What a reply cost, and where that figure came from.

    The reply's own `cost_usd` (its `cost_source`, else `"provider"`), else the price
    table's price for `model` and the reply's tokens (`"price_table"`), else none.
    """
    cost = getattr(raw, "cost_usd", None)
    if cost is not None:
        return cost, getattr(raw, "cost_source", None) or "provider"
    cost = price_of(
        model, getattr(raw, "prompt_tokens", None), getattr(raw, "completion_tokens", None)
    )
    return (cost, "price_table") if cost is not None else (None, None)


def _model_of(client: object) -> str | None:
    """The model a client is configured with, when it says (`model` attribute)."""
    model = getattr(client, "model", None)
    return model if isinstance(model, str) and model else None


def _failed_status(exc: BaseException) -> str:
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
