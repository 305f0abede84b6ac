"""Where planner events go: the `penguiflow.planner` logger, the `event_callback`, and
the `event` hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._logfmt import LogLine
from .models import PlannerEvent, PlannerEventCallback

__all__ = ["EventSink"]

logger = logging.getLogger("penguiflow.planner")

# Attributes of every `LogRecord`: an event key with one of these names would make
# `logger.info(..., extra=...)` raise, so it is logged as `extra_<name>` instead.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Events that come many to a step (pieces of a streamed answer) are logged at DEBUG.
_CHATTY = frozenset({"llm_stream_chunk"})


class EventSink:
    """Emits a run's `PlannerEvent`s: logged at INFO, then given to the callback.

    `time_source` is the clock events are stamped with. Build an event only when
    `listening()`: when nobody would see it, the planner skips the work.
    """

    __slots__ = ("callback", "hooks", "time_source")

    def __init__(
        self,
        callback: PlannerEventCallback | None,
        time_source: Callable[[], float],
        hooks: list[PlannerEventCallback] | None = None,
    ) -> None:
        self.callback = callback
        self.time_source = time_source
        self.hooks: list[PlannerEventCallback] = hooks if hooks is not None else []

    def listening(self) -> bool:
        """Whether anyone sees events (a callback, a hook, or INFO logging on the planner
        logger)."""
        return self.callback is not None or bool(self.hooks) or logger.isEnabledFor(logging.INFO)

    def observed(self) -> bool:
        """Whether code sees events (a callback or a hook), not only the log."""
        return self.callback is not None or bool(self.hooks)

    def emit_now(
        self,
        event_type: str,
        trajectory_step: int,
        *,
        thought: str | None = None,
        error: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> float:
        """Read the clock once and, when anyone listens, emit the event stamped with it.

        Returns the reading: the clock is read whether or not the event is built.
        """
        ts = self.time_source()
        if self.listening():
            self.emit(
                PlannerEvent(
                    event_type,
                    ts=ts,
                    trajectory_step=trajectory_step,
                    thought=thought,
                    error=error,
                    extra=extra or {},
                )
            )
        return ts

    def emit(self, event: PlannerEvent) -> None:
        """Log the event, then call the callback; a failing callback is logged, not raised."""
        level = logging.DEBUG if event.event_type in _CHATTY else logging.INFO
        if logger.isEnabledFor(level):
            payload = event.to_payload()
            logger.log(
                level, LogLine(event.event_type), _line_fields(payload), extra=_log_safe(payload)
            )
        callback = self.callback
        if callback is not None:
            try:
                callback(event)
            except Exception:
                logger.exception(
                    "event_callback_error",
                    extra={"event_type": event.event_type, "step": event.trajectory_step},
                )
        for hook in list(self.hooks):
            try:
                hook(event)
            except Exception:
                logger.exception(
                    "planner_hook_error",
                    extra={"event_type": event.event_type, "step": event.trajectory_step},
                )


# Free text goes last in a line, so the short fields stay aligned at the front.
_TEXT_LAST = ("thought", "error")
# Named as in the runtime's lines (`node=...`).
_LINE_KEYS = {"node_name": "node"}


def _line_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """What a person reads in an event's line: the payload without `event`/`ts` and
    nested values, with the thought and error last (the payload stays in `extra`)."""
    fields = {
        _LINE_KEYS.get(k, k): v
        for k, v in payload.items()
        if k not in ("event", "ts") and k not in _TEXT_LAST and not isinstance(v, Mapping | list)
    }
    for key in _TEXT_LAST:
        fields[key] = payload.get(key)
    return fields


def _log_safe(payload: dict[str, Any]) -> dict[str, Any]:
    return {(f"extra_{k}" if k in _RESERVED else k): v for k, v in payload.items()}
