"""Cost and hop budgets hold across parallel branches and nested planners."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.errors import InvalidArgumentError
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.clients.protocol import LLMReply
from penguiflow.testkit import ScriptedLLMClient

from .conftest import act


def costly(text: str, cost: float) -> LLMReply:
    return LLMReply(text, prompt_tokens=1, completion_tokens=1, cost_usd=cost)


def triage_forever(cost: float) -> LLMReply:
    return costly(act("again", next_node="triage", args={"text": "q"}), cost)


async def test_a_cost_budget_ends_the_run_as_budget_exhausted(catalog: list[Any]) -> None:
    llm = ScriptedLLMClient(default=triage_forever(0.4))
    planner = ReactPlanner(llm_client=llm, catalog=catalog, cost_budget_usd=1.0, max_iters=10)

    result = await planner.run("q")

    assert isinstance(result, PlannerFinish)
    assert result.reason == "budget_exhausted"
    assert "Cost budget exhausted" in result.metadata["thought"]
    assert len(llm.calls) == 3  # 0.4 + 0.4 + 0.4 >= 1.0: no fourth call
    assert result.metadata["usage"]["cost_usd"] == pytest.approx(1.2)


@pytest.mark.parametrize("bad", [-1, float("nan"), "1"])
def test_a_cost_budget_must_be_a_non_negative_number(catalog: list[Any], bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="cost_budget_usd"):
        ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog, cost_budget_usd=bad)


class Ask(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str


def delegating_catalog(inner: ReactPlanner) -> list[Any]:
    async def delegate(args: Ask, ctx: Any) -> Answer:
        result = await inner.run(args.question)
        assert isinstance(result, PlannerFinish)
        return Answer(answer=f"{result.reason}:{result.payload}")

    registry = ModelRegistry()
    registry.register("delegate", Ask, Answer)
    return build_catalog([Node(delegate, name="delegate")], registry)


async def test_a_nested_planner_stops_at_the_callers_cost_budget(catalog: list[Any]) -> None:
    inner_llm = ScriptedLLMClient(default=triage_forever(0.3))
    inner = ReactPlanner(llm_client=inner_llm, catalog=catalog, max_iters=50)
    outer_llm = ScriptedLLMClient(
        [costly(act("ask", next_node="delegate", args={"question": "?"}), 0.1)],
        default=costly(act("done", next_node=None, args={"a": 1}), 0.1),
    )
    outer = ReactPlanner(
        llm_client=outer_llm, catalog=delegating_catalog(inner), cost_budget_usd=1.0
    )

    result = await outer.run("q")

    assert isinstance(result, PlannerFinish)
    # 0.1 (outer) + 3 x 0.3 (inner) = 1.0: the inner run stops, then the outer one.
    assert len(inner_llm.calls) == 3
    assert result.reason == "budget_exhausted"
    observation = result.metadata["steps"][0]["observation"]
    assert observation["answer"].startswith("budget_exhausted")
    assert len(outer_llm.calls) == 1


async def test_nested_tool_calls_count_against_the_callers_hop_budget(
    catalog: list[Any],
) -> None:
    inner_llm = ScriptedLLMClient(default=triage_forever(0.0))
    inner = ReactPlanner(llm_client=inner_llm, catalog=catalog, max_iters=50)
    outer_llm = ScriptedLLMClient(
        [act("ask", next_node="delegate", args={"question": "?"})],
        default=act("done", next_node=None, args={"a": 1}),
    )
    outer = ReactPlanner(llm_client=outer_llm, catalog=delegating_catalog(inner), hop_budget=4)

    result = await outer.run("q")

    assert isinstance(result, PlannerFinish)
    # The outer call to `delegate` is one hop; the inner run may make three more.
    assert result.metadata["usage"]["tool_calls"] == 4
    assert result.reason == "budget_exhausted"


async def test_a_parallel_plan_larger_than_the_hops_left_is_refused(
    catalog: list[Any], calls: Any
) -> None:
    llm = ScriptedLLMClient(
        [
            act("fan out", plan=[{"node": "fetch", "args": {"shard": n}} for n in range(3)]),
            act("done", next_node=None, args={"a": 1}),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=catalog, hop_budget=2)

    result = await planner.run("q")

    assert calls.names() == []  # nothing ran
    step = result.metadata["steps"][0]  # type: ignore[union-attr]
    assert "Hop budget exhausted" in step["error"]
