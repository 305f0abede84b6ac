"""penguiflow demo: a ReactPlanner agent that plans a trip, offline.

The agent looks up the traveller (a sequential tool call), checks the weather in three
cities at once and picks one (a parallel fan-out with a join), then asks a human to
approve the booking (a pause). The pause is stored in the default state store (the
SQLite file `.penguiflow/state.db`, or `PENGUIFLOW_STORE`), and a second process
resumes it from there once approved, and books. Every step, LLM call, tool call and
the pause are recorded in the same store: the demo ends with the command that shows
the run in a browser (`penguiflow trace view <run id>`).

Offline by default: the LLM is `ScriptedLLMClient`, which replays the replies a model
would give. Set `PENGUIFLOW_DEMO_MODEL` to a LiteLLM model name (for example
`openai/gpt-4o-mini`, with its API key in the usual environment variable; needs
`pip install 'penguiflow[planner]'`) to let a real model drive the same tools.
Run it with `make demo` or `python examples/demo.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.errors import MissingExtraError
from penguiflow.planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner.clients import LLMError, LLMReply
from penguiflow.state import open_store, store_url
from penguiflow.testkit import ScriptedLLMClient
from penguiflow.tracing import Recorder

STORE = store_url()  # $PENGUIFLOW_STORE, else .penguiflow/state.db


def penguiflow_command() -> str:
    """How to call the `penguiflow` command that belongs to this Python (copy-pastable)."""
    script = os.path.join(os.path.dirname(sys.executable), "penguiflow")
    if shutil.which("penguiflow") == script or not os.path.exists(script):
        return "penguiflow"
    return os.path.relpath(script)


# -- tools -----------------------------------------------------------------------------


class TravellerQuery(BaseModel):
    name: str


class Traveller(BaseModel):
    name: str
    home: str
    likes: str


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    sunny_days: int


class Shortlist(BaseModel):
    results: list[dict[str, Any]]  # filled in by the planner with the branch outputs


class Choice(BaseModel):
    city: str
    reason: str


class Booking(BaseModel):
    traveller: str
    city: str


class Confirmation(BaseModel):
    reference: str


WEATHER = {"Lisbon": 9, "Oslo": 3, "Rome": 7}


@tool(desc="Look up a traveller's profile by name.", side_effects="read")
async def lookup_traveller(args: TravellerQuery, ctx: Any) -> Traveller:
    return Traveller(name=args.name, home="Berlin", likes="sunshine")


@tool(desc="Sunny days expected next week in a city.", side_effects="read", tags=["weather"])
async def check_weather(args: City, ctx: Any) -> Weather:
    await asyncio.sleep(0.05)  # three of these run at the same time
    return Weather(city=args.city, sunny_days=WEATHER.get(args.city, 0))


@tool(desc="Pick the sunniest city from the weather results.")
async def pick_city(args: Shortlist, ctx: Any) -> Choice:
    best = max(args.results, key=lambda w: w["sunny_days"])
    return Choice(city=best["city"], reason=f"{best['sunny_days']} sunny days")


@tool(desc="Ask a human to approve a booking; the run pauses until they answer.")
async def request_booking(args: Booking, ctx: Any) -> Confirmation:
    await ctx.pause("approval_required", {"traveller": args.traveller, "city": args.city})
    raise AssertionError("unreachable: pause() always suspends the run")


@tool(desc="Confirm a booking a human approved.", side_effects="write")
async def confirm_booking(args: Booking, ctx: Any) -> Confirmation:
    return Confirmation(reference=f"PF-{args.city[:3].upper()}-0001")


def build_planner(llm_client: Any | None, model: str | None, store: Any) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("lookup_traveller", TravellerQuery, Traveller)
    registry.register("check_weather", City, Weather)
    registry.register("pick_city", Shortlist, Choice)
    registry.register("request_booking", Booking, Confirmation)
    registry.register("confirm_booking", Booking, Confirmation)
    functions = (lookup_traveller, check_weather, pick_city, request_booking, confirm_booking)
    nodes = [Node(f, name=f.__name__) for f in functions]
    return ReactPlanner(
        llm=model,
        llm_client=llm_client,
        catalog=build_catalog(nodes, registry),
        max_iters=10,
        event_callback=print_event,
        planning_hints={"max_parallel": 3},
        state_store=store,
    )


# -- the scripted model ----------------------------------------------------------------


def act(thought: str, **fields: Any) -> Callable[[Sequence[Mapping[str, str]]], LLMReply]:
    """A scripted reply, with the token counts a model would report for it."""
    text = json.dumps({"thought": thought, **fields})

    def reply(messages: Sequence[Mapping[str, str]]) -> LLMReply:
        prompt = sum(len(m["content"]) for m in messages) // 4  # about 4 characters a token
        return LLMReply(
            text, prompt_tokens=prompt, completion_tokens=len(text) // 4, model="gpt-4o-mini"
        )

    return reply


def scripted_llm(after_pause: bool) -> ScriptedLLMClient:
    """What a model would reply before the pause (first process) or after it (second)."""
    if after_pause:
        return ScriptedLLMClient(
            [
                act(
                    "Approved: confirm the booking.",
                    next_node="confirm_booking",
                    args={"traveller": "Ada", "city": "Lisbon"},
                ),
                act(
                    "Done.",
                    next_node=None,
                    args={"answer": "Ada flies to Lisbon (9 sunny days). Booking PF-LIS-0001."},
                ),
            ]
        )
    return ScriptedLLMClient(
        [
            act("Who is travelling?", next_node="lookup_traveller", args={"name": "Ada"}),
            act(
                "Ada likes sunshine: compare three cities at once, then pick one.",
                plan=[{"node": "check_weather", "args": {"city": c}} for c in WEATHER],
                join={"node": "pick_city", "args": {}},
            ),
            act(
                "Lisbon it is. Booking needs approval.",
                next_node="request_booking",
                args={"traveller": "Ada", "city": "Lisbon"},
            ),
        ]
    )


# -- output ----------------------------------------------------------------------------


def print_event(event: PlannerEvent) -> None:
    detail = event.node_name or event.thought or ""
    extra = f" {dict(event.extra)}" if event.extra else ""
    print(f"    event {event.event_type:<15} step={event.trajectory_step} {detail}{extra}")


def print_trajectory(steps: list[dict[str, Any]]) -> None:
    print("\nTrajectory:")
    for number, step in enumerate(steps):
        action = step["action"]
        target = action["next_node"] or (
            "parallel: " + ", ".join(p["node"] for p in action["plan"]) if action["plan"] else "-"
        )
        print(f"  {number}. {action['thought']}")
        print(f"     -> {target}")
        observation = step["observation"]
        if isinstance(observation, dict) and "branches" in observation:
            for branch in observation["branches"]:
                print(f"     <- {branch['node']}: {json.dumps(branch.get('observation'))}")
            join = observation.get("join", {})
            print(f"     <- join {join.get('node')}: {json.dumps(join.get('observation'))}")
            continue
        outcome = step["error"] or json.dumps(observation, ensure_ascii=False)
        print(f"     <- {outcome}")


def print_recorded(result: PlannerFinish) -> None:
    usage = result.metadata["usage"]
    run_id = result.metadata["run_id"]
    print(
        f"\nUsage: {usage['llm_calls']} LLM calls, {usage['tool_calls']} tool calls, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, "
        f"${usage['cost_usd']:.4f}, {usage['wall_ms']:.0f} ms"
    )
    print(f"Recorded run {run_id} in {STORE}. See it with:")
    command = penguiflow_command()
    print(f"  {command} trace view {run_id}    (a self-contained HTML page)")
    print(f"  {command} trace show {run_id}    (the span tree in the terminal)")
    print(f"  {command} trace list    (every recorded run)")


async def first_process(model: str | None) -> str | None:
    """Run until the pause; return its resume token (None if the run finished)."""
    store = open_store(STORE)
    planner = build_planner(None if model else scripted_llm(after_pause=False), model, store)
    print(f"LLM: {model or 'scripted (offline)'}\n")
    print("Run: plan a sunny trip for Ada")
    async with Recorder(store) as recorder:
        recorder.attach(planner)
        result = await planner.run("Plan a sunny trip for Ada next week.")
    await store.close()
    if isinstance(result, PlannerFinish):  # a real model may finish without asking
        print_trajectory(result.metadata.get("steps", []))
        print(f"\nFinished ({result.reason}): {result.payload}")
        print_recorded(result)
        return None
    print(f"\nPaused for {result.reason}: {result.payload}")
    print(f"  stored in {STORE}; resume token {result.resume_token[:8]}...")
    print("  a human approves -> a second process resumes the run\n", flush=True)
    return result.resume_token


async def second_process(token: str, model: str | None) -> None:
    store = open_store(STORE)
    planner = build_planner(None if model else scripted_llm(after_pause=True), model, store)
    print(f"[pid {os.getpid()}] resuming from {STORE}")
    async with Recorder(store) as recorder:
        recorder.attach(planner)
        result = await planner.resume(token, user_input="approved")
        while isinstance(result, PlannerPause):  # a real model may ask again
            result = await planner.resume(result.resume_token, user_input="approved")
    await store.close()
    print_trajectory(result.metadata.get("steps", []))
    print(f"\nFinished ({result.reason}): {result.payload}")
    print_recorded(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resume", metavar="TOKEN", help="resume a stored pause (internal)")
    args = parser.parse_args()
    model = os.environ.get("PENGUIFLOW_DEMO_MODEL")
    try:
        if args.resume:
            asyncio.run(second_process(args.resume, model))
            return
        token = asyncio.run(first_process(model))
    except (LLMError, MissingExtraError) as exc:
        # A missing API key, an unreachable model server, a missing extra: one line.
        raise SystemExit(f"demo: {exc}") from None
    if token is None:
        return
    resumed = subprocess.run([sys.executable, __file__, "--resume", token], check=False)
    if resumed.returncode != 0:
        raise SystemExit(f"the resuming process failed with exit code {resumed.returncode}")


if __name__ == "__main__":
    main()
