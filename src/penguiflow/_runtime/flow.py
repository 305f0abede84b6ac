"""`PenguiFlow`: builds the graph, runs one worker per node, tracks traces."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import (
    FlowLifecycleError,
    FlowStoppedError,
    FlowTimeoutError,
    InvalidArgumentError,
    RegistryCoverageError,
    exception_repr,
)
from ..node import Node
from ..types import WM, Headers, Message, StreamChunk
from .calls import Calls
from .context import Context
from .dispatch import Dispatcher
from .events import EventSink, logger
from .graph import (
    OPEN_SEA,
    ROOKERY,
    Endpoint,
    Floe,
    check_acyclic,
    collect_adjacency,
    remove_trace_items,
)
from .hooks import FlowHooks
from .lifecycle import FlowState
from .traces import TraceBook, TraceEvent, TraceStatus
from .worker import NodeWorker

if TYPE_CHECKING:
    # Only for annotations: a flow without a bus or store never loads those modules.
    from ..bus import MessageBus
    from ..middlewares import Middleware
    from ..state import RemoteBinding, StateStore, StoredEvent

__all__ = ["DEFAULT_QUEUE_MAXSIZE", "PenguiFlow", "create", "logger"]

DEFAULT_QUEUE_MAXSIZE = 64


class PenguiFlow:
    """A typed async flow: nodes wired as a graph, one worker task per node.

    Messages enter through `emit` (OpenSea) and results leave through `fetch`
    (Rookery). Build with `create(a.to(b), b.to())`, then `run()`, `emit`,
    `fetch` and finally `stop()`.

    Observe it through `hooks` (hook lists), `trace_status(trace_id)`, `state`,
    and the read-only views `nodes`, `edges` and `contexts`. The engine's parts
    (`traces`, `dispatcher`, `event_sink`) are what contexts and node workers call;
    they are named so nothing reaches into the flow, but they are not user API.
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
        self._emit_errors_to_rookery = emit_errors_to_rookery
        self._state_store = state_store
        self._nodes: tuple[Node, ...] = tuple(graph)
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

        self._hooks = FlowHooks()
        self._calls = Calls()
        self._traces = TraceBook(queue_maxsize, self._hooks, self._calls)
        self._sink = EventSink(
            middlewares=list(middlewares or []),
            store=state_store,
            hooks=self._hooks,
            traces=self._traces,
            queue_maxsize=queue_maxsize,
        )
        self._dispatcher = Dispatcher(
            traces=self._traces,
            sink=self._sink,
            hooks=self._hooks,
            bus=message_bus,
            rookery=self._rookery_ctx,
            calls=self._calls,
        )
        self._registry: Any | None = None
        self._state = FlowState.CREATED
        self._workers: list[NodeWorker] = []
        self._external: dict[str, set[asyncio.Future[Any]]] = {}

    def _connect(self, source: Node | Endpoint, target: Node | Endpoint) -> None:
        floe = Floe(source, target, maxsize=self._queue_maxsize)
        self._floes.append(floe)
        self._contexts[source].add_outgoing_floe(floe)
        self._contexts[target].add_incoming_floe(floe)

    # -- observation -----------------------------------------------------------------

    @property
    def hooks(self) -> FlowHooks:
        """The flow's hook lists: append callables to observe results, failures, events."""
        return self._hooks

    @property
    def state(self) -> FlowState:
        """Where the flow is in its lifecycle (created, running, stopped)."""
        return self._state

    def trace_status(self, trace_id: str) -> TraceStatus:
        """How far a trace has come: pending, in flight, cancelled, done."""
        return self._traces.status(trace_id)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The flow's nodes, in the order they first appear in the adjacencies."""
        return self._nodes

    @property
    def edges(self) -> tuple[Floe, ...]:
        """Every edge (floe), ingress from OpenSea and egress to Rookery included."""
        return tuple(self._floes)

    @property
    def contexts(self) -> Mapping[Node | Endpoint, Context]:
        """The context of every node and of both endpoints (a read-only view)."""
        return MappingProxyType(self._contexts)

    @property
    def queue_maxsize(self) -> int:
        """The bound of every edge queue (`<= 0`: unbounded)."""
        return self._queue_maxsize

    @property
    def emit_errors_to_rookery(self) -> bool:
        """Whether a node that fails for good delivers its `FlowError` to Rookery."""
        return self._emit_errors_to_rookery

    # -- the engine's parts ----------------------------------------------------------

    @property
    def traces(self) -> TraceBook:
        """Per-trace bookkeeping (engine part)."""
        return self._traces

    @property
    def dispatcher(self) -> Dispatcher:
        """Sends messages along edges and to Rookery (engine part)."""
        return self._dispatcher

    @property
    def event_sink(self) -> EventSink:
        """Builds and delivers `FlowEvent`s (engine part)."""
        return self._sink

    # -- lifecycle -------------------------------------------------------------------

    @property
    def registry(self) -> Any | None:
        """The registry given to the most recent `run()`."""
        return self._registry

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware; it sees every event emitted from now on."""
        self._sink.middlewares.append(middleware)

    def run(self, *, registry: Any | None = None) -> None:
        """Start one worker per node on the running event loop.

        Raises `FlowLifecycleError` (a `RuntimeError`) if already running, and
        `RegistryCoverageError` (a `RuntimeError`) naming every validating node the
        registry lacks. A failed `run()` leaves the flow as it was, so it can be
        fixed and run again.
        """
        if self._state is FlowState.RUNNING:
            raise FlowLifecycleError("PenguiFlow already running")
        if registry is not None:
            missing: list[str] = []
            for node in self._nodes:
                if node.policy.validate == "none" or node.name is None:
                    continue
                if node.models(registry) is None:  # neither registered nor typed by hints
                    missing.append(node.name)
            if missing:
                names = tuple(sorted(missing))
                raise RegistryCoverageError(
                    "ModelRegistry is missing entries for nodes requiring validation: "
                    + ", ".join(names),
                    node_names=names,
                )
        loop = asyncio.get_running_loop()
        workers = [
            NodeWorker(
                node,
                self._contexts[node],
                registry,
                traces=self._traces,
                dispatcher=self._dispatcher,
                sink=self._sink,
                hooks=self._hooks,
                emit_errors=self._emit_errors_to_rookery,
            )
            for node in self._nodes
        ]
        for worker in workers:
            worker.task = loop.create_task(worker.run(), name=f"penguiflow:{worker.node.name}")
        self._registry = registry
        self._workers = workers
        self._traces.attach(workers)
        self._state = FlowState.RUNNING

    async def stop(self) -> None:
        """Cancel the workers and in-flight work and wait for them; idempotent.

        Queued messages stay queued for a later `run()`; per-trace bookkeeping is reset.
        """
        if self._state is not FlowState.RUNNING:
            return
        self._calls.abort(
            FlowStoppedError, "PenguiFlow was stopped while call() waited for trace {trace_id}"
        )
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        external = [t for group in self._external.values() for t in group]
        for fut in external:
            fut.cancel()
        await asyncio.gather(*external, return_exceptions=True)
        self._external.clear()
        await self._dispatcher.drain()
        await self._sink.drain()
        self._traces.reset()
        self._traces.attach(())
        self._workers = []
        self._state = FlowState.STOPPED

    # -- ingress / egress ------------------------------------------------------------

    def _accepting(self, msg: Any) -> bool:
        if self._state is FlowState.STOPPED:
            raise FlowStoppedError(
                "PenguiFlow was stopped; call run() again before emitting more messages"
            )
        return not (
            isinstance(msg, Message)
            and isinstance(msg.payload, WM)
            and self._traces.is_replayed_wm(msg.trace_id, msg.payload.hops)
        )

    async def emit(self, msg: Any, to: Node | Sequence[Node] | None = None) -> None:
        """Send `msg` into the flow (to all ingress nodes, or those named by `to`)."""
        if self._accepting(msg):
            await self._opensea_ctx.emit(msg, to)

    def emit_nowait(self, msg: Any, to: Node | Sequence[Node] | None = None) -> None:
        """Like `emit` but raises `asyncio.QueueFull` instead of waiting."""
        if self._accepting(msg):
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
        self._accepting(None)
        return await self._opensea_ctx.emit_chunk(
            parent=parent, text=text, stream_id=stream_id, seq=seq, done=done, meta=meta, to=to
        )

    async def fetch(self, from_: Node | Sequence[Node] | None = None) -> Any:
        """Wait for the next result delivered to Rookery (from the given egress nodes)."""
        return await self._rookery_ctx.fetch(from_)

    async def fetch_any(self, from_: Node | Sequence[Node] | None = None) -> Any:
        """Wait for the first result on any of the given egress nodes."""
        return await self._rookery_ctx.fetch_any(from_)

    async def call(
        self,
        payload: Any,
        *,
        tenant: str = "default",
        timeout_s: float | None = None,
    ) -> Any:
        """Send one payload through the running flow and return its result.

        The payload travels in a new `Message` (a fresh trace id, `tenant` in its
        headers); a `Message` is sent as it is. Returns the first result of that
        trace to reach Rookery: its payload when the result is a `Message` and a bare
        payload was given, else the result itself. Nodes typed by their hints
        (`async def clean(q: Question, ctx) -> Question`) receive the payload and
        their results are sent on in the message. The trace's results go to this
        call only, never to `fetch()`, so calls may run concurrently.

        Raises the trace's `FlowError` when a node fails for good (whatever
        `emit_errors_to_rookery` says), `FlowTimeoutError` (a `TimeoutError`) when
        `timeout_s` passes first (the trace is then cancelled), `NoResultError` when
        the trace ends without a result, `TraceCancelled` when it is cancelled, and
        `FlowLifecycleError` when the flow is not running. Stream chunks of the trace
        are not returned: read streams with `emit` and `fetch`.
        """
        if self._state is not FlowState.RUNNING:
            raise FlowLifecycleError("PenguiFlow is not running; call run() before call()")
        if timeout_s is not None and not timeout_s > 0:
            raise InvalidArgumentError(f"timeout_s must be > 0 or None, got {timeout_s!r}")
        wrapped = not isinstance(payload, Message)
        message = Message(payload=payload, headers=Headers(tenant=tenant)) if wrapped else payload
        trace_id = message.trace_id
        claim = self._calls.open(trace_id)
        try:
            await self.emit(message)
        except BaseException:
            self._calls.discard(claim)
            raise
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    result = await claim.wait()
            except TimeoutError:
                if claim.settled or self._state is not FlowState.RUNNING:
                    raise
                await self.cancel(trace_id)
                raise FlowTimeoutError(
                    f"no result for trace {trace_id} within timeout_s={timeout_s}; "
                    "the trace was cancelled",
                    trace_id=trace_id,
                    timeout_s=timeout_s,  # type: ignore[arg-type]
                ) from None
            except asyncio.CancelledError:
                if not claim.settled and self._state is FlowState.RUNNING:
                    self._dispatcher.in_background(self._abandon(trace_id))
                raise
        finally:
            self._calls.release(claim)
        if wrapped and isinstance(result, Message):
            return result.payload
        return result

    async def _abandon(self, trace_id: str) -> None:
        """Cancel the trace of a `call()` whose caller was cancelled."""
        if self._state is FlowState.RUNNING:
            await self.cancel(trace_id)

    # -- traces ----------------------------------------------------------------------

    def ensure_trace_event(self, trace_id: str) -> TraceEvent:
        """The trace's cancellation event (created if needed); setting it cancels the trace's
        running invocations."""
        return self._traces.event(trace_id)

    async def cancel(self, trace_id: str) -> bool:
        """Cancel one trace: drop its queued messages and interrupt its running nodes.

        Other traces are unaffected. Returns `False` if the trace is unknown or
        already finished, `True` otherwise.
        """
        if self._state is not FlowState.RUNNING:
            raise FlowLifecycleError("PenguiFlow is not running")
        traces = self._traces
        if traces.status(trace_id).done:
            return False
        event = traces.event(trace_id)
        if not event.is_set():
            event.set()
            await self._dispatcher.announce_cancel_start(trace_id, self._opensea_ctx)
        finish_due = False
        for floe in self._floes:
            for _ in remove_trace_items(floe.queue, trace_id):
                finish_due = traces.finalize(trace_id) or finish_due
        traces.interrupt(trace_id)
        if finish_due:
            await self._dispatcher.announce_cancel_finish(trace_id)
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

    def external_tasks(self, trace_id: str | None = None) -> tuple[asyncio.Future[Any], ...]:
        """Tasks registered with `register_external_task` and still running (of one trace,
        or of all)."""
        if trace_id is not None:
            return tuple(self._external.get(trace_id, ()))
        return tuple(task for group in self._external.values() for task in group)

    # -- names that code written for the reference implementation reads ---------------
    # Kept for that code only; new code uses the public names each one names.

    async def _emit_to_rookery(
        self, message: Any, *, source: Node | Endpoint | None = None
    ) -> None:
        """Deliver `message` to Rookery as if `source` (a node of this flow) produced it,
        as a status update; `fetch()` (or the trace's `call()`) receives it."""
        context = self._contexts.get(source) if source is not None else None
        await self._dispatcher.deliver(message, context or self._rookery_ctx)

    @property
    def _tasks(self) -> list[asyncio.Task[None]]:
        """The node workers' tasks while the flow runs (a copy); see `state`."""
        return [worker.task for worker in self._workers if worker.task is not None]

    @property
    def _trace_events(self) -> Mapping[str, TraceEvent]:
        """The active traces' cancellation events; see `ensure_trace_event`, `cancel`."""
        return TraceEventsView(self._traces)

    # -- distribution hooks ----------------------------------------------------------

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        """Events stored for a trace by the flow's state store."""
        if self._state_store is None:
            raise FlowLifecycleError("PenguiFlow was created without a state_store")
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
                    "exception": exception_repr(exc),
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
        await self._sink.emit(
            event, node, context, trace_id, 0, latency_ms, level, extra=dict(extra or {})
        )


class TraceEventsView(Mapping[str, TraceEvent]):
    """The cancellation events of a flow's active traces, by trace id (read-only, live)."""

    __slots__ = ("_traces",)

    def __init__(self, traces: TraceBook) -> None:
        self._traces = traces

    def __getitem__(self, trace_id: str) -> TraceEvent:
        event = self._traces.existing_event(trace_id)
        if event is None:
            raise KeyError(trace_id)
        return event

    def __iter__(self) -> Iterator[str]:
        return iter(self._traces.with_events())

    def __len__(self) -> int:
        return len(self._traces.with_events())


def create(*adjacencies: tuple[Node, Sequence[Node]], **kwargs: Any) -> PenguiFlow:
    """Build a `PenguiFlow` from `node.to(...)` adjacencies (see `PenguiFlow`)."""
    return PenguiFlow(*adjacencies, **kwargs)
