"""Graph construction: ingress/egress wiring and cycle detection."""

from typing import Any

import pytest

from penguiflow import CycleError, Node, NodePolicy, create
from penguiflow.core import OPEN_SEA, ROOKERY


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def node(name: str, **kwargs: Any) -> Node:
    return Node(passthrough, name=name, policy=NodePolicy(validate="none"), **kwargs)


def edges(flow: Any) -> set[tuple[str, str]]:
    return {(f.source.name, f.target.name) for f in flow.edges}


def test_chain_gets_one_ingress_and_one_egress() -> None:
    a, b, c = node("a"), node("b"), node("c")
    flow = create(a.to(b), b.to(c), c.to())
    assert edges(flow) == {("OpenSea", "a"), ("a", "b"), ("b", "c"), ("c", "Rookery")}


def test_duplicate_edges_collapse_and_adjacencies_merge() -> None:
    a, b, c = node("a"), node("b"), node("c")
    flow = create(a.to(b, b), a.to(c), b.to(), c.to())
    assert edges(flow) == {
        ("OpenSea", "a"),
        ("a", "b"),
        ("a", "c"),
        ("b", "Rookery"),
        ("c", "Rookery"),
    }


def test_controller_self_loop_is_ingress_and_egress() -> None:
    controller = node("controller", allow_cycle=True)
    flow = create(controller.to(controller))
    assert edges(flow) == {
        ("OpenSea", "controller"),
        ("controller", "controller"),
        ("controller", "Rookery"),
    }
    assert flow.contexts[controller].outgoing_count() == 2
    assert OPEN_SEA in flow.contexts[controller].incoming
    assert ROOKERY in flow.contexts[controller].outgoing


def test_cycle_without_controller_names_the_nodes() -> None:
    a, b, c = node("a"), node("b"), node("c")
    with pytest.raises(CycleError) as info:
        create(a.to(b), b.to(c), c.to(b))
    assert str(info.value) == "Flow contains a cycle; enable allow_cycles to bypass"
    assert set(info.value.nodes) == {"b", "c"}
    assert any("b, c" in note or "c, b" in note for note in info.value.__notes__)


def test_self_loop_needs_allow_cycle() -> None:
    loop = node("loop")
    with pytest.raises(CycleError):
        create(loop.to(loop))
    # allow_cycles bypasses detection; a self-loop without allow_cycle then has no ingress.
    flow = create(loop.to(loop), allow_cycles=True)
    assert ("OpenSea", "loop") not in edges(flow)


def test_allow_cycle_does_not_excuse_multi_node_cycles() -> None:
    a, b = node("a", allow_cycle=True), node("b", allow_cycle=True)
    with pytest.raises(CycleError):
        create(a.to(b), b.to(a))


def test_bad_adjacencies_get_typed_errors() -> None:
    a = node("a")
    with pytest.raises(TypeError, match="not a Node"):
        create(a.to("b"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pairs"):
        create(a)  # type: ignore[arg-type]


def test_construction_needs_no_event_loop() -> None:
    a = node("a")
    flow = create(a.to())
    assert flow.registry is None
