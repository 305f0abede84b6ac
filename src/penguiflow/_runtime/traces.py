"""Per-trace bookkeeping: pending counts, cancellation events, in-flight work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["TraceCancelled", "TraceState", "TraceEvent", "current_trace"]

current_trace: ContextVar[str | None] = ContextVar("penguiflow_current_trace", default=None)
"""The trace whose message the running node worker is handling (None outside one).

Lets the runtime attribute values a node sends without a trace id of their own
(plain dicts, models) to the trace that produced them.
"""


class TraceCancelled(Exception):
    """Raised by the runtime around work whose trace was cancelled."""

    def __init__(self, trace_id: str | None) -> None:
        super().__init__(f"trace cancelled: {trace_id}")
        self.trace_id = trace_id


class TraceEvent(asyncio.Event):
    """A trace's cancellation event; setting it interrupts the trace's in-flight work.

    So `flow.ensure_trace_event(t).set()` has the same effect on running nodes as
    `flow.cancel(t)`, without a watcher task per invocation.
    """

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` when the event is set (now, if it already is)."""
        if self.is_set():
            callback()
        else:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Forget a callback added with `add_listener` (no error if absent)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def set(self) -> None:
        if not self.is_set():
            super().set()
            self._on_set()
            listeners, self._listeners = self._listeners, []
            for callback in listeners:
                callback()


class TraceState:
    """Everything the runtime tracks for one active trace id."""

    __slots__ = ("event", "pending", "waiters")

    def __init__(self) -> None:
        self.pending = 0
        self.event: TraceEvent | None = None
        self.waiters: list[asyncio.Future[Any]] = []

    @property
    def cancelled(self) -> bool:
        event = self.event
        return event is not None and event.is_set()

    def wake_waiters(self) -> None:
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
