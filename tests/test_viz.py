"""Visualisation: Mermaid and DOT renderings of a flow graph."""

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguiflow import Node, NodePolicy, PenguiFlow, create, flow_to_dot, flow_to_mermaid


async def step(message: Any, ctx: Any) -> Any:
    return message


def node(name: str, **kwargs: Any) -> Node:
    return Node(step, name=name, policy=NodePolicy(validate="none"), **kwargs)


def controller_flow() -> PenguiFlow:
    controller = node("controller", allow_cycle=True)
    summarize = node("summarize")
    return create(controller.to(controller, summarize), summarize.to())


def test_mermaid_for_a_controller_loop() -> None:
    assert flow_to_mermaid(controller_flow(), direction="LR") == "\n".join(
        [
            "graph LR",
            '    OpenSea["OpenSea"]',
            '    controller["controller"]',
            '    summarize["summarize"]',
            '    Rookery["Rookery"]',
            "    classDef controller_loop fill:#fef3c7,stroke:#b45309,stroke-width:1px",
            "    classDef endpoint fill:#e0f2fe,stroke:#0369a1,stroke-width:1px",
            "    class OpenSea endpoint",
            "    class controller controller_loop",
            "    class Rookery endpoint",
            "    OpenSea -->|ingress| controller",
            "    controller -->|loop| controller",
            "    controller --> summarize",
            "    summarize -->|egress| Rookery",
        ]
    )


def test_dot_for_a_controller_loop() -> None:
    assert flow_to_dot(controller_flow(), rankdir="LR") == "\n".join(
        [
            "digraph PenguiFlow {",
            "    rankdir=LR",
            "    node [shape=box, style=rounded]",
            '    OpenSea [label="OpenSea", shape=oval, style="filled", fillcolor="#e0f2fe"]',
            '    controller [label="controller", style="rounded,filled", fillcolor="#fef3c7"]',
            '    summarize [label="summarize"]',
            '    Rookery [label="Rookery", shape=oval, style="filled", fillcolor="#e0f2fe"]',
            '    OpenSea -> controller [label="ingress"]',
            '    controller -> controller [label="loop"]',
            "    controller -> summarize",
            '    summarize -> Rookery [label="egress"]',
            "}",
        ]
    )


def test_nodes_follow_declaration_order_and_edges_are_sorted() -> None:
    # Declared out of topological order, with a fan-out and a fan-in.
    fetch, left, right, merge = node("fetch"), node("left"), node("right"), node("merge")
    flow = create(merge.to(), fetch.to(right, left), left.to(merge), right.to(merge))

    lines = flow_to_mermaid(flow).splitlines()

    assert lines[0] == "graph TD"
    assert lines[1:7] == [
        '    OpenSea["OpenSea"]',
        '    merge["merge"]',
        '    fetch["fetch"]',
        '    right["right"]',
        '    left["left"]',
        '    Rookery["Rookery"]',
    ]
    assert [line for line in lines if "-->" in line] == [
        "    OpenSea -->|ingress| fetch",
        "    merge -->|egress| Rookery",
        "    fetch --> right",
        "    fetch --> left",
        "    right --> merge",
        "    left --> merge",
    ]


def test_same_topology_renders_identically_every_time() -> None:
    def build() -> PenguiFlow:
        nodes = [node(f"n{i}") for i in range(6)]
        hub, *spokes = nodes
        return create(hub.to(*spokes), *(s.to() for s in spokes))

    flow = build()
    renders = {flow_to_mermaid(flow) for _ in range(3)} | {
        flow_to_mermaid(build()) for _ in range(20)
    }
    dots = {flow_to_dot(flow) for _ in range(3)} | {flow_to_dot(build()) for _ in range(20)}
    assert len(renders) == 1
    assert len(dots) == 1


