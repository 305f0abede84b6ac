"""Pause for a human's approval, persist the pause, resume it later.

The state store here is a dict; any object with `save_planner_state` and
`load_planner_state` works (sync or async).
Run: `python examples/planner/pause_resume.py`
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class Refund(BaseModel):
    order: str
    amount: float


class Receipt(BaseModel):
    order: str
    status: str


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        self.data[token] = json.loads(json.dumps(payload))  # as a real store would keep it

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        return self.data.get(token)


async def request_refund(args: Refund, ctx: Any) -> Receipt:
    if args.amount > 100:
        await ctx.pause("approval_required", {"order": args.order, "amount": args.amount})
    return Receipt(order=args.order, status="refunded")


async def issue_refund(args: Refund, ctx: Any) -> Receipt:
    return Receipt(order=args.order, status="refunded")


def make_planner(store: MemoryStore, replies: list[str]) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("request_refund", Refund, Receipt)
    registry.register("issue_refund", Refund, Receipt)
    nodes = [Node(request_refund, name="request_refund"), Node(issue_refund, name="issue_refund")]
    return ReactPlanner(
        llm_client=ScriptedLLMClient(replies),
        catalog=build_catalog(nodes, registry),
        state_store=store,
    )


async def main() -> None:
    store = MemoryStore()
    refund = {"order": "A-17", "amount": 250.0}
    first = make_planner(
        store, [json.dumps({"thought": "refund", "next_node": "request_refund", "args": refund})]
    )
    paused = await first.run("Refund order A-17")
    assert isinstance(paused, PlannerPause)
    print(f"paused: {paused.reason} {paused.payload}")

    # Later, maybe in another process: a new planner resumes from the store.
    second = make_planner(
        store,
        [
            json.dumps({"thought": "approved", "next_node": "issue_refund", "args": refund}),
            json.dumps({"thought": "done", "next_node": None}),
        ],
    )
    result = await second.resume(paused.resume_token, user_input="approved by Grace")
    assert isinstance(result, PlannerFinish)
    print(f"resumed: {result.reason} {result.payload}")


if __name__ == "__main__":
    asyncio.run(main())
