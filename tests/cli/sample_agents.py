"""Agents and flows for the command-line tests, built the way a user would build them.

The planner's LLM is a `ScriptedLLMClient` whose replies follow the conversation, so
the same factory serves a fresh run and a resume in another process:

* a query with "add" calls the `add` tool, then answers with its total;
* a query with "approve" calls `approve`, which pauses for a human; after the
  resume input it answers with that input;
* a query with "broken" calls a tool that fails, then gives up.

Its pauses are kept in the store `PENGUIFLOW_STORE` names (as the `penguiflow resume`
help asks), so a pause in one process can be resumed in another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, ReactPlanner, build_catalog, create
from penguiflow.state import open_store, store_url
from penguiflow.testkit import ScriptedLLMClient


class Numbers(BaseModel):
    a: int
    b: int


class Total(BaseModel):
    total: int


class Request(BaseModel):
    text: str


class Approval(BaseModel):
    approved: bool


async def add(args: Numbers, ctx: Any) -> Total:
    return Total(total=args.a + args.b)


async def approve(args: Request, ctx: Any) -> Approval:
    await ctx.pause("approval_required", {"text": args.text})
    raise AssertionError("pause() never returns")


async def broken(args: Request, ctx: Any) -> Approval:
    raise ValueError("the tool is broken")


def _act(thought: str, next_node: str | None, args: Mapping[str, Any]) -> str:
    return json.dumps({"thought": thought, "next_node": next_node, "args": dict(args)})


def _reply(messages: Sequence[Mapping[str, str]]) -> str:
    query = messages[1]["content"]
    acted = sum(1 for message in messages if message["role"] == "assistant")
    last = messages[-1]["content"]
    if "Resume input" in last:
        return _act("the human answered", None, {"answer": last.split(":", 1)[1].strip()})
    if acted:
        return _act("done", None, {"answer": last})
    if "approve" in query:
        return _act("ask a human", "approve", {"text": "ship it?"})
    if "broken" in query:
        return _act("try the broken tool", "broken", {"text": "x"})
    return _act("add the numbers", "add", {"a": 2, "b": 3})


def build_planner() -> ReactPlanner:
    """A planner over `add`, `approve` and `broken`, pausing into `$PENGUIFLOW_STORE`."""
    registry = ModelRegistry()
    registry.register("add", Numbers, Total)
    registry.register("approve", Request, Approval)
    registry.register("broken", Request, Approval)
    nodes = [Node(add, name="add"), Node(approve, name="approve"), Node(broken, name="broken")]
    store = open_store(store_url())
    return ReactPlanner(
        llm_client=ScriptedLLMClient(default=_reply),
        catalog=build_catalog(nodes, registry),
        state_store=store,
        max_iters=3,
    )


async def build_planner_async() -> ReactPlanner:
    """The same planner from an async factory."""
    return build_planner()


def needs_arguments(name: str) -> ReactPlanner:
    """Not a factory the command line can call."""
    raise AssertionError(name)


def build_flow() -> Any:
    """A two-node flow for `penguiflow viz`."""

    async def fetch(message: Any, ctx: Any) -> Any:
        return message

    async def answer(message: Any, ctx: Any) -> Any:
        return message

    fetch_node = Node(fetch, name="fetch")
    answer_node = Node(answer, name="answer")
    return create(fetch_node.to(answer_node))


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app for `penguiflow serve`."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


NOT_A_PLANNER = 42
