"""Toolsets: a planner's catalog can change between steps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import build_catalog
from penguiflow.catalog import NodeSpec
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.toolsets import Toolset
from penguiflow.testkit import ScriptedLLMClient


class Number(BaseModel):
    n: int


async def double(args: Number, ctx: Any) -> Number:
    return Number(n=args.n * 2)


async def square(args: Number, ctx: Any) -> Number:
    return Number(n=args.n**2)


class Growing:
    """A toolset that offers `double`, and also `square` once `grow()` ran."""

    def __init__(self) -> None:
        self.specs: Sequence[NodeSpec] = build_catalog([double])
        self.revision = 1

    def grow(self) -> None:
        self.specs = build_catalog([double, square])
        self.revision += 1


def act(next_node: str | None, args: dict[str, Any]) -> str:
    return json.dumps({"thought": "t", "next_node": next_node, "args": args})


async def test_the_next_step_sees_a_changed_toolset() -> None:
    toolset = Growing()

    def grow_then_call(messages: Any) -> str:
        toolset.grow()  # the tools change while the LLM thinks about step 1
        return act("double", {"n": 2})

    llm = ScriptedLLMClient(
        [grow_then_call, act("square", {"n": 3}), act(None, {"answer": "9"})],
        expects_json_schema=True,
    )
    planner = ReactPlanner(llm_client=llm, toolsets=[toolset], json_schema_mode=True)
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish)
    assert [step["observation"] for step in result.metadata["steps"]] == [{"n": 4}, {"n": 9}]
    prompts = [call["messages"][0]["content"] for call in llm.calls]
    assert ["- name: square" in prompt for prompt in prompts] == [False, True, True]
    names = [
        call["response_format"]["json_schema"]["schema"]["properties"]["next_node"]["enum"]
        for call in llm.calls
    ]
    assert names == [["double", None], ["double", "square", None], ["double", "square", None]]


async def test_toolsets_join_the_static_catalog() -> None:
    llm = ScriptedLLMClient([act(None, {"answer": "a"})])
    planner = ReactPlanner(llm_client=llm, catalog=build_catalog([square]), toolsets=[Growing()])
    await planner.run("q")
    prompt = llm.calls[0]["messages"][0]["content"]
    assert prompt.index("- name: square") < prompt.index("- name: double")


def test_a_toolset_must_have_specs_and_a_revision() -> None:
    assert isinstance(Growing(), Toolset)
    with pytest.raises(ValueError, match="toolsets= takes objects with `specs` and `revision`"):
        ReactPlanner(llm_client=ScriptedLLMClient(), toolsets=[object()])  # type: ignore[list-item]
