"""A small tool catalog shared by the planner tests: tools record every call they get."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from penguiflow import ModelRegistry, Node, build_catalog


class Question(BaseModel):
    text: str


class Intent(BaseModel):
    intent: str


class Documents(BaseModel):
    documents: list[str]


class Shard(BaseModel):
    shard: int


class Merged(BaseModel):
    results: list[dict[str, Any]]
    expect: int


class Summary(BaseModel):
    total: int


class Strict(BaseModel):
    code: str

    @field_validator("code")
    @classmethod
    def upper(cls, value: str) -> str:
        if not value.isupper():
            raise ValueError("code must be upper case")
        return value


class Calls:
    """What each tool received, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, BaseModel]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


def act(thought: str = "t", **fields: Any) -> str:
    """An LLM reply: a PlannerAction as JSON."""
    return json.dumps({"thought": thought, **fields})


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def catalog(calls: Calls) -> list[Any]:
    async def triage(args: Question, ctx: Any) -> Intent:
        calls.log.append(("triage", args))
        return Intent(intent="docs")

    async def retrieve(args: Intent, ctx: Any) -> Documents:
        calls.log.append(("retrieve", args))
        return Documents(documents=[f"about {args.intent}"])

    async def fetch(args: Shard, ctx: Any) -> Summary:
        calls.log.append(("fetch", args))
        if args.shard < 0:
            raise ValueError("negative shard")
        return Summary(total=args.shard * 10)

    async def merge(args: Merged, ctx: Any) -> Summary:
        calls.log.append(("merge", args))
        return Summary(total=sum(r["total"] for r in args.results))

    async def approve(args: Question, ctx: Any) -> Intent:
        calls.log.append(("approve", args))
        await ctx.pause("approval_required", {"text": args.text})
        raise AssertionError("pause() never returns")

    async def broken(args: Question, ctx: Any) -> Intent:
        calls.log.append(("broken", args))
        return {"wrong": "shape"}  # type: ignore[return-value]

    async def strict(args: Strict, ctx: Any) -> Intent:
        calls.log.append(("strict", args))
        return Intent(intent=args.code)

    registry = ModelRegistry()
    models = {
        "triage": (Question, Intent),
        "retrieve": (Intent, Documents),
        "fetch": (Shard, Summary),
        "merge": (Merged, Summary),
        "approve": (Question, Intent),
        "broken": (Question, Intent),
        "strict": (Strict, Intent),
    }
    functions = [triage, retrieve, fetch, merge, approve, broken, strict]
    for name, (in_model, out_model) in models.items():
        registry.register(name, in_model, out_model)
    nodes = [Node(f, name=f.__name__) for f in functions]
    return build_catalog(nodes, registry)
