"""Per-trace bookkeeping: pending counts, cancellation, capacity waiters, in-flight work.

A trace is active from its first enqueue until everything it produced has been
handled *and* every Rookery item of it has been fetched. `TraceBook` is the one
place that knows which traces are active; the flow, its contexts and its node
workers all go through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from typing import Any, NamedTuple, Protocol

from ..errors import PenguiflowError
from .hooks import FlowHooks, call_hooks
from .waiting import wait_listed, wake_all

__all__ = [
    "Invocation",
    "TraceBook",
    "TraceCancelled",
    "TraceEnds",
    "TraceEvent",
    "TraceState",
    "TraceStatus",
    "current_trace",
]

current_trace: ContextVar[str | None] = ContextVar("penguiflow_current_trace", default=None)
"""The trace whose message the running node worker is handling (None outside one).

Lets the runtime attribute values a node sends without a trace id of their own
(plain dicts, models) to the trace that produced them.
"""


class TraceCancelled(PenguiflowError):
    """Raised by the runtime around work whose trace was cancelled."""

    def __init__(self, trace_id: str | None) -> None:
        super().__init__(f"trace cancelled: {trace_id}")
        self.trace_id = trace_id


class TraceStatus(NamedTuple):
    """A snapshot of one trace (`flow.trace_status(trace_id)`).

    `pending` counts its messages enqueued or being handled plus its Rookery items
    not yet fetched; `inflight` counts node invocations running for it right now;
    `cancelled` is true from `cancel()` until the trace has drained. A trace the
    flow does not know (never seen, or finished and forgotten) is `done`.
    """

    trace_id: str
    pending: int
    inflight: int
    cancelled: bool

    @property
    def done(self) -> bool:
        """Nothing of the trace is queued, running or waiting to be fetched."""
        return self.pending <= 0 and self.inflight == 0


class TraceEvent(asyncio.Event):
    """A trace's cancellation event; setting it interrupts the trace's in-flight work.

    So `flow.ensure_trace_event(t).set()` has the same effect on running nodes as
    `flow.cancel(t)`, without a watcher task per invocation.
    """

    def __init__(self, on_set: Callable[[], None], on_clear: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set
        self._on_clear = on_clear

    def set(self) -> None:
        if not self.is_set():
            super().set()
            self._on_set()

    def clear(self) -> None:
        super().clear()
        self._on_clear()


class TraceState:
    """Everything the runtime tracks for one active trace id."""

    __slots__ = ("event", "pending", "waiters")

    def __init__(self) -> None:
        self.pending = 0
        self.event: TraceEvent | None = None
        self.waiters: list[asyncio.Future[None]] = []

    @property
    def cancelled(self) -> bool:
        event = self.event
        return event is not None and event.is_set()

    def wake_waiters(self) -> None:
        wake_all(self.waiters)


class Invocation(Protocol):
    """What the book needs of a node worker: the trace it runs, and a way to stop it."""

    @property
    def trace_id(self) -> str | None: ...

    def interrupt(self) -> None: ...


class TraceEnds(Protocol):
    """Who the book tells that a trace ended (the flow's `Calls`): `claims` is tested
    first, so a flow without `call()`s pays one dict test per finished trace."""

    @property
    def claims(self) -> dict[str, Any]: ...

    def ended(self, trace_id: str, *, cancelled: bool) -> None: ...


class TraceBook:
    """The active traces of one flow.

    `track` counts a message in when it is enqueued, `finalize` counts it out when
    it has been handled (or fetched from Rookery). Capacity waiters (streaming
    producers) wait in `wait_capacity` until their trace has room again.
    """

    __slots__ = (
        "_calls",
        "_cancelled_ids",
        "_hooks",
        "_invocations",
        "_limit",
        "_states",
        "_wm_hops",
    )

    def __init__(
        self, queue_maxsize: int, hooks: FlowHooks, calls: TraceEnds | None = None
    ) -> None:
        self._calls = calls
        self._states: dict[str, TraceState] = {}
        self._cancelled_ids: set[str] = set()
        self._limit = queue_maxsize
        self._hooks = hooks
        self._wm_hops: dict[str, int] = {}
        self._invocations: Sequence[Invocation] = ()

    # -- counting (the hot path) -----------------------------------------------------

    def track(self, trace_id: str) -> None:
        """Count one more message of the trace (enqueued or delivered)."""
        state = self._states.get(trace_id)
        if state is None:
            state = self._states[trace_id] = TraceState()
        state.pending += 1

    def finalize(self, trace_id: str) -> bool:
        """Count one message of the trace as handled; True if `trace_cancel_finish` is due.

        When nothing is left pending the trace is forgotten, its capacity waiters
        are woken and the `trace_done` hooks run.
        """
        state = self._states.get(trace_id)
        if state is None:
            return False
        state.pending -= 1
        if state.pending > 0:
            if state.waiters and (self._limit <= 0 or state.pending <= self._limit):
                state.wake_waiters()
            return False
        state.pending = 0
        del self._states[trace_id]
        self._wm_hops.pop(trace_id, None)
        if state.event is not None:
            self._cancelled_ids.discard(trace_id)
        state.wake_waiters()
        calls = self._calls
        if calls is not None and calls.claims:
            calls.ended(trace_id, cancelled=state.cancelled)
        if self._hooks.trace_done:
            call_hooks("trace_done", self._hooks.trace_done, trace_id)
        return state.cancelled

    def is_cancelled(self, trace_id: str) -> bool:
        """Whether the trace's cancellation event is set."""
        return trace_id in self._cancelled_ids

    @property
    def cancelled_ids(self) -> AbstractSet[str]:
        """The ids of the cancelled traces still draining: a live view, for fast checks."""
        return self._cancelled_ids

    # -- reading ---------------------------------------------------------------------

    def pending(self, trace_id: str) -> int:
        """The trace's pending count (0 for an unknown trace)."""
        state = self._states.get(trace_id)
        return state.pending if state is not None else 0

    def known(self, trace_id: str) -> bool:
        """Whether the book holds anything for the trace."""
        return trace_id in self._states

    def active(self) -> tuple[str, ...]:
        """The ids of every trace the book holds, oldest first."""
        return tuple(self._states)

    def status(self, trace_id: str) -> TraceStatus:
        """A snapshot of the trace (see `TraceStatus`)."""
        state = self._states.get(trace_id)
        if state is None:
            return TraceStatus(trace_id, 0, self.inflight(trace_id), False)
        return TraceStatus(trace_id, state.pending, self.inflight(trace_id), state.cancelled)

    # -- in-flight work --------------------------------------------------------------

    def attach(self, invocations: Sequence[Invocation]) -> None:
        """The node workers of the running flow (each runs at most one invocation)."""
        self._invocations = invocations

    def inflight(self, trace_id: str) -> int:
        """How many node invocations of the trace are running right now."""
        return sum(1 for worker in self._invocations if worker.trace_id == trace_id)

    def interrupt(self, trace_id: str) -> None:
        """Cancel every node invocation running for the trace."""
        for worker in self._invocations:
            if worker.trace_id == trace_id:
                worker.interrupt()

    # -- cancellation ----------------------------------------------------------------

    def event(self, trace_id: str) -> TraceEvent:
        """The trace's cancellation event, created if needed.

        Setting it interrupts the trace's running invocations and runs the
        `trace_cancelled` hooks.
        """
        state = self._states.get(trace_id)
        if state is None:
            state = self._states[trace_id] = TraceState()
        if state.event is None:
            owner = state
            state.event = TraceEvent(
                lambda: self._cancelled(trace_id, owner),
                lambda: self._uncancelled(trace_id, owner),
            )
        return state.event

    def existing_event(self, trace_id: str) -> TraceEvent | None:
        """The trace's cancellation event if it has one (never creates it)."""
        state = self._states.get(trace_id)
        return state.event if state is not None else None

    def with_events(self) -> tuple[str, ...]:
        """The ids of the active traces that have a cancellation event."""
        return tuple(trace_id for trace_id, state in self._states.items() if state.event)

    def _uncancelled(self, trace_id: str, state: TraceState) -> None:
        if self._states.get(trace_id) is state:
            self._cancelled_ids.discard(trace_id)

    def _cancelled(self, trace_id: str, state: TraceState) -> None:
        if self._states.get(trace_id) is state:  # not an event of a forgotten trace
            self._cancelled_ids.add(trace_id)
        self.interrupt(trace_id)
        if self._hooks.trace_cancelled:
            call_hooks("trace_cancelled", self._hooks.trace_cancelled, trace_id)

    # -- capacity --------------------------------------------------------------------

    async def wait_capacity(self, trace_id: str) -> None:
        """Wait until the trace has fewer than `queue_maxsize` other messages pending.

        The `- 1` discounts the message being handled by the caller itself.
        """
        limit = self._limit
        if limit <= 0:
            return
        while True:
            state = self._states.get(trace_id)
            if state is None or max(state.pending - 1, 0) < limit:
                return
            await wait_listed(state.waiters)

    # -- controller snapshots --------------------------------------------------------

    def remember_wm(self, trace_id: str, hops: int) -> None:
        """Remember the hops of a WM snapshot delivered to Rookery for the trace."""
        self._wm_hops[trace_id] = hops

    def is_replayed_wm(self, trace_id: str, hops: int) -> bool:
        """Whether a WM with these hops was already delivered to Rookery for the trace."""
        remembered = self._wm_hops.get(trace_id)
        return remembered is not None and remembered == hops

    # -- reset -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every trace (on `stop()`), waking every capacity waiter first."""
        for state in self._states.values():
            state.wake_waiters()
        self._states.clear()
        self._cancelled_ids.clear()
