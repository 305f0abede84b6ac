"""The tool catalog: decorate node functions, register models, build specs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

import penguiflow
from penguiflow import ModelRegistry, Node
from penguiflow.catalog import NodeSpec, build_catalog, tool


class Query(BaseModel):
    text: str
    top_k: int = 3


class Documents(BaseModel):
    items: list[str]


class Answer(BaseModel):
    text: str


@tool(
    desc="Search the knowledge base",
    side_effects="read",
    tags=["search", "kb", "search"],
    auth_scopes=["kb:read", "kb:read", "user"],
    cost_hint="low",
    latency_hint_ms=0,
    safety_notes="Never returns PII",
    extra={"owner": "search-team"},
)
async def search(args: Query, ctx: Any) -> Documents:
    return Documents(items=[args.text] * args.top_k)


async def summarise(args: Documents, ctx: Any) -> Answer:
    """Summarise documents.

    Returns one short answer.
    """
    return Answer(text=" ".join(args.items))


async def shout(args: Answer, ctx: Any) -> Answer:
    return Answer(text=args.text.upper())


def _catalog() -> tuple[list[NodeSpec], dict[str, Node]]:
    nodes = {
        "search": Node(search, name="search"),
        "summarise": Node(summarise, name="summarise"),
        "shout": Node(shout, name="shout"),
    }
    registry = ModelRegistry()
    registry.register("search", Query, Documents)
    registry.register("summarise", Documents, Answer)
    registry.register("shout", Answer, Answer)
    return build_catalog(list(nodes.values()), registry), nodes


def test_build_catalog_keeps_order_nodes_and_models() -> None:
    specs, nodes = _catalog()

    assert [spec.name for spec in specs] == ["search", "summarise", "shout"]
    assert [spec.node for spec in specs] == list(nodes.values())
    assert (specs[0].args_model, specs[0].out_model) == (Query, Documents)
    assert (specs[1].args_model, specs[1].out_model) == (Documents, Answer)


def test_decorated_tool_metadata_is_deduplicated_and_kept() -> None:
    spec = _catalog()[0][0]

    assert spec.desc == "Search the knowledge base"
    assert spec.side_effects == "read"
    assert spec.tags == ("search", "kb")
    assert spec.auth_scopes == ("kb:read", "user")
    assert (spec.cost_hint, spec.latency_hint_ms, spec.safety_notes) == (
        "low",
        0,
        "Never returns PII",
    )
    assert spec.extra == {"owner": "search-team"}


def test_undecorated_tools_fall_back_to_docstring_then_name() -> None:
    _, summarise_spec, shout_spec = _catalog()[0]

    assert summarise_spec.desc == "Summarise documents.\n\nReturns one short answer."
    assert shout_spec.desc == "shout"
    for spec in (summarise_spec, shout_spec):
        assert spec.side_effects == "pure"
        assert (spec.tags, spec.auth_scopes, spec.extra) == ((), (), {})
        assert (spec.cost_hint, spec.latency_hint_ms, spec.safety_notes) == (None, None, None)


def test_tool_returns_the_same_function_and_shares_its_metadata() -> None:
    mark = tool(side_effects="write")

    async def first(args: Answer, ctx: Any) -> Answer:
        return args

    async def second(args: Answer, ctx: Any) -> Answer:
        return args

    assert mark(first) is first
    mark(second)
    assert first.__penguiflow_tool__ is second.__penguiflow_tool__  # type: ignore[attr-defined]
    assert first.__penguiflow_tool__ == {  # type: ignore[attr-defined]
        "desc": None,
        "side_effects": "write",
        "tags": (),
        "auth_scopes": (),
        "cost_hint": None,
        "latency_hint_ms": None,
        "safety_notes": None,
        "extra": {},
    }


def test_decorated_tool_without_desc_uses_docstring() -> None:
    @tool(tags=["x"])
    async def documented(args: Answer, ctx: Any) -> Answer:
        """Echo the answer."""
        return args

    registry = ModelRegistry()
    registry.register("documented", Answer, Answer)
    (spec,) = build_catalog([Node(documented)], registry)
    assert (spec.desc, spec.tags) == ("Echo the answer.", ("x",))


def test_tool_accepts_unknown_side_effects_but_rejects_unknown_keywords() -> None:
    @tool(side_effects="teleport")  # type: ignore[arg-type]
    async def odd(args: Answer, ctx: Any) -> Answer:
        return args

    assert odd.__penguiflow_tool__["side_effects"] == "teleport"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        tool(latency_hint="medium")  # type: ignore[call-arg]


def test_to_tool_record_has_spec_keys_in_order_with_schemas() -> None:
    record = _catalog()[0][0].to_tool_record()

    assert list(record) == [
        "name",
        "desc",
        "side_effects",
        "tags",
        "auth_scopes",
        "cost_hint",
        "latency_hint_ms",
        "safety_notes",
        "args_schema",
        "out_schema",
        "extra",
    ]
    assert record["tags"] == ["search", "kb"]
    assert record["auth_scopes"] == ["kb:read", "user"]
    assert record["args_schema"] == Query.model_json_schema()
    assert record["out_schema"] == Documents.model_json_schema()
    assert record["args_schema"]["required"] == ["text"]
    assert record["extra"] == {"owner": "search-team"}


def test_records_are_new_dicts_and_schemas_are_computed_once() -> None:
    spec = _catalog()[0][0]
    first, second = spec.to_tool_record(), spec.to_tool_record()

    assert first is not second
    first["extra"]["owner"] = "someone-else"
    assert spec.extra == {"owner": "search-team"}
    # Both records, and records of other specs with the same model, share one schema.
    assert first["args_schema"] is second["args_schema"]
    shout_spec = _catalog()[0][2]
    assert shout_spec.to_tool_record()["args_schema"] is shout_spec.to_tool_record()["out_schema"]


def test_node_spec_is_frozen() -> None:
    spec = _catalog()[0][0]

    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "renamed"  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(NodeSpec)] == [
        "node",
        "name",
        "desc",
        "args_model",
        "out_model",
        "side_effects",
        "tags",
        "auth_scopes",
        "cost_hint",
        "latency_hint_ms",
        "safety_notes",
        "extra",
    ]


def test_unregistered_node_fails_at_build_time() -> None:
    with pytest.raises(KeyError, match="Node 'shout' not registered"):
        build_catalog([Node(shout)], ModelRegistry())


def test_plain_function_is_rejected_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="expects penguiflow Node objects"):
        build_catalog([search], ModelRegistry())  # type: ignore[list-item]


def test_duplicate_names_are_kept() -> None:
    registry = ModelRegistry()
    registry.register("shout", Answer, Answer)
    specs = build_catalog([Node(shout), Node(shout)], registry)

    assert [spec.name for spec in specs] == ["shout", "shout"]
    assert specs[0].node is not specs[1].node


def test_catalog_is_loaded_lazily_from_the_package() -> None:
    assert penguiflow.NodeSpec is NodeSpec
    assert penguiflow.tool is tool
    code = (
        "import sys, penguiflow; "
        "assert 'penguiflow.catalog' not in sys.modules; "
        "assert 'penguiflow.remote' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
