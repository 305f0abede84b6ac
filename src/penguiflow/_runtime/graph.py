"""Flow graph pieces: endpoints, edges (floes) and construction-time checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PenguiflowError
from ..node import Node
from .inbox import InboxQueue

__all__ = ["CycleError", "Endpoint", "Floe", "OPEN_SEA", "ROOKERY", "label_of"]


class CycleError(PenguiflowError, RuntimeError):
    """The flow graph has a cycle that no node declared with `allow_cycle=True`.

    `nodes` lists the names of the nodes on the offending cycle(s).
    """

    def __init__(self, message: str, *, nodes: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.nodes = tuple(nodes)
        if self.nodes:
            self.add_note(f"nodes on the cycle: {', '.join(self.nodes)}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A flow boundary: `OPEN_SEA` (ingress) or `ROOKERY` (egress)."""

    name: str


OPEN_SEA = Endpoint("OpenSea")
ROOKERY = Endpoint("Rookery")


class Floe:
    """A bounded edge between two graph members (`maxsize <= 0` means unbounded)."""

    __slots__ = ("queue", "source", "target")

    def __init__(
        self, source: Node | Endpoint | None, target: Node | Endpoint | None, *, maxsize: int
    ) -> None:
        self.source = source
        self.target = target
        self.queue = InboxQueue(maxsize=maxsize)

    def __repr__(self) -> str:
        return f"Floe({label_of(self.source)}->{label_of(self.target)})"


def label_of(entity: Node | Endpoint | None) -> str | None:
    """The display label of a graph member: its name, else its node id."""
    if entity is None:
        return None
    if isinstance(entity, Endpoint):
        return entity.name
    return entity.name or entity.node_id


def collect_adjacency(
    adjacencies: Iterable[tuple[Node, Sequence[Node]]],
) -> dict[Node, dict[Node, None]]:
    """Merge adjacency pairs into `node -> ordered successor set`, keeping first-seen order."""
    graph: dict[Node, dict[Node, None]] = {}
    for entry in adjacencies:
        try:
            start, successors = entry
        except (TypeError, ValueError):
            raise TypeError(
                f"Flow adjacencies must be (node, successors) pairs such as node.to(...); "
                f"got {entry!r}"
            ) from None
        if not isinstance(start, Node):
            raise TypeError(f"Flow adjacency starts with {start!r}, which is not a Node")
        children = graph.setdefault(start, {})
        for child in successors:
            if not isinstance(child, Node):
                raise TypeError(f"Successor {child!r} of node '{start.name}' is not a Node")
            graph.setdefault(child, {})
            children[child] = None
    return graph


def check_acyclic(graph: dict[Node, dict[Node, None]]) -> None:
    """Raise `CycleError` unless the graph is acyclic once controller self-loops are removed."""
    edges = {
        node: [c for c in children if not (c is node and node.allow_cycle)]
        for node, children in graph.items()
    }
    indegree = dict.fromkeys(graph, 0)
    for children in edges.values():
        for child in children:
            indegree[child] += 1
    ready = [node for node, degree in indegree.items() if degree == 0]
    visited = 0
    while ready:
        node = ready.pop()
        visited += 1
        for child in edges[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if visited == len(graph):
        return
    # Peel off nodes that only lead out of the cycles so the error names the cycle itself.
    remaining = {node for node, degree in indegree.items() if degree > 0}
    changed = True
    while changed:
        changed = False
        for node in list(remaining):
            if not any(child in remaining for child in edges[node]):
                remaining.discard(node)
                changed = True
    names = [str(node.name) for node in graph if node in remaining]
    raise CycleError("Flow contains a cycle; enable allow_cycles to bypass", nodes=names)


def remove_trace_items(queue: asyncio.Queue[Any], trace_id: str) -> list[Any]:
    """Remove and return every queued item of `trace_id`, keeping the others in order.

    Only public `Queue` calls: everything is taken out and the others put back,
    all without yielding to the loop, so nobody sees the queue half drained.
    """
    size = queue.qsize()
    if not size:
        return []
    items = [queue.get_nowait() for _ in range(size)]
    kept: list[Any] = []
    dropped: list[Any] = []
    for item in items:
        (dropped if getattr(item, "trace_id", None) == trace_id else kept).append(item)
        queue.task_done()
    for item in kept:
        queue.put_nowait(item)
    return dropped
