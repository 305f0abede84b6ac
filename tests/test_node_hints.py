"""Types written once: a node's type hints name its models, for flows and for the planner."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import (
    FlowError,
    Headers,
    Message,
    ModelRegistry,
    Node,
    NodePolicy,
    ReactPlanner,
    build_catalog,
    tool,
)
from penguiflow.errors import RegistryCoverageError
from penguiflow.planner import PlannerFinish
from penguiflow.testkit import ScriptedLLMClient


class Query(BaseModel):
    text: str
    limit: int = 3


class Hits(BaseModel):
    items: list[str]


async def search(query: Query, ctx: Any) -> Hits:
    return Hits(items=[query.text] * query.limit)


async def search_dict(query: Query, ctx: Any) -> Hits:
    return {"items": [query.text]}  # type: ignore[return-value]  # coerced into Hits


async def untyped(message, ctx):  # type: ignore[no-untyped-def]  # spec'd: no validation
    return message


async def test_hints_validate_input_and_output_without_a_registry(flows: Any) -> None:
    flow = flows(Node(search_dict).to())
    flow.run()
    await flow.emit({"text": "q", "limit": "2"})
    assert await asyncio.wait_for(flow.fetch(), 1) == Hits(items=["q"])


async def test_a_bad_payload_for_a_hinted_node_is_a_flow_error(flows: Any) -> None:
    flow = flows(Node(search).to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(Message(payload={"txt": "q"}, headers=Headers(tenant="t")))
    error = await asyncio.wait_for(flow.fetch(), 1)
    assert isinstance(error, FlowError)
    assert error.exception_type == "ValidationError"
    assert error.metadata["validation_errors"][0]["loc"] == ("text",)


async def test_a_payload_typed_node_gets_the_payload_and_its_result_keeps_the_envelope(
    flows: Any,
) -> None:
    flow = flows(Node(search).to())
    flow.run()
    sent = Message(payload={"text": "q", "limit": 1}, headers=Headers(tenant="acme"), meta={"k": 1})
    await flow.emit(sent)
    result = await asyncio.wait_for(flow.fetch(), 1)
    assert isinstance(result, Message)
    assert result.payload == Hits(items=["q"])
    assert (result.trace_id, result.headers, result.meta) == (sent.trace_id, sent.headers, {"k": 1})


async def test_a_node_without_hints_gets_what_was_sent_unvalidated(flows: Any) -> None:
    flow = flows(Node(untyped).to())
    flow.run()
    await flow.emit({"anything": 1})
    assert await asyncio.wait_for(flow.fetch(), 1) == {"anything": 1}


async def test_message_hints_name_the_envelope_not_a_model(flows: Any) -> None:
    async def passthrough(message: Message, ctx: Any) -> Message:
        return message

    assert Node(passthrough).models() is None
    flow = flows(Node(passthrough).to())
    flow.run()
    await flow.emit("not a message")  # as specified without a registry: not validated
    assert await asyncio.wait_for(flow.fetch(), 1) == "not a message"


async def test_validate_none_turns_hint_validation_off(flows: Any) -> None:
    flow = flows(Node(search, policy=NodePolicy(validate="none")).to())
    flow.run()
    await flow.emit(Query(text="q", limit=1))
    assert await asyncio.wait_for(flow.fetch(), 1) == Hits(items=["q"])
    await flow.emit({"raw": True})
    with pytest.raises(TimeoutError):  # search failed on a dict: no validation first
        await asyncio.wait_for(flow.fetch(), 0.1)


async def test_an_explicit_registry_wins_over_the_hints(flows: Any) -> None:
    class Loose(BaseModel):
        text: str

    async def echo(query: Query, ctx: Any) -> Query:
        return query

    registry = ModelRegistry()
    registry.register("echo", Loose, Loose)
    flow = flows(Node(echo).to())
    flow.run(registry=registry)
    await flow.emit({"text": "q", "limit": 9})
    assert await asyncio.wait_for(flow.fetch(), 1) == Loose(text="q")


def test_a_registry_must_cover_every_validating_node_as_specified() -> None:
    from penguiflow import create

    flow = create(Node(search).to())
    with pytest.raises(RegistryCoverageError, match="search"):
        flow.run(registry=ModelRegistry())


def test_hints_that_cannot_be_resolved_mean_no_models() -> None:
    async def later(query: NotYetDefined, ctx: Any) -> Hits:  # type: ignore[name-defined]  # noqa: F821
        return Hits(items=[])

    assert Node(later).models() is None


def test_optional_return_hints_name_the_model() -> None:
    async def maybe(query: Query, ctx: Any) -> Hits | None:
        return None

    models = Node(maybe).models()
    assert models is not None
    assert (models.in_model, models.out_model) == (Query, Hits)


def test_build_catalog_takes_models_from_hints_without_a_registry() -> None:
    @tool(desc="Search the docs", tags=["docs"])
    async def find(query: Query, ctx: Any) -> Hits:
        return Hits(items=[])

    specs = build_catalog([find, Node(search)])
    assert [(s.name, s.args_model, s.out_model, s.desc) for s in specs] == [
        ("find", Query, Hits, "Search the docs"),
        ("search", Query, Hits, "search"),
    ]


def test_build_catalog_with_a_registry_uses_only_the_registry() -> None:
    with pytest.raises(KeyError, match="Node 'search' not registered"):
        build_catalog([Node(search)], ModelRegistry())


def test_build_catalog_names_a_tool_whose_hints_name_no_models() -> None:
    with pytest.raises(KeyError, match="type hints do not name both models"):
        build_catalog([Node(untyped)])


async def test_the_planner_runs_tool_functions_typed_only_by_hints() -> None:
    @tool(desc="Search the docs")
    async def find(query: Query, ctx: Any) -> Hits:
        return Hits(items=[f"doc about {query.text}"])

    def act(thought: str, next_node: str | None, args: dict[str, Any]) -> str:
        return json.dumps({"thought": thought, "next_node": next_node, "args": args})

    client = ScriptedLLMClient(
        [
            act("look it up", "find", {"text": "penguins"}),
            act("done", None, {"answer": "doc about penguins"}),
        ]
    )
    planner = ReactPlanner(llm_client=client, nodes=[find])
    result = await planner.run("what about penguins?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "doc about penguins"}
    assert result.metadata["steps"][0]["observation"] == {"items": ["doc about penguins"]}


def test_the_planner_still_wants_a_registry_for_untyped_nodes() -> None:
    with pytest.raises(ValueError, match="Either catalog or"):
        ReactPlanner(llm_client=ScriptedLLMClient([]), nodes=[Node(untyped)])
