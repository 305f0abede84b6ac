"""A parallel fan-out: the LLM asks three shards at once and a join merges them.

Run: `python examples/planner/parallel_fanout.py`
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class Shard(BaseModel):
    shard: int


class Count(BaseModel):
    count: int


class Counts(BaseModel):
    results: list[dict[str, Any]]  # filled by the planner with each branch's output
    expect: int  # filled with the number of branches


async def count_shard(args: Shard, ctx: Any) -> Count:
    await asyncio.sleep(0.05)  # the three branches overlap: ~0.05 s in total
    return Count(count=10 * (args.shard + 1))


async def total(args: Counts, ctx: Any) -> Count:
    return Count(count=sum(r["count"] for r in args.results))


async def main() -> None:
    registry = ModelRegistry()
    registry.register("count_shard", Shard, Count)
    registry.register("total", Counts, Count)
    nodes = [Node(count_shard, name="count_shard"), Node(total, name="total")]
    plan = [{"node": "count_shard", "args": {"shard": i}} for i in range(3)]
    llm = ScriptedLLMClient(
        [
            json.dumps({"thought": "count all shards", "plan": plan, "join": {"node": "total"}}),
            json.dumps({"thought": "done", "next_node": None}),  # payload: the last observation
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=build_catalog(nodes, registry))
    started = asyncio.get_running_loop().time()
    result = await planner.run("How many records are there?")
    elapsed = asyncio.get_running_loop().time() - started
    assert isinstance(result, PlannerFinish)
    branches = [b["observation"]["count"] for b in result.payload["branches"]]
    print(f"branches: {branches}")
    print(f"join total: {result.payload['join']['observation']['count']}")
    print(f"ran in parallel: {elapsed < 0.14}")


if __name__ == "__main__":
    asyncio.run(main())