def test_identifiers_are_sanitised_unique_and_never_keywords() -> None:
    first, second = node("load data"), node("load data")
    keyword, digit, dotted = node("end"), node("2fa"), node("a.b")
    flow = create(
        first.to(second), second.to(keyword), keyword.to(digit), digit.to(dotted), dotted.to()
    )

    lines = flow_to_mermaid(flow).splitlines()

    assert lines[2:7] == [
        '    load_data["load data"]',
        '    load_data_2["load data"]',
        '    end_2["end"]',
        '    _2fa["2fa"]',
        '    a_b["a.b"]',
    ]
    assert "    load_data --> load_data_2" in lines
    assert "    end_2 --> _2fa" in lines
    dot = flow_to_dot(flow)
    assert '    end_2 [label="end"]' in dot
    assert "    _2fa -> a_b" in dot


def test_self_loop_without_allow_cycle_is_drawn_as_a_loop() -> None:
    looping = node("poll")
    flow = create(looping.to(looping), allow_cycles=True)

    mermaid = flow_to_mermaid(flow)

    assert "    class poll controller_loop" in mermaid
    assert "    poll -->|loop| poll" in mermaid
    # A self-looping node without allow_cycle counts itself as a parent: no ingress.
    assert "OpenSea" not in mermaid
    assert '    poll [label="poll", style="rounded,filled", fillcolor="#fef3c7"]' in flow_to_dot(
        flow
    )


def test_hostile_labels_are_escaped() -> None:
    name = 'say "hi" \\N <b>#1</b>\nnext'
    flow = create(node(name).to())

    mermaid = flow_to_mermaid(flow).splitlines()
    dot = flow_to_dot(flow).splitlines()

    assert mermaid[2] == (
        '    say__hi___N__b__1__b__next["say #quot;hi#quot; \\N #60;b#62;#35;1#60;/b#62;#10;next"]'
    )
    assert dot[4] == '    say__hi___N__b__1__b__next [label="say \\"hi\\" \\\\N <b>#1</b>\\nnext"]'


def test_bad_arguments_are_rejected() -> None:
    flow = controller_flow()
    with pytest.raises(ValueError, match="direction must be one of BT, LR, RL, TB, TD; got 'XY'"):
        flow_to_mermaid(flow, direction="XY")
    with pytest.raises(ValueError, match="rankdir must be one of BT, LR, RL, TB"):
        flow_to_dot(flow, rankdir="TB]\n  evil")
    with pytest.raises(TypeError, match="expected a PenguiFlow, got list"):
        flow_to_dot([])  # type: ignore[arg-type]


# -- escaping invariants ----------------------------------------------------------------


def mermaid_unescape(text: str) -> str:
    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        return '"' if code == "quot" else chr(int(code))

    return re.sub(r"#(quot|\d+);", decode, text)


def dot_read_quoted(text: str) -> tuple[str, str]:
    """Read a DOT quoted string body up to its closing quote: (decoded value, rest)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), text[i + 1 :]
        if char == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(escaped, "\\" + escaped))
            i += 2
            continue
        out.append(char)
        i += 1
    raise AssertionError(f"unterminated DOT string: {text!r}")


labels = st.text(min_size=1)


@given(labels)
def test_mermaid_labels_never_escape_their_quotes(label: str) -> None:
    lines = flow_to_mermaid(create(node(label).to())).split("\n")

    assert len(lines) == 9  # graph, 3 nodes, 1 classDef, 2 class lines, 2 edges
    ident, _, rest = lines[2].strip().partition('["')
    assert re.fullmatch(r"[A-Za-z_][0-9A-Za-z_]*", ident)
    assert rest.endswith('"]')
    body = rest[:-2]
    assert '"' not in body
    assert mermaid_unescape(body) == label


@given(labels)
def test_dot_labels_never_escape_their_quotes(label: str) -> None:
    lines = flow_to_dot(create(node(label).to())).split("\n")

    assert len(lines) == 9  # 3 header lines, 3 nodes, 2 edges, closing brace
    prefix = lines[4].split(' [label="', 1)
    assert len(prefix) == 2
    value, rest = dot_read_quoted(prefix[1])
    assert rest == "]"
    assert value == re.sub(r"\r\n|\r", "\n", label)
