"""`PenguiFlow`: builds the graph, runs one worker per node, tracks traces."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..bus import BusEnvelope, MessageBus
from ..errors import FlowError, FlowStoppedError, RegistryCoverageError
from ..metrics import FlowEvent
from ..middlewares import Middleware
from ..node import Node
from ..state import RemoteBinding, StateStore, StoredEvent
from ..types import WM, Message, StreamChunk
from .context import Context
from .graph import (
    OPEN_SEA,
    ROOKERY,
    Endpoint,
    Floe,
    check_acyclic,
    collect_adjacency,
    label_of,
    remove_trace_items,
)
from .traces import TraceEvent, TraceState, current_trace
from .worker import NodeWorker

__all__ = ["DEFAULT_QUEUE_MAXSIZE", "PenguiFlow", "create", "logger"]

DEFAULT_QUEUE_MAXSIZE = 64

logger = logging.getLogger("penguiflow.core")

# LogRecord attributes that `extra=` must not overwrite (logging raises KeyError).
_RESERVED_LOG_KEYS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def _log_extra(payload: dict[str, Any]) -> dict[str, Any]:
    if _RESERVED_LOG_KEYS.isdisjoint(payload):
        return payload
    return {(f"extra_{k}" if k in _RESERVED_LOG_KEYS else k): v for k, v in payload.items()}


class PenguiFlow:
    """A typed async flow: nodes wired as a graph, one worker task per node.

    Messages enter through `emit` (OpenSea) and results leave through `fetch`
    (Rookery). Build with `create(a.to(b), b.to())`, then `run()`, `emit`,
    `fetch` and finally `stop()`.
    """

    def __init__(
        self,
        *adjacencies: tuple[Node, Sequence[Node]],
        queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
        allow_cycles: bool = False,
        middlewares: Sequence[Middleware] | None = None,
        emit_errors_to_rookery: bool = False,
        state_store: StateStore | None = None,
        message_bus: MessageBus | None = None,
    ) -> None:
        graph = collect_adjacency(adjacencies)
        if not allow_cycles:
            check_acyclic(graph)
        self._queue_maxsize = queue_maxsize
        self._middlewares: list[Middleware] = list(middlewares or [])
        self._emit_errors_to_rookery = emit_errors_to_rookery
        self._state_store = state_store
        self._message_bus = message_bus
        self._nodes: list[Node] = list(graph)
        self._contexts: dict[Node | Endpoint, Context] = {
            node: Context(node, self) for node in self._nodes
        }
        self._opensea_ctx = Context(OPEN_SEA, self)
        self._rookery_ctx = Context(ROOKERY, self)
        self._contexts[OPEN_SEA] = self._opensea_ctx
        self._contexts[ROOKERY] = self._rookery_ctx
        self._floes: list[Floe] = []
        for parent, children in graph.items():
            for child in children:
                self._connect(parent, child)
        for node in graph:
            has_parent = any(
                node in kids and not (parent is node and node.allow_cycle)
                for parent, kids in graph.items()
            )
            if not has_parent:
                self._connect(OPEN_SEA, node)
        for node, children in graph.items():
            if not children or list(children) == [node]:
                self._connect(node, ROOKERY)

        self._registry: Any | None = None
        self._running = False
        self._stopped = False
        self._workers: list[NodeWorker] = []
        self._traces: dict[str, TraceState] = {}
        self._wm_hops: dict[str, int] = {}
        self._external: dict[str, set[asyncio.Future[Any]]] = {}
        self._publish_tasks: set[asyncio.Task[None]] = set()
        # Called with (item, trace id or None) for every item sent to Rookery; returns
        # the item to enqueue. Used by servers (penguiflow_a2a) to attribute results.
        self._rookery_observer: Callable[[Any, str | None], Any] | None = None
        # Called with the FlowError of a node that failed for good when errors are not
        # sent to Rookery, so a server waiting on the trace learns of the failure.
        self._failure_observer: Callable[[FlowError], None] | None = None

    def _connect(self, source: Node | Endpoint, target: Node | Endpoint) -> None:
        floe = Floe(source, target, maxsize=self._queue_maxsize)
        self._floes.append(floe)
        self._contexts[source].add_outgoing_floe(floe)
        self._contexts[target].add_incoming_floe(floe)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def registry(self) -> Any | None:
        """The registry given to the most recent `run()`."""
        return self._registry

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware; it sees every event emitted from now on."""
        self._middlewares.append(middleware)

    def run(self, *, registry: Any | None = None) -> None:
        """Start one worker per node on the running event loop.

        Raises `RuntimeError` if already running, and `RegistryCoverageError` (a
        `RuntimeError`) naming every validating node the registry lacks. A failed
        `run()` leaves the flow stopped, so it can be fixed and run again.
        """
        if self._running:
            raise RuntimeError("PenguiFlow already running")
        if registry is not None:
            missing: list[str] = []
            for node in self._nodes:
                if node.policy.validate == "none" or node.name is None:
                    continue
                try:
                    registry.adapters(node.name)
                except KeyError:
                    missing.append(node.name)
            if missing:
                names = tuple(sorted(missing))
                raise RegistryCoverageError(
                    "ModelRegistry is missing entries for nodes requiring validation: "
                    + ", ".join(names),
                    node_names=names,
                )
        loop = asyncio.get_running_loop()
        workers = [NodeWorker(node, self._contexts[node], self, registry) for node in self._nodes]
        for worker in workers:
            worker.task = loop.create_task(worker.run(), name=f"penguiflow:{worker.node.name}")
        self._registry = registry
        self._workers = workers
        self._running = True
        self._stopped = False

    async def stop(self) -> None:
        """Cancel the workers and in-flight work and wait for them; idempotent.

        Queued messages stay queued for a later `run()`; per-trace bookkeeping is reset.
        """
        if not self._running:
            return
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        external = [t for group in self._external.values() for t in group]
        for fut in external:
            fut.cancel()
        await asyncio.gather(*external, return_exceptions=True)
        self._external.clear()
        if self._publish_tasks:
            await asyncio.gather(*list(self._publish_tasks), return_exceptions=True)
        for state in self._traces.values():
            state.wake_waiters()
        self._traces.clear()
        self._workers = []
        self._running = False
        self._stopped = True

    # -- ingress / egress ------------------------------------------------------------

    def _check_accepting(self, msg: Any) -> bool:
        if self._stopped:
            raise FlowStoppedError(
                "PenguiFlow was stopped; call run() again before emitting more messages"
            )
        if isinstance(msg, Message) and isinstance(msg.payload, WM):
            remembered = self._wm_hops.get(msg.trace_id)
            if remembered is not None and remembered == msg.payload.hops:
                return False
        return True

    async def emit(self, msg: Any, to: Node | Sequence[Node] | None = None) -> None:
        """Send `msg` into the flow (to all ingress nodes, or those named by `to`)."""
        if self._check_accepting(msg):
            await self._opensea_ctx.emit(msg, to)

    def emit_nowait(self, msg: Any, to: Node | Sequence[Node] | None = None) -> None:
        """Like `emit` but raises `asyncio.QueueFull` instead of waiting."""
        if self._check_accepting(msg):
            self._opensea_ctx.emit_nowait(msg, to)

    async def emit_chunk(
        self,
        *,
        parent: Message,
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Node | Sequence[Node] | None = None,
    ) -> StreamChunk:
        """Stream a chunk into the flow from outside (see `Context.emit_chunk`)."""
        self._check_accepting(None)
        return await self._opensea_ctx.emit_chunk(
            parent=parent, text=text, stream_id=stream_id, seq=seq, done=done, meta=meta, to=to
        )

    async def fetch(self, from_: Node | Sequence[Node] | None = None) -> Any:
        """Wait for the next result delivered to Rookery (from the given egress nodes)."""
        item = await self._rookery_ctx._fetch_raw(from_, any_=False)
        await self._finalize_fetched(item)
        return item

    async def fetch_any(self, from_: Node | Sequence[Node] | None = None) -> Any:
        """Wait for the first result on any of the given egress nodes."""
        item = await self._rookery_ctx._fetch_raw(from_, any_=True)
        await self._finalize_fetched(item)
        return item

    # -- traces ----------------------------------------------------------------------

    def _trace_state(self, trace_id: str) -> TraceState:
        state = self._traces.get(trace_id)
        if state is None:
            state = self._traces[trace_id] = TraceState()
        return state

    def ensure_trace_event(self, trace_id: str) -> TraceEvent:
        """The trace's cancellation event (created if needed); setting it cancels the trace's
        running invocations."""
        state = self._trace_state(trace_id)
        if state.event is None:
            state.event = TraceEvent(lambda: self._interrupt(trace_id))
        return state.event

    def _discard_idle_trace(self, trace_id: str) -> None:
        """Drop bookkeeping created for a trace that has nothing pending or running."""
        state = self._traces.get(trace_id)
        if (
            state is not None
            and state.pending <= 0
            and all(waiter.done() for waiter in state.waiters)
            and not self._inflight(trace_id)
        ):
            del self._traces[trace_id]

    def _finalize(self, trace_id: str) -> bool:
        """Mark one message of the trace handled; True if `trace_cancel_finish` is due."""
        state = self._traces.get(trace_id)
        if state is None:
            return False
        state.pending -= 1
        if state.pending > 0:
            if state.waiters and (self._queue_maxsize <= 0 or state.pending <= self._queue_maxsize):
                state.wake_waiters()
            return False
        state.pending = 0
        del self._traces[trace_id]
        self._wm_hops.pop(trace_id, None)
        state.wake_waiters()
        return state.cancelled

    def _inflight(self, trace_id: str) -> int:
        """How many node invocations of the trace are running right now."""
        return sum(1 for worker in self._workers if worker.trace_id == trace_id)

    def _interrupt(self, trace_id: str) -> None:
        """Cancel every node invocation running for the trace."""
        for worker in self._workers:
            if worker.trace_id == trace_id:
                worker.interrupt()

    async def _emit_cancel_finish(self, trace_id: str) -> None:
        await self._emit_event(
            "trace_cancel_finish", ROOKERY, self._rookery_ctx, trace_id, 0, None, logging.INFO
        )

    async def _finalize_fetched(self, item: Any) -> None:
        trace_id = getattr(item, "trace_id", None)
        if trace_id is not None and self._finalize(trace_id):
            await self._emit_cancel_finish(trace_id)

    def _finalize_fetched_nowait(self, item: Any) -> None:
        trace_id = getattr(item, "trace_id", None)
        if trace_id is not None and self._finalize(trace_id):
            self._track_background(self._emit_cancel_finish(trace_id))

    async def _wait_trace_capacity(self, trace_id: str) -> None:
        limit = self._queue_maxsize
        if limit <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            state = self._traces.get(trace_id)
            if state is None or max(state.pending - 1, 0) < limit:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            state.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in state.waiters:
                    state.waiters.remove(waiter)

    async def cancel(self, trace_id: str) -> bool:
        """Cancel one trace: drop its queued messages and interrupt its running nodes.

        Other traces are unaffected. Returns `False` if the trace is unknown or
        already finished, `True` otherwise.
        """
        if not self._running:
            raise RuntimeError("PenguiFlow is not running")
        state = self._traces.get(trace_id)
        if state is None or (state.pending <= 0 and not self._inflight(trace_id)):
            return False
        event = self.ensure_trace_event(trace_id)
        if not event.is_set():
            event.set()
            await self._emit_event(
                "trace_cancel_start",
                OPEN_SEA,
                self._opensea_ctx,
                trace_id,
                0,
                None,
                logging.INFO,
                extra={"pending": state.pending},
            )
        finish_due = False
        for floe in self._floes:
            for _ in remove_trace_items(floe.queue, trace_id):
                finish_due = self._finalize(trace_id) or finish_due
        self._interrupt(trace_id)
        if finish_due:
            await self._emit_cancel_finish(trace_id)
        return True

    def register_external_task(self, trace_id: str, task: asyncio.Future[Any]) -> None:
        """Track work done for a trace outside the nodes; `stop()` cancels and awaits it."""
        if trace_id is None:
            return
        group = self._external.setdefault(trace_id, set())
        group.add(task)

        def _forget(done: asyncio.Future[Any]) -> None:
            tasks = self._external.get(trace_id)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._external[trace_id]

        task.add_done_callback(_forget)

    # -- sending ---------------------------------------------------------------------

    def _observe_rookery(self, msg: Any) -> Any:
        observer = self._rookery_observer
        if observer is None:
            return msg
        trace_id = getattr(msg, "trace_id", None)
        return observer(msg, trace_id if trace_id is not None else current_trace.get())

    async def _send(self, floe: Floe, msg: Any) -> None:
        if floe.target is ROOKERY:
            msg = self._observe_rookery(msg)
        trace_id = getattr(msg, "trace_id", None)
        if trace_id is not None:
            state = self._traces.get(trace_id)
            if state is None:
                state = self._traces[trace_id] = TraceState()
            state.pending += 1
        if self._message_bus is not None:
            await self._publish(floe.source, floe.target, msg)
        try:
            floe.queue.put_nowait(msg)
        except asyncio.QueueFull:
            await self._put_waiting(floe.queue, msg, trace_id)

    async def _put_waiting(self, queue: asyncio.Queue[Any], msg: Any, trace_id: Any) -> None:
        """Wait for room in a full queue (backpressure)."""
        try:
            await queue.put(msg)
        except BaseException:
            # The message never entered the queue: it must not keep its trace alive.
            if trace_id is not None and self._finalize(trace_id):
                await self._emit_cancel_finish(trace_id)
            raise

    def _send_nowait(self, floe: Floe, msg: Any) -> None:
        queue = floe.queue
        if queue.full():
            raise asyncio.QueueFull
        if floe.target is ROOKERY:
            msg = self._observe_rookery(msg)
        trace_id = getattr(msg, "trace_id", None)
        if trace_id is not None:
            self._trace_state(trace_id).pending += 1
        if self._message_bus is not None:
            self._track_background(self._publish(floe.source, floe.target, msg))
        queue.put_nowait(msg)

    def _track_background(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._publish_tasks.add(task)
        task.add_done_callback(self._publish_tasks.discard)

    async def _publish(
        self, source: Node | Endpoint | None, target: Node | Endpoint | None, msg: Any
    ) -> None:
        bus = self._message_bus
        if bus is None:
            return
        src, tgt = label_of(source), label_of(target)
        is_message = isinstance(msg, Message)
        envelope = BusEnvelope(
            edge=f"{src or '*'}->{tgt or '*'}",
            source=src,
            target=tgt,
            trace_id=getattr(msg, "trace_id", None),
            payload=msg,
            headers=msg.headers.model_dump() if is_message else None,
            meta=dict(msg.meta) if is_message else None,
        )
        try:
            await bus.publish(envelope)
        except Exception as exc:
            logger.exception(
                "message_bus_publish_failed",
                extra={
                    "event": "message_bus_publish_failed",
                    "edge": envelope.edge,
                    "trace_id": envelope.trace_id,
                    "exception": repr(exc),
                },
            )

    async def _deliver_to_rookery(self, message: Any, source: Node) -> None:
        floe = self._contexts[source]._outgoing.get(ROOKERY)
        if floe is None:
            floe = next(iter(self._rookery_ctx._incoming.values()), None)
        if floe is not None:
            await self._send(floe, message)
        else:
            message = self._observe_rookery(message)
            trace_id = getattr(message, "trace_id", None)
            if trace_id is not None:
                self._trace_state(trace_id).pending += 1
            await self._publish(source, ROOKERY, message)
            self._rookery_ctx._buffer.append(message)
            self._rookery_ctx._wake()
        if isinstance(message, Message) and isinstance(message.payload, WM):
            self._wm_hops[message.trace_id] = message.payload.hops

    # -- events ----------------------------------------------------------------------

    def _listening(self, level: int) -> bool:
        return bool(
            self._middlewares or self._state_store is not None or logger.isEnabledFor(level)
        )

    async def _emit_event(
        self,
        event_type: str,
        entity: Node | Endpoint,
        ctx: Context,
        trace_id: str | None,
        attempt: int,
        latency_ms: float | None,
        level: int,
        *,
        extra: Mapping[str, Any] | None = None,
        exc_info: BaseException | None = None,
    ) -> None:
        log_enabled = logger.isEnabledFor(level)
        if not (self._middlewares or self._state_store is not None or log_enabled):
            return
        state = self._traces.get(trace_id) if trace_id is not None else None
        event = FlowEvent(
            event_type=event_type,
            ts=time.time(),
            node_name=entity.name,
            node_id=getattr(entity, "node_id", entity.name),
            trace_id=trace_id,
            attempt=attempt,
            latency_ms=latency_ms,
            queue_depth_in=ctx.queue_depth_in(),
            queue_depth_out=ctx.queue_depth_out(),
            outgoing_edges=ctx.outgoing_count(),
            queue_maxsize=self._queue_maxsize,
            trace_pending=(state.pending if state is not None else 0)
            if trace_id is not None
            else None,
            trace_inflight=self._inflight(trace_id) if trace_id is not None else 0,
            trace_cancelled=state.cancelled if state is not None else False,
            extra=extra if extra is not None else {},
        )
        if log_enabled:
            logger.log(level, event_type, extra=_log_extra(event.to_payload()), exc_info=exc_info)
        store = self._state_store
        if store is not None:
            try:
                await store.save_event(StoredEvent.from_flow_event(event))
            except Exception as exc:
                logger.exception(
                    "state_store_save_failed",
                    extra={
                        "event": "state_store_save_failed",
                        "trace_id": trace_id,
                        "kind": event_type,
                        "exception": repr(exc),
                    },
                )
        for middleware in list(self._middlewares):
            try:
                await middleware(event)
            except Exception as exc:
                logger.exception(
                    "middleware_error",
                    extra={
                        "event": "middleware_error",
                        "node_name": event.node_name,
                        "node_id": event.node_id,
                        "exception": exc,
                    },
                )

    # -- distribution hooks ----------------------------------------------------------

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """Events stored for a trace by the flow's state store."""
        if self._state_store is None:
            raise RuntimeError("PenguiFlow was created without a state_store")
        return await self._state_store.load_history(trace_id)

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Persist a remote binding; store failures are logged, never raised."""
        if self._state_store is None:
            return
        try:
            await self._state_store.save_remote_binding(binding)
        except Exception as exc:
            logger.exception(
                "state_store_binding_failed",
                extra={
                    "event": "state_store_binding_failed",
                    "trace_id": binding.trace_id,
                    "context_id": binding.context_id,
                    "task_id": binding.task_id,
                    "agent_url": binding.agent_url,
                    "exception": repr(exc),
                },
            )

    async def record_remote_event(
        self,
        *,
        event: str,
        node: Node,
        context: Context,
        trace_id: str | None,
        latency_ms: float | None,
        level: int = logging.INFO,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit a custom event (used by remote nodes) through logs, store and middlewares."""
        await self._emit_event(
            event, node, context, trace_id, 0, latency_ms, level, extra=dict(extra or {})
        )


def create(*adjacencies: tuple[Node, Sequence[Node]], **kwargs: Any) -> PenguiFlow:
    """Build a `PenguiFlow` from `node.to(...)` adjacencies (see `PenguiFlow`)."""
    return PenguiFlow(*adjacencies, **kwargs)
