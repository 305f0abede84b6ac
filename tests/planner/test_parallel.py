"""Parallel plans: branches run together, the join gets their results, limits hold."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient

from .conftest import Calls, act


def fan_out(*shards: int, join: bool = True) -> str:
    plan = [{"node": "fetch", "args": {"shard": s}} for s in shards]
    fields: dict[str, Any] = {"plan": plan}
    if join:
        fields["join"] = {"node": "merge", "args": {}}
    return act("fan out", **fields)


async def test_branches_run_and_the_join_receives_their_results(
    catalog: list[Any], calls: Calls
) -> None:
    llm = ScriptedLLMClient([fan_out(1, 2, 3), act(next_node=None)])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("sum the shards")
    assert isinstance(result, PlannerFinish)
    observation = result.payload
    assert [b["observation"] for b in observation["branches"]] == [
        {"total": 10},
        {"total": 20},
        {"total": 30},
    ]
    assert observation["stats"] == {"success": 3, "failed": 0}
    assert observation["join"] == {"node": "merge", "observation": {"total": 60}}
    merge_args = calls.log[-1][1]
    assert merge_args.expect == 3  # type: ignore[attr-defined]
    assert sorted(calls.names()) == ["fetch", "fetch", "fetch", "merge"]


async def test_a_failed_branch_skips_the_join(catalog: list[Any], calls: Calls) -> None:
    llm = ScriptedLLMClient([fan_out(1, -1), act(next_node=None)])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert isinstance(result, PlannerFinish)
    join = result.payload["join"]
    assert join["status"] == "skipped"
    assert join["reason"] == "branch_failures"
    assert join["failures"][0]["error"] == "tool 'fetch' raised ValueError: negative shard"
    assert "merge" not in calls.names()


async def test_plans_over_the_limits_are_refused_before_anything_runs(
    catalog: list[Any], calls: Calls
) -> None:
    llm = ScriptedLLMClient(
        [fan_out(1, 2, 3), fan_out(1, 2), act(next_node=None, args={"answer": "done"})]
    )
    p = ReactPlanner(
        llm_client=llm, catalog=catalog, absolute_max_parallel=2, planning_hints={"max_parallel": 1}
    )
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    errors = [s["error"] for s in result.metadata["steps"]]
    assert errors == [
        "Parallel action exceeds max_parallel=2. Reduce parallel fan-out.",
        "Parallel action exceeds max_parallel=1. Reduce parallel fan-out.",
    ]
    assert calls.names() == []


async def test_plans_count_against_the_hop_budget_and_respect_disallowed_tools(
    catalog: list[Any], calls: Calls
) -> None:
    llm = ScriptedLLMClient(
        [fan_out(1, 2), fan_out(1, join=False), act(next_node=None, args={"answer": "done"})]
    )
    p = ReactPlanner(
        llm_client=llm,
        catalog=catalog,
        hop_budget=2,
        planning_hints={"disallow_nodes": ["merge"]},
    )
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    errors = [s["error"] for s in result.metadata["steps"]]
    assert errors[0].startswith("Hop budget exhausted")  # 2 branches + join > 2 hops
    assert errors[1] is None
    assert calls.names() == ["fetch"]

    llm = ScriptedLLMClient([fan_out(1, 2), act(next_node=None, args={"answer": "done"})])
    blocked = ReactPlanner(
        llm_client=llm, catalog=catalog, planning_hints={"disallow_nodes": ["merge"]}
    )
    result = await blocked.run("q")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][0]["error"] == (
        "tool 'merge' is not permitted by constraints. Choose an allowed tool or revise the plan."
    )


async def test_successful_branches_advance_the_ordering_hints(
    catalog: list[Any], calls: Calls
) -> None:
    # fetch, then merge: the plan's fetches count, so merge is next in order.
    llm = ScriptedLLMClient(
        [
            fan_out(1, 2, join=False),
            act(next_node="merge", args={"results": [], "expect": 0}),
            act(next_node=None, args={"answer": "done"}),
        ]
    )
    hints = {"ordering_hints": ["fetch", "merge"]}
    result = await ReactPlanner(llm_client=llm, catalog=catalog, planning_hints=hints).run("q")

    assert isinstance(result, PlannerFinish)
    assert [s["error"] for s in result.metadata["steps"]] == [None, None]
    assert calls.names() == ["fetch", "fetch", "merge"]

    # A plan whose branches all fail advances nothing: merge is still out of order.
    llm = ScriptedLLMClient(
        [
            fan_out(-1, join=False),
            act(next_node="merge", args={"results": [], "expect": 0}),
            act(next_node=None, args={"answer": "done"}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog, planning_hints=hints).run("q")

    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][1]["error"].startswith("Ordering hint reminder")


async def test_invalid_branches_fail_setup_with_every_error(
    catalog: list[Any], calls: Calls
) -> None:
    plan = [{"node": "nope", "args": {}}, {"node": "fetch", "args": {"shard": "x"}}]
    llm = ScriptedLLMClient([act(plan=plan), act(next_node=None, args={"answer": "done"})])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert isinstance(result, PlannerFinish)
    error = result.metadata["steps"][0]["error"]
    assert error.startswith("Parallel plan invalid: tool 'nope' is not in the catalog.")
    assert "args for tool 'fetch' did not validate" in error
    assert error.endswith("Revise the plan and retry.")
    assert calls.names() == []


async def test_a_finished_parallel_step_leaves_no_tasks_behind(catalog: list[Any]) -> None:
    before = set(asyncio.all_tasks())
    llm = ScriptedLLMClient([fan_out(*range(20)), act(next_node=None)])
    await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert set(asyncio.all_tasks()) - before == set()


async def test_cancelling_a_run_cancels_its_branches(calls: Calls) -> None:
    from pydantic import BaseModel

    from penguiflow import ModelRegistry, Node, build_catalog

    class A(BaseModel):
        n: int

    started = asyncio.Event()

    async def hang(args: A, ctx: Any) -> A:
        started.set()
        await asyncio.sleep(30)
        return args

    registry = ModelRegistry()
    registry.register("hang", A, A)
    catalog = build_catalog([Node(hang, name="hang")], registry)
    plan = [{"node": "hang", "args": {"n": i}} for i in range(5)]
    before = set(asyncio.all_tasks())
    run = asyncio.create_task(
        ReactPlanner(llm_client=ScriptedLLMClient([act(plan=plan)]), catalog=catalog).run("q")
    )
    await started.wait()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    assert set(asyncio.all_tasks()) - before - {asyncio.current_task()} == set()
