"""Render a flow's graph as Mermaid or Graphviz DOT text.

Output is deterministic: OpenSea first, then nodes in declaration order, then
Rookery; edges are sorted by (source, target) in that same order. Labels are
escaped so that any node name stays inside its quoted label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .core import OPEN_SEA, ROOKERY, Endpoint, PenguiFlow
from .errors import InvalidArgumentError
from .node import Node

__all__ = ["flow_to_mermaid", "flow_to_dot"]

_MERMAID_DIRECTIONS = frozenset({"TB", "TD", "BT", "RL", "LR"})
_DOT_RANKDIRS = frozenset({"TB", "LR", "BT", "RL"})

_CLASS_DEFS = {
    "controller_loop": "fill:#fef3c7,stroke:#b45309,stroke-width:1px",
    "endpoint": "fill:#e0f2fe,stroke:#0369a1,stroke-width:1px",
}

_NON_IDENT = re.compile(r"[^0-9A-Za-z_]")
# Identifiers that Mermaid or DOT read as keywords (DOT keywords are case-insensitive).
_RESERVED_IDS = frozenset(
    {
        "end", "graph", "flowchart", "subgraph", "class", "classdef", "click", "style",
        "linkstyle", "direction", "node", "edge", "digraph", "strict",
    }
)  # fmt: skip


@dataclass(slots=True)
class _VisualNode:
    ident: str
    label: str
    classes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _VisualEdge:
    source: str
    target: str
    label: str | None


def _label(entity: Node | Endpoint) -> str:
    if isinstance(entity, Endpoint):
        return entity.name
    return entity.name or entity.node_id


def _identifier(label: str, used: set[str]) -> str:
    base = _NON_IDENT.sub("_", label) or "node"
    if base[0].isdigit():
        base = f"_{base}"  # DOT identifiers cannot start with a digit
    candidate, n = base, 1
    while candidate in used or candidate.lower() in _RESERVED_IDS:
        n += 1
        candidate = f"{base}_{n}"
    used.add(candidate)
    return candidate


def _collect(flow: PenguiFlow) -> tuple[list[_VisualNode], list[_VisualEdge]]:
    if not isinstance(flow, PenguiFlow):
        raise TypeError(f"expected a PenguiFlow, got {type(flow).__name__}")
    pairs: list[tuple[Node | Endpoint, Node | Endpoint]] = [
        (floe.source, floe.target)
        for floe in flow.edges
        if floe.source is not None and floe.target is not None
    ]
    present: dict[int, Node | Endpoint] = {}
    for source, target in pairs:
        present.setdefault(id(source), source)
        present.setdefault(id(target), target)

    ordered: list[Node | Endpoint] = []
    if id(OPEN_SEA) in present:
        ordered.append(OPEN_SEA)
    ordered.extend(node for node in flow.nodes if id(node) in present)
    listed = {id(entity) for entity in ordered} | {id(ROOKERY)}
    # Anything the declaration order does not cover goes last, in edge order.
    ordered.extend(e for key, e in present.items() if key not in listed)
    if id(ROOKERY) in present:
        ordered.append(ROOKERY)

    used: set[str] = set()
    index: dict[int, int] = {}
    nodes: list[_VisualNode] = []
    for position, entity in enumerate(ordered):
        label = _label(entity)
        visual = _VisualNode(_identifier(label, used), label)
        if isinstance(entity, Endpoint):
            visual.classes.append("endpoint")
        elif entity.allow_cycle:
            visual.classes.append("controller_loop")
        index[id(entity)] = position
        nodes.append(visual)

    keyed: list[tuple[int, int, str | None]] = []
    for source, target in pairs:
        if source is target:
            edge_label: str | None = "loop"
            loop_node = nodes[index[id(source)]]
            if "controller_loop" not in loop_node.classes:
                loop_node.classes.append("controller_loop")
        elif isinstance(source, Endpoint):
            edge_label = "ingress"
        elif isinstance(target, Endpoint):
            edge_label = "egress"
        else:
            edge_label = None
        keyed.append((index[id(source)], index[id(target)], edge_label))
    keyed.sort(key=lambda item: (item[0], item[1]))
    edges = [_VisualEdge(nodes[s].ident, nodes[t].ident, lab) for s, t, lab in keyed]
    return nodes, edges


def _mermaid_escape(text: str) -> str:
    """Escape label text for a quoted Mermaid label using Mermaid entity codes.

    `"` becomes `#quot;`; `#` (the entity marker), `&`, `<`, `>`, the backtick
    and control characters (including line breaks) become numeric `#N;` codes,
    so the label renders literally and cannot end its line or its quotes.
    """
    out: list[str] = []
    for char in text:
        if char == '"':
            out.append("#quot;")
        elif char in "#&<>`" or ord(char) < 32 or ord(char) == 127:
            out.append(f"#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def _dot_escape(text: str) -> str:
    """Escape label text for a double-quoted DOT string.

    Backslashes and quotes are backslash-escaped; line breaks become DOT's `\\n`.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def flow_to_mermaid(flow: PenguiFlow, *, direction: str = "TD") -> str:
    """Render `flow` as a Mermaid flowchart (`graph {direction}`), without trailing newline.

    Endpoints get the `endpoint` class, controller nodes (and any self-looping
    node) the `controller_loop` class; edges from OpenSea are labelled `ingress`,
    into Rookery `egress`, self-loops `loop`. Raises `TypeError` for a non-flow
    and `ValueError` for a direction other than TB, TD, BT, RL or LR.
    """
    if direction not in _MERMAID_DIRECTIONS:
        raise InvalidArgumentError(
            f"direction must be one of {', '.join(sorted(_MERMAID_DIRECTIONS))}; got {direction!r}"
        )
    nodes, edges = _collect(flow)
    lines = [f"graph {direction}"]
    lines.extend(f'    {node.ident}["{_mermaid_escape(node.label)}"]' for node in nodes)
    used_classes = sorted({name for node in nodes for name in node.classes})
    lines.extend(f"    classDef {name} {_CLASS_DEFS[name]}" for name in used_classes)
    lines.extend(
        f"    class {node.ident} {' '.join(node.classes)}" for node in nodes if node.classes
    )
    for edge in edges:
        if edge.label:
            lines.append(f"    {edge.source} -->|{_mermaid_escape(edge.label)}| {edge.target}")
        else:
            lines.append(f"    {edge.source} --> {edge.target}")
    return "\n".join(lines)


