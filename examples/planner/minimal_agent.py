"""A minimal planner agent: one typed tool, a scripted LLM, a final answer.

Run: `python examples/planner/minimal_agent.py`
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class CityQuery(BaseModel):
    city: str


class Population(BaseModel):
    city: str
    millions: float


@tool(desc="Population of a city, in millions.", side_effects="read")
async def population(args: CityQuery, ctx: Any) -> Population:
    return Population(city=args.city, millions={"Lisbon": 0.55, "Tokyo": 14.0}[args.city])


async def main() -> None:
    registry = ModelRegistry()
    registry.register("population", CityQuery, Population)
    catalog = build_catalog([Node(population, name="population")], registry)
    llm = ScriptedLLMClient(
        [
            json.dumps(
                {"thought": "look it up", "next_node": "population", "args": {"city": "Tokyo"}}
            ),
            json.dumps({"thought": "answer", "next_node": None, "args": {"answer": "14 million"}}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run(
        "How many people live in Tokyo?"
    )
    assert isinstance(result, PlannerFinish)
    steps = result.metadata["step_count"]
    print(f"{result.reason}: {result.payload['answer']} after {steps} tool call")


if __name__ == "__main__":
    asyncio.run(main())
