"""Hook lists: how code outside the engine observes a running flow.

Each hook kind is a plain list of callables. Any number of subscribers append
themselves and remove themselves again; nobody chains a "previous" callback.
Hooks run inline on the event loop, so they must be quick and must not block. A
hook that raises is logged and skipped: it never breaks the flow or the other hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import exception_repr

if TYPE_CHECKING:
    from ..errors import FlowError
    from ..metrics import FlowEvent

__all__ = ["FlowHooks", "RookeryDelivery"]

logger = logging.getLogger("penguiflow.core")


class RookeryDelivery:
    """An item on its way to Rookery, and the trace that produced it.

    `trace_id` is the item's own trace id, or else the trace whose message the
    delivering node was handling (so plain values are attributed too); `None` for
    work outside any trace. A hook may replace `item` (for example to tag it with
    its trace); the last replacement is what `fetch()` returns.
    """

    # A plain slotted class, not a dataclass: it is built on every import of the
    # runtime, and a dataclass costs about a millisecond to define.
    __slots__ = ("item", "trace_id")

    def __init__(self, item: Any, trace_id: str | None) -> None:
        self.item = item
        self.trace_id = trace_id

    def __repr__(self) -> str:
        return f"RookeryDelivery(item={self.item!r}, trace_id={self.trace_id!r})"


RookeryHook = Callable[[RookeryDelivery], None]
FailureHook = Callable[["FlowError"], None]
EventHook = Callable[["FlowEvent"], None]
TraceHook = Callable[[str], None]


class FlowHooks:
    """The hook lists of one flow (`flow.hooks`).

    * `rookery`: `(RookeryDelivery) -> None`, for every item sent to Rookery,
      before it is enqueued.
    * `node_failed`: `(FlowError) -> None`, once per node that failed for good
      (after its retries) when the error is not delivered to Rookery (the default,
      `emit_errors_to_rookery=False`), so a caller waiting on the trace learns of it.
    * `event`: `(FlowEvent) -> None`, for every event the flow emits (`node_start`
      and the other DEBUG events included).
    * `trace_cancelled`: `(trace_id) -> None`, when a trace's cancellation starts.
    * `trace_done`: `(trace_id) -> None`, when a trace has nothing left pending:
      every message handled and every Rookery item fetched.

    Usage::

        failures = []
        flow.hooks.node_failed.append(failures.append)
        ...
        flow.hooks.node_failed.remove(failures.append)
    """

    __slots__ = ("_event", "_node_failed", "_rookery", "_trace_cancelled", "_trace_done")

    # The lists themselves are fixed (read-only attributes): the engine keeps
    # references to them, so subscribers change their contents, never replace them.

    def __init__(self) -> None:
        self._rookery: list[RookeryHook] = []
        self._node_failed: list[FailureHook] = []
        self._event: list[EventHook] = []
        self._trace_cancelled: list[TraceHook] = []
        self._trace_done: list[TraceHook] = []

    @property
    def rookery(self) -> list[RookeryHook]:
        """Called with a `RookeryDelivery` for every item sent to Rookery."""
        return self._rookery

    @property
    def node_failed(self) -> list[FailureHook]:
        """Called with the `FlowError` of a node that failed for good."""
        return self._node_failed

    @property
    def event(self) -> list[EventHook]:
        """Called with every `FlowEvent`."""
        return self._event

    @property
    def trace_cancelled(self) -> list[TraceHook]:
        """Called with the trace id when a trace's cancellation starts."""
        return self._trace_cancelled

    @property
    def trace_done(self) -> list[TraceHook]:
        """Called with the trace id when nothing of the trace is left pending."""
        return self._trace_done

    def __repr__(self) -> str:
        kinds = ("rookery", "node_failed", "event", "trace_cancelled", "trace_done")
        counts = ", ".join(f"{name}={len(getattr(self, name))}" for name in kinds)
        return f"FlowHooks({counts})"


_T = TypeVar("_T")


def call_hooks(kind: str, hooks: Sequence[Callable[[_T], None]], argument: _T) -> None:
    """Call every hook of one kind with `argument`; a failing hook is logged, not raised."""
    for hook in list(hooks):
        try:
            hook(argument)
        except Exception as exc:
            logger.exception(
                "flow_hook_error",
                extra={"event": "flow_hook_error", "hook": kind, "exception": exception_repr(exc)},
            )
