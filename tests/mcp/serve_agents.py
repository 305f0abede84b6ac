"""A planner and a flow for the MCP server tests, built the way a user builds them.

The planner's LLM is a `ScriptedLLMClient` whose replies follow the conversation, so
one planner answers any number of calls. The client streams (in pieces of
`CHUNK_CHARS` characters), so the planner emits each final answer as it is written,
as `llm_stream_chunk` events:

* a query with "weather" calls `get_weather`, then answers with what it said;
* "book" calls `request_booking`, which pauses for approval; once resumed it calls
  `confirm_booking` and answers with the booking;
* "forever" never finishes (the run ends with `no_path`), "explode" fails the LLM call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from penguiflow import Node, ReactPlanner, create
from penguiflow.core import PenguiFlow
from penguiflow.testkit import ScriptedLLMClient

CHUNK_CHARS = 8


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    summary: str


class Booking(BaseModel):
    city: str


class Confirmation(BaseModel):
    reference: str


async def get_weather(args: City, ctx: Any) -> Weather:
    """The weather in a city, in the units of the run's context (default C)."""
    units = ctx.meta.get("units", "C")
    return Weather(city=args.city, summary=f"Sunny in {args.city}, 24 {units}")


async def request_booking(args: Booking, ctx: Any) -> Confirmation:
    """Ask a human to approve a booking."""
    await ctx.pause("approval_required", {"city": args.city})
    raise AssertionError("pause() never returns")


async def confirm_booking(args: Booking, ctx: Any) -> Confirmation:
    """Book a trip once approved."""
    return Confirmation(reference=f"PF-{args.city[:3].upper()}-1")


def _act(next_node: str | None, args: Mapping[str, Any]) -> str:
    return json.dumps({"thought": f"next: {next_node}", "next_node": next_node, "args": args})


def build_planner(*, delay_s: float = 0.0) -> ReactPlanner:
    """A planner over `get_weather`, `request_booking` and `confirm_booking`; each LLM
    call takes `delay_s`."""

    def reply(messages: Sequence[Mapping[str, str]]) -> Any:
        query = messages[1]["content"]
        acted = sum(1 for m in messages if m["role"] == "assistant")
        last = messages[-1]["content"]
        if "explode" in query:
            return RuntimeError("the provider is down")
        if "forever" in query:
            return _act("get_weather", {"city": "Lisbon"})
        if "book" in query:
            if "Resume input" in last:
                return _act("confirm_booking", {"city": "Lisbon"})
            if acted == 0:
                return _act("request_booking", {"city": "Lisbon"})
            reference = json.loads(last)["observation"]["reference"]
            return _act(None, {"answer": f"booked: {reference}"})
        if acted == 0:
            return _act("get_weather", {"city": "Lisbon"})
        return _act(None, {"answer": json.loads(last)["observation"]["summary"]})

    return ReactPlanner(
        llm_client=ScriptedLLMClient(default=reply, chunk_chars=CHUNK_CHARS, delay_s=delay_s),
        nodes=[
            Node(get_weather, name="get_weather"),
            Node(request_booking, name="request_booking"),
            Node(confirm_booking, name="confirm_booking"),
        ],
        max_iters=3,
    )


class Ticket(BaseModel):
    """A support ticket."""

    customer: str
    text: str
    priority: int = Field(default=1, ge=1, le=5)


class Routed(BaseModel):
    customer: str
    team: str


class Answer(BaseModel):
    customer: str
    reply: str


async def triage(ticket: Ticket, ctx: Any) -> Routed:
    """Route a support ticket and answer it."""
    team = "billing" if "invoice" in ticket.text else "support"
    return Routed(customer=ticket.customer, team=team)


async def respond(routed: Routed, ctx: Any) -> Answer:
    return Answer(customer=routed.customer, reply=f"{routed.team} will write to you")


def build_flow() -> PenguiFlow:
    """Two typed nodes: `triage` (the entry, taking a `Ticket`) then `respond`."""
    triage_node = Node(triage, name="triage")
    respond_node = Node(respond, name="respond")
    return create(triage_node.to(respond_node), respond_node.to())


def not_servable() -> int:
    """A factory of something that is neither a planner nor a flow."""
    return 42


def build_two_entry_flow() -> PenguiFlow:
    """A flow with two entry nodes: it has no single input to serve."""
    return create(Node(triage, name="triage").to(), Node(respond, name="respond").to())


def build_chatty_planner() -> ReactPlanner:
    """`build_planner()`, saying so on stdout (which, on stdio, is the protocol's)."""
    print("building the planner")
    return build_planner()
