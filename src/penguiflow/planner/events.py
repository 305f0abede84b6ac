"""Where planner events go: the `penguiflow.planner` logger and the `event_callback`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .models import PlannerEvent, PlannerEventCallback

__all__ = ["EventSink"]

logger = logging.getLogger("penguiflow.planner")

# Attributes of every `LogRecord`: an event key with one of these names would make
# `logger.info(..., extra=...)` raise, so it is logged as `extra_<name>` instead.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class EventSink:
    """Emits a run's `PlannerEvent`s: logged at INFO, then given to the callback.

    `time_source` is the clock events are stamped with. Build an event only when
    `listening()`: when nobody would see it, the planner skips the work.
    """

    __slots__ = ("callback", "time_source")

    def __init__(
        self, callback: PlannerEventCallback | None, time_source: Callable[[], float]
    ) -> None:
        self.callback = callback
        self.time_source = time_source

    def listening(self) -> bool:
        """Whether anyone sees events (a callback, or INFO logging on the planner logger)."""
        return self.callback is not None or logger.isEnabledFor(logging.INFO)

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
        if logger.isEnabledFor(logging.INFO):
            logger.info(event.event_type, extra=_log_safe(event.to_payload()))
        callback = self.callback
        if callback is None:
            return
        try:
            callback(event)
        except Exception:
            logger.exception(
                "event_callback_error",
                extra={"event_type": event.event_type, "step": event.trajectory_step},
            )


def _log_safe(payload: dict[str, Any]) -> dict[str, Any]:
    return {(f"extra_{k}" if k in _RESERVED else k): v for k, v in payload.items()}