def flow_to_dot(flow: PenguiFlow, *, rankdir: str = "TB") -> str:
    """Render `flow` as a Graphviz `digraph PenguiFlow`, without trailing newline.

    Endpoints are filled ovals, controller nodes filled rounded boxes; edges are
    labelled like `flow_to_mermaid`'s. Raises `TypeError` for a non-flow and
    `ValueError` for a rankdir other than TB, LR, BT or RL.
    """
    if rankdir not in _DOT_RANKDIRS:
        raise InvalidArgumentError(
            f"rankdir must be one of {', '.join(sorted(_DOT_RANKDIRS))}; got {rankdir!r}"
        )
    nodes, edges = _collect(flow)
    lines = [
        "digraph PenguiFlow {",
        f"    rankdir={rankdir}",
        "    node [shape=box, style=rounded]",
    ]
    for node in nodes:
        attributes = [f'label="{_dot_escape(node.label)}"']
        if "endpoint" in node.classes:
            attributes += ["shape=oval", 'style="filled"', 'fillcolor="#e0f2fe"']
        elif "controller_loop" in node.classes:
            attributes += ['style="rounded,filled"', 'fillcolor="#fef3c7"']
        lines.append(f"    {node.ident} [{', '.join(attributes)}]")
    for edge in edges:
        if edge.label:
            lines.append(f'    {edge.source} -> {edge.target} [label="{_dot_escape(edge.label)}"]')
        else:
            lines.append(f"    {edge.source} -> {edge.target}")
    lines.append("}")
    return "\n".join(lines)
