"""`EventSink`: builds each `FlowEvent` and hands it to logs, store, hooks and middlewares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .._logfmt import LogLine
from ..errors import exception_repr
from ..metrics import FlowEvent, build_event
from .hooks import EventHook, FlowHooks, call_hooks
from .traces import TraceBook

if TYPE_CHECKING:
    from ..middlewares import Middleware
    from ..node import Node
    from ..state import StateStore, StoredEvent
    from .graph import Endpoint

__all__ = ["EdgeGauge", "EventSink", "logger"]

logger = logging.getLogger("penguiflow.core")

# LogRecord attributes that `extra=` must not overwrite (logging raises KeyError).
_RESERVED_LOG_KEYS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def _log_extra(payload: dict[str, Any]) -> dict[str, Any]:
    if _RESERVED_LOG_KEYS.isdisjoint(payload):
        return payload
    return {(f"extra_{k}" if k in _RESERVED_LOG_KEYS else k): v for k, v in payload.items()}


def _line_fields(event: FlowEvent, exc: BaseException | None) -> dict[str, Any]:
    """What a person reads in the event's log line (the full payload stays in `extra`):
    node, trace, attempt, latency, the event's own scalar extras, the error last."""
    fields: dict[str, Any] = {
        "node": event.node_name,
        "trace": event.trace_id,
        "attempt": event.attempt,
        "latency_ms": event.latency_ms,
    }
    error: Any = exc
    for key, value in event.extra.items():
        if key == "exception":
            error = exc if exc is not None else value
        elif key == "flow_error" and isinstance(value, Mapping):
            fields["code"] = value.get("code")
        elif not isinstance(value, Mapping | list | tuple | set):
            fields[key] = value
    fields["error"] = error
    return fields


class EdgeGauge(Protocol):
    """What an event reads of the context it is about (a `Context` is one)."""

    def queue_depth_in(self) -> int: ...

    def queue_depth_out(self) -> int: ...

    def outgoing_count(self) -> int: ...


class EventSink:
    """Where a flow's events go, in order: the log, the state store, the event hooks,
    then the middlewares.

    An event is only built when someone will see it (`listening`), so a flow
    nobody observes pays almost nothing for its events.
    """

    __slots__ = (
        "_event_hooks",
        "_middlewares",
        "_queue_maxsize",
        "_saving",
        "_store",
        "_traces",
    )

    def __init__(
        self,
        *,
        middlewares: list[Middleware],
        store: StateStore | None,
        hooks: FlowHooks,
        traces: TraceBook,
        queue_maxsize: int,
    ) -> None:
        self._middlewares = middlewares
        self._store = store
        self._event_hooks = hooks.event
        self._traces = traces
        self._queue_maxsize = queue_maxsize
        # Saves redone after stop() cancelled a worker mid-save (stop() waits for them
        # in `drain`), so an event whose result already reached fetch() is never lost.
        self._saving: set[asyncio.Task[None]] = set()

    @property
    def middlewares(self) -> list[Middleware]:
        """The middlewares, in call order (append to add one)."""
        return self._middlewares

    def listening(self, level: int) -> bool:
        """Whether an event logged at `level` would reach anyone."""
        return bool(
            self._middlewares
            or self._event_hooks
            or self._store is not None
            or logger.isEnabledFor(level)
        )

    def listening_parts(self) -> tuple[list[Middleware], list[EventHook], bool]:
        """What `listening` reads besides the log level: (middlewares, event hooks, whether
        there is a store). The lists are live. For the node workers' hot path, which
        checks `bool(middlewares or hooks or has_store or logger.isEnabledFor(level))`
        inline instead of calling `listening`."""
        return self._middlewares, self._event_hooks, self._store is not None

    async def _save(self, store: StateStore, event: FlowEvent) -> None:
        from ..state import StoredEvent as Stored  # loaded only by flows that have a store

        stored = Stored.from_flow_event(event)
        try:
            await store.save_event(stored)
        except asyncio.CancelledError:
            # stop() cancelled the worker mid-save: save again in the background (an
            # identical re-save is ignored by every store), and stop() waits for it.
            retry = asyncio.get_running_loop().create_task(self._save_again(store, stored))
            self._saving.add(retry)
            retry.add_done_callback(self._saving.discard)
            raise
        except Exception as exc:
            self._save_failed(event.trace_id, event.event_type, exc)

    async def _save_again(self, store: StateStore, stored: StoredEvent) -> None:
        try:
            await store.save_event(stored)
        except Exception as exc:
            self._save_failed(stored.trace_id, stored.kind, exc)

    @staticmethod
    def _save_failed(trace_id: str | None, kind: str, exc: Exception) -> None:
        logger.exception(
            LogLine("state_store_save_failed"),
            {"trace": trace_id, "kind": kind, "error": exc},
            extra={
                "event": "state_store_save_failed",
                "trace_id": trace_id,
                "kind": kind,
                "exception": exception_repr(exc),
            },
        )

    async def drain(self) -> None:
        """Wait for the saves redone after a cancellation (`stop()` calls it)."""
        while self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)

    async def emit(
        self,
        event_type: str,
        entity: Node | Endpoint,
        ctx: EdgeGauge,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        level: int,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: BaseException | None = None,
    ) -> None:
        """Build the event and deliver it; store and middleware failures are logged."""
        log_enabled = logger.isEnabledFor(level)
        hooks = self._event_hooks
        store = self._store
        if not (self._middlewares or hooks or store is not None or log_enabled):
            return
        traces = self._traces
        if trace_id is None:
            pending, inflight, cancelled = None, 0, False
        else:
            pending = traces.pending(trace_id)
            inflight = traces.inflight(trace_id)
            cancelled = traces.is_cancelled(trace_id)
        event = build_event(
            event_type,
            time.time(),
            entity.name,
            getattr(entity, "node_id", entity.name),
            trace_id,
            attempt,
            latency_ms,
            ctx.queue_depth_in(),
            ctx.queue_depth_out(),
            ctx.outgoing_count(),
            self._queue_maxsize,
            pending,
            inflight,
            cancelled,
            extra,
        )
        if log_enabled:
            logger.log(
                level,
                LogLine(event_type),
                _line_fields(event, exc_info),
                extra=_log_extra(event.to_payload()),
                # `node_failed` follows the `node_error`/`node_timeout` record of the
                # same exception, which already carries its traceback.
                exc_info=None if event_type == "node_failed" else exc_info,
            )
        if store is not None:
            await self._save(store, event)
        if hooks:
            call_hooks("event", hooks, event)
        for middleware in list(self._middlewares):
            try:
                await middleware(event)
            except Exception as exc:
                logger.exception(
                    LogLine("middleware_error"),
                    {
                        "node": event.node_name,
                        "middleware": getattr(
                            middleware, "__qualname__", type(middleware).__name__
                        ),
                        "error": exc,
                    },
                    extra={
                        "event": "middleware_error",
                        "node_name": event.node_name,
                        "node_id": event.node_id,
                        "exception": exc,
                    },
                )
