"""Re-planning after a tool failure: the LLM reads the error and tries another tool.

Run: `python examples/planner/replan_after_failure.py`
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class Query(BaseModel):
    q: str


class Answer(BaseModel):
    text: str


class SearchDown(RuntimeError):
    suggestion = "use the cached index"


async def live_search(args: Query, ctx: Any) -> Answer:
    raise SearchDown("search backend unavailable")


async def cached_search(args: Query, ctx: Any) -> Answer:
    return Answer(text=f"cached result for {args.q!r}")


def replan(messages: Any) -> str:
    """The scripted LLM reads the failure the planner sent back and switches tools."""
    last = json.loads(messages[-1]["content"])
    assert last["failure"]["suggestion"] == "use the cached index"
    return json.dumps(
        {"thought": "fall back", "next_node": "cached_search", "args": {"q": "penguins"}}
    )


async def main() -> None:
    registry = ModelRegistry()
    registry.register("live_search", Query, Answer)
    registry.register("cached_search", Query, Answer)
    nodes = [Node(live_search, name="live_search"), Node(cached_search, name="cached_search")]
    llm = ScriptedLLMClient(
        [
            json.dumps(
                {"thought": "search", "next_node": "live_search", "args": {"q": "penguins"}}
            ),
            replan,
            json.dumps({"thought": "done", "next_node": None}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=build_catalog(nodes, registry)).run(
        "penguins?"
    )
    assert isinstance(result, PlannerFinish)
    for step in result.metadata["steps"]:
        print(f"{step['action']['next_node']}: {step['error'] or step['observation']}")
    print(f"answer: {result.payload['text']}")


if __name__ == "__main__":
    asyncio.run(main())
