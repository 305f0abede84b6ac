"""`Dispatcher`: moves messages along edges, with trace accounting and bus publishing.

Every enqueue the runtime performs goes through here: a send counts the message
into its trace, publishes it to the message bus when there is one, then puts it
on the edge's queue (waiting while the queue is full: backpressure). Items bound
for Rookery pass the `rookery` hooks first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import exception_repr
from ..types import WM, Message
from .graph import OPEN_SEA, ROOKERY, Endpoint, Floe, label_of
from .hooks import FlowHooks, RookeryDelivery, call_hooks
from .traces import TraceBook, current_trace

if TYPE_CHECKING:
    from ..bus import MessageBus
    from ..node import Node
    from .calls import Calls
    from .events import EdgeGauge, EventSink
    from .inbox import Inbox


class Edges(Protocol):
    """What the dispatcher reads of a context (a `Context` is one)."""

    @property
    def owner(self) -> Node | Endpoint: ...

    @property
    def incoming(self) -> Mapping[Node | Endpoint, Floe]: ...

    @property
    def outgoing(self) -> Mapping[Node | Endpoint, Floe]: ...

    @property
    def inbox(self) -> Inbox: ...

    def queue_depth_in(self) -> int: ...

    def queue_depth_out(self) -> int: ...

    def outgoing_count(self) -> int: ...


__all__ = ["Dispatcher", "Edges"]

logger = logging.getLogger("penguiflow.core")


class Dispatcher:
    """Sends messages for one flow (its contexts and node workers call it)."""

    __slots__ = (
        "_background",
        "_bus",
        "_calls",
        "_claims",
        "_hooks",
        "_rookery",
        "_sink",
        "_traces",
    )

    def __init__(
        self,
        *,
        traces: TraceBook,
        sink: EventSink,
        hooks: FlowHooks,
        bus: MessageBus | None,
        rookery: Edges,
        calls: Calls | None = None,
    ) -> None:
        self._calls = calls
        # The claims of `call()`s (a live view): empty, nothing is claimed.
        self._claims: dict[str, Any] = calls.claims if calls is not None else {}
        self._traces = traces
        self._sink = sink
        self._hooks = hooks
        self._bus = bus
        self._rookery = rookery
        self._background: set[asyncio.Task[None]] = set()

    # -- sending ---------------------------------------------------------------------

    def offer(self, floe: Floe, msg: Any) -> bool:
        """Send without waiting if that is possible right now; False (nothing done) if not.

        The node worker's fast path: no coroutine, no bus, room in the queue.
        """
        if not self.carry(floe, msg):
            return False
        trace_id = getattr(msg, "trace_id", None)
        if trace_id is not None:
            self._traces.track(trace_id)
        return True

    def carry(self, floe: Floe, msg: Any) -> bool:
        """`offer` for a message that takes over the count of the message being handled.

        A node worker passing a result of the same trace to its one successor moves
        the count along with it instead of counting the result in and the handled
        message out (the trace's pending count is the same either way; nobody can look
        in between). False (nothing done) when the bus, a Rookery hook or a full queue
        needs `send`.
        """
        if self._bus is not None or (
            floe.target is ROOKERY and (self._hooks.rookery or self._claims)
        ):
            return False
        return floe.queue.offer(msg)

    def _count_in(self, msg: Any, *, to_rookery: bool) -> tuple[Any, Any, bool]:
        """Run the Rookery hooks on an item bound there, then count it into its trace.

        Returns the item to enqueue, its trace id, and whether a `call()` claimed it
        (it is then handed over, neither counted nor enqueued).
        """
        if to_rookery:
            msg = self.observe_rookery(msg)
            calls = self._calls
            if calls is not None and self._claims:
                trace_id = getattr(msg, "trace_id", None)
                if calls.take(msg, trace_id if trace_id is not None else current_trace.get()):
                    return msg, trace_id, True
        trace_id = getattr(msg, "trace_id", None)
        if trace_id is not None:
            self._traces.track(trace_id)
        return msg, trace_id, False

    async def send(self, floe: Floe, msg: Any) -> None:
        """Count, publish, then enqueue `msg` on `floe`, waiting while the queue is full."""
        msg, trace_id, claimed = self._count_in(msg, to_rookery=floe.target is ROOKERY)
        if self._bus is not None:
            await self.publish(floe.source, floe.target, msg)
        if claimed:
            return
        queue = floe.queue
        if queue.full():
            await self._put_waiting(queue, msg, trace_id)
        else:
            queue.put_nowait(msg)

    async def _put_waiting(self, queue: asyncio.Queue[Any], msg: Any, trace_id: Any) -> None:
        try:
            await queue.put(msg)
        except BaseException:
            # The message never entered the queue: it must not keep its trace alive.
            if trace_id is not None and self._traces.finalize(trace_id):
                await self.announce_cancel_finish(trace_id)
            raise

    def send_nowait(self, floe: Floe, msg: Any) -> None:
        """Send without waiting; raises `asyncio.QueueFull` (nothing sent) when full.

        The bus publish runs in the background (awaited by `drain`).
        """
        queue = floe.queue
        to_rookery = floe.target is ROOKERY
        if queue.full() and not (to_rookery and self._claims):
            raise asyncio.QueueFull
        msg, _, claimed = self._count_in(msg, to_rookery=to_rookery)
        if self._bus is not None:
            self.in_background(self.publish(floe.source, floe.target, msg))
        if claimed:
            return
        if queue.full():
            raise asyncio.QueueFull
        queue.put_nowait(msg)

    async def deliver(self, message: Any, source: Edges) -> None:
        """Deliver `message` to Rookery on behalf of `source`.

        Through the source's own egress edge, else another egress edge, else
        (a flow without egress edges) straight into Rookery's buffer.
        """
        floe = source.outgoing.get(ROOKERY)
        if floe is None:
            floe = next(iter(self._rookery.incoming.values()), None)
        if floe is not None:
            await self.send(floe, message)
        else:
            message, _, claimed = self._count_in(message, to_rookery=True)
            await self.publish(source.owner, ROOKERY, message)
            if not claimed:
                self._rookery.inbox.push(message)
        if isinstance(message, Message) and isinstance(message.payload, WM):
            self._traces.remember_wm(message.trace_id, message.payload.hops)

    def claim_failure(self, error: Any) -> bool:
        """Hand a final node failure to the `call()` awaiting its trace; False if none."""
        calls = self._calls
        return calls is not None and bool(self._claims) and calls.failed(error)

    def observe_rookery(self, msg: Any) -> Any:
        """Run the `rookery` hooks on an item bound for Rookery; returns what to enqueue."""
        hooks = self._hooks.rookery
        if not hooks:
            return msg
        trace_id = getattr(msg, "trace_id", None)
        delivery = RookeryDelivery(msg, trace_id if trace_id is not None else current_trace.get())
        call_hooks("rookery", hooks, delivery)
        return delivery.item

    # -- counting out ----------------------------------------------------------------

    def count_out(self, item: Any) -> str | None:
        """Count a fetched item out of its trace.

        Returns the trace id when that ended a cancelled trace's drain, so the caller
        announces it (`announce_cancel_finish`); else `None`.
        """
        trace_id = getattr(item, "trace_id", None)
        if trace_id is not None and self._traces.finalize(trace_id):
            return trace_id  # type: ignore[no-any-return]
        return None

    def settle_nowait(self, item: Any) -> None:
        """`count_out` for synchronous callers: the announcement runs in the background."""
        finished = self.count_out(item)
        if finished is not None:
            self.in_background(self.announce_cancel_finish(finished))

    async def announce_cancel_finish(self, trace_id: str) -> None:
        """Emit `trace_cancel_finish`: a cancelled trace has drained."""
        rookery = self._rookery
        await self._sink.emit(
            "trace_cancel_finish", ROOKERY, rookery, trace_id, 0, None, logging.INFO
        )

    async def announce_cancel_start(self, trace_id: str, opensea: EdgeGauge) -> None:
        """Emit `trace_cancel_start` from OpenSea with the trace's pending count."""
        await self._sink.emit(
            "trace_cancel_start",
            OPEN_SEA,
            opensea,
            trace_id,
            0,
            None,
            logging.INFO,
            extra={"pending": self._traces.pending(trace_id)},
        )

    # -- the bus ---------------------------------------------------------------------

    async def publish(
        self, source: Node | Endpoint | None, target: Node | Endpoint | None, msg: Any
    ) -> None:
        """Publish one edge delivery to the message bus; failures are logged, not raised."""
        bus = self._bus
        if bus is None:
            return
        from ..bus import BusEnvelope  # loaded only by flows that have a bus

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
                    "exception": exception_repr(exc),
                },
            )

    # -- background work -------------------------------------------------------------

    def in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task the flow awaits on `stop()`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for every background task (bus publishes, announcements) to finish."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
