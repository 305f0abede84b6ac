"""`Context`: a node's (or endpoint's) view of its edges, used to emit and fetch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ContextError, UnknownTargetError
from ..node import Node
from ..types import Message, StreamChunk
from .graph import Endpoint, Floe
from .inbox import Inbox, InboxQueue

if TYPE_CHECKING:
    from .flow import PenguiFlow
    from .playbook import PlaybookFactory

__all__ = ["Context"]

Peer = Node | Endpoint
Targets = Peer | str | Sequence[Peer | str] | None


def _display(entity: Any) -> Any:
    return getattr(entity, "name", entity)


class Context:
    """The handle a node receives as its second argument.

    `emit` sends to successors (all of them, or those named by `to`: nodes,
    endpoints or node names), `fetch` reads from predecessors, `emit_chunk`
    streams `StreamChunk`s with automatic sequence numbers.
    """

    __slots__ = (
        "_inbox",
        "_incoming",
        "_out_all",
        "_outgoing",
        "_owner",
        "_runtime",
        "_stream_seq",
    )

    def __init__(self, owner: Node | Endpoint, runtime: PenguiFlow | None = None) -> None:
        self._owner = owner
        self._runtime = runtime
        self._incoming: dict[Peer, Floe] = {}
        self._outgoing: dict[Peer, Floe] = {}
        self._inbox = Inbox()
        self._stream_seq: dict[str, int] = {}
        self._out_all: tuple[Floe, ...] = ()

    # -- structure -------------------------------------------------------------------

    @property
    def owner(self) -> Node | Endpoint:
        """The node or endpoint this context belongs to."""
        return self._owner

    @property
    def runtime(self) -> PenguiFlow | None:
        """The flow this context is attached to, if any."""
        return self._runtime

    @property
    def incoming(self) -> Mapping[Peer, Floe]:
        """The edges arriving here, by source (a read-only view)."""
        return MappingProxyType(self._incoming)

    @property
    def outgoing(self) -> Mapping[Peer, Floe]:
        """The edges leaving here, by target (a read-only view)."""
        return MappingProxyType(self._outgoing)

    @property
    def outgoing_floes(self) -> tuple[Floe, ...]:
        """The edges leaving here, in target order (what `emit(msg)` sends to)."""
        return self._out_all

    @property
    def inbox(self) -> Inbox:
        """What waits for this context: its incoming queues and a buffer (engine part)."""
        return self._inbox

    def add_incoming_floe(self, floe: Floe) -> None:
        """Register an edge arriving at this context (keyed by its source)."""
        if floe.source is None:
            return
        self._incoming[floe.source] = floe
        self._inbox.queues = tuple(f.queue for f in self._incoming.values())
        if isinstance(floe.queue, InboxQueue):
            floe.queue.consumer = self._inbox

    def add_outgoing_floe(self, floe: Floe) -> None:
        """Register an edge leaving this context (keyed by its target)."""
        if floe.target is None:
            return
        self._outgoing[floe.target] = floe
        self._out_all = tuple(self._outgoing.values())

    def outgoing_count(self) -> int:
        """Number of outgoing edges."""
        return len(self._outgoing)

    def queue_depth_in(self) -> int:
        """Messages waiting on incoming edges."""
        queues = self._inbox.queues
        if len(queues) == 1:
            return queues[0].qsize()
        return sum(q.qsize() for q in queues)

    def queue_depth_out(self) -> int:
        """Messages waiting on outgoing edges."""
        floes = self._out_all
        if len(floes) == 1:
            return floes[0].queue.qsize()
        return sum(f.queue.qsize() for f in floes)

    def _resolve(self, mapping: dict[Peer, Floe], targets: Targets) -> Sequence[Floe]:
        if not mapping:
            return ()
        if targets is None:
            return tuple(mapping.values())
        items: Sequence[Any]
        items = (targets,) if isinstance(targets, Node | Endpoint | str) else targets
        resolved: list[Floe] = []
        for target in items:
            floe = mapping.get(target) if not isinstance(target, str) else None
            if floe is None and isinstance(target, str):
                floe = next((f for peer, f in mapping.items() if peer.name == target), None)
            if floe is None:
                name = _display(target)
                owner = _display(self._owner)
                raise UnknownTargetError(
                    f"Unknown target {name} for {owner}", target=str(name), owner=str(owner)
                )
            resolved.append(floe)
        return resolved

    # -- emission --------------------------------------------------------------------

    def _require_runtime(self) -> PenguiFlow:
        runtime = self._runtime
        if runtime is None:
            raise ContextError("Context is not attached to a running flow")
        return runtime

    async def emit(self, msg: Any, to: Targets = None) -> None:
        """Send `msg` to every target edge, waiting while a target queue is full."""
        dispatcher = self._require_runtime().dispatcher
        for floe in self._out_all if to is None else self._resolve(self._outgoing, to):
            if not dispatcher.offer(floe, msg):
                await dispatcher.send(floe, msg)

    def emit_nowait(self, msg: Any, to: Targets = None) -> None:
        """Send without waiting; raises `asyncio.QueueFull` if a target queue is full.

        Targets before the full one have already received the message.
        """
        send = self._require_runtime().dispatcher.send_nowait
        for floe in self._out_all if to is None else self._resolve(self._outgoing, to):
            send(floe, msg)

    async def emit_chunk(
        self,
        *,
        parent: Message,
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Targets = None,
    ) -> StreamChunk:
        """Stream one chunk for `parent`'s trace and return it.

        Sequence numbers count up from 0 per `stream_id` (default: the trace id) and
        restart after a `done` chunk. Waits while the trace already has
        `queue_maxsize` messages in flight, so a fast producer cannot outrun its
        consumer.
        """
        sid = stream_id or parent.trace_id
        previous = self._stream_seq.get(sid)
        number = (previous + 1 if previous is not None else 0) if seq is None else seq
        self._stream_seq[sid] = number
        chunk = StreamChunk(
            stream_id=sid, seq=number, text=text, done=done, meta=dict(meta) if meta else {}
        )
        message = Message(
            payload=chunk,
            headers=parent.headers,
            trace_id=parent.trace_id,
            deadline_s=parent.deadline_s,
            meta=dict(parent.meta),
        )
        runtime = self._require_runtime()
        if previous is not None:
            await runtime.traces.wait_capacity(parent.trace_id)
        await self.emit(message, to=to)
        if done:
            self._stream_seq.pop(sid, None)
        return chunk

    # -- fetching --------------------------------------------------------------------

    def _incoming_queues(self, from_: Targets) -> Sequence[asyncio.Queue[Any]]:
        if from_ is None:
            return self._inbox.queues
        return [f.queue for f in self._resolve(self._incoming, from_)]

    def fetch_nowait(self, from_: Targets = None) -> Any:
        """Return a waiting message or raise `asyncio.QueueEmpty`.

        The message counts as handled for its trace from this point on.
        """
        inbox = self._inbox
        if inbox.buffer:
            item = inbox.buffer.popleft()
        else:
            queues = self._incoming_queues(from_)
            found, item = inbox.take_nowait(queues) if queues else (False, None)
            if not found:
                raise asyncio.QueueEmpty("no messages available")
        runtime = self._runtime
        if runtime is not None:
            runtime.dispatcher.settle_nowait(item)
        return item

    async def fetch(self, from_: Targets = None) -> Any:
        """Wait for the next message from the given predecessors (default: all).

        The message counts as handled for its trace from this point on.
        """
        return await self._settle(await self._take(from_, any_=False))

    async def fetch_any(self, from_: Targets = None) -> Any:
        """Wait for the first message to arrive on any of the given predecessors."""
        return await self._settle(await self._take(from_, any_=True))

    async def _take(self, from_: Targets, *, any_: bool) -> Any:
        # The buffer comes before the `from_` filter (and its unknown-peer check).
        inbox = self._inbox
        if inbox.buffer:
            return inbox.buffer.popleft()
        return await inbox.take_from(self._incoming_queues(from_), any_=any_)

    async def _settle(self, item: Any) -> Any:
        runtime = self._runtime
        if runtime is not None:
            finished = runtime.dispatcher.count_out(item)
            if finished is not None:
                await runtime.dispatcher.announce_cancel_finish(finished)
        return item

    async def call_playbook(
        self, playbook: PlaybookFactory, parent_msg: Message, *, timeout: float | None = None
    ) -> Any:
        """Run a subflow for `parent_msg`; cancelling this trace cancels the subflow too."""
        from .playbook import call_playbook

        return await call_playbook(playbook, parent_msg, timeout=timeout, runtime=self._runtime)

    def __repr__(self) -> str:
        return f"Context(owner={_display(self._owner)!r})"
