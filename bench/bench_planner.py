"""ReactPlanner overhead with an in-process client that answers instantly.

Figures (each against a floor measured in the same run):

* per-step cost with a 10-tool catalog, and the cost of steps 17-19 of a 20-step run
  against steps 2-4 (target <= 1.3x: history must not be re-serialised each step);
  floor: the same tool call done by hand (validate args, call, validate output);
* `ReactPlanner(...)` construction with a 10-tool catalog after the first (target
  <= 100 us); floor: validating one small pydantic model, as a machine-speed gauge;
* 1,000 concurrent `run()`s with a client that sleeps 10 ms per call (3 calls per
  run): wall time against the same sleeps in 1,000 bare asyncio tasks (target
  <= 1.1x), and peak RSS per concurrent run (target <= 15 KB);
* the parallel step of a plan of K=8 and of K=50 calls plus a join, per branch: from
  the LLM reply holding the plan to the next LLM call (the client stamps both),
  against doing the same work by hand: validate each branch's arguments,
  `asyncio.gather` the K tool calls, validate and dump each output, call the join
  (target <= 1.3x). The catalog's tools return without awaiting anything, which lets
  the planner run such branches without a task each; a third row reports K=50 with
  tools that await (every branch then needs a task).
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from _common import Result, interleave_async, run_cli
from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog
from penguiflow.planner import PlannerAction, ReactPlanner

TOOLS = 10


class Args(BaseModel):
    value: int


class Out(BaseModel):
    value: int


def make_catalog(*, awaiting: bool = False) -> list[Any]:
    """`TOOLS` tools adding one to a value; with `awaiting`, each first yields to the loop."""
    registry = ModelRegistry()
    nodes = []
    for i in range(TOOLS):
        if awaiting:

            async def work(args: Args, ctx: Any) -> Out:
                await asyncio.sleep(0)
                return Out(value=args.value + 1)

        else:

            async def work(args: Args, ctx: Any) -> Out:
                return Out(value=args.value + 1)

        name = f"tool_{i}"
        work.__doc__ = f"Adds one to the value (tool number {i})."
        nodes.append(Node(work, name=name, policy=NodePolicy(validate="none")))
        registry.register(name, Args, Out)
    return build_catalog(nodes, registry)


def call(i: int, value: int) -> str:
    return json.dumps(
        {"thought": f"step {i}", "next_node": f"tool_{i % TOOLS}", "args": {"value": value}}
    )


FINISH = json.dumps({"thought": "done", "next_node": None, "args": {"answer": "ok"}})


class TimedClient:
    """Answers a scripted 20-step run instantly and records when each call starts."""

    def __init__(self, steps: int) -> None:
        self.replies = [call(i, i) for i in range(steps - 1)] + [FINISH]
        self.stamps: list[float] = []

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.stamps.append(time.perf_counter())
        return self.replies[len(self.stamps) - 1]


class SleepyClient:
    """Two tool calls then finish, sleeping `delay` per call (replies built beforehand)."""

    REPLIES = (call(1, 1), call(2, 2), FINISH)

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.REPLIES[min(self.calls, 3) - 1]


def plan_reply(width: int) -> str:
    """A parallel plan of `width` calls over the catalog, joined by `tool_0`."""
    plan = [{"node": f"tool_{i % TOOLS}", "args": {"value": i}} for i in range(width)]
    join = {"node": "tool_0", "args": {"value": 0}}
    return json.dumps({"thought": "fan out", "plan": plan, "join": join})


class ParallelClient:
    """Answers a plan then a finish, stamping when the plan leaves and the next call comes."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0
        self.plan_sent = 0.0
        self.next_call = 0.0

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.calls += 1
        if self.calls == 1:
            self.plan_sent = time.perf_counter()
            return self.reply
        self.next_call = time.perf_counter()
        return FINISH


async def step_costs(catalog: list[Any], runs: int) -> tuple[float, float, float]:
    """Median µs/step over the whole run, over steps 2-4 and over steps 17-19."""
    per_step, early, late = [], [], []
    for _ in range(runs):
        client = TimedClient(20)
        planner = ReactPlanner(llm_client=client, catalog=catalog, max_iters=25)
        await planner.run("count to twenty")
        gaps = [b - a for a, b in zip(client.stamps, client.stamps[1:])]
        per_step.append(statistics.median(gaps))
        early.append(statistics.mean(gaps[2:5]))
        late.append(statistics.mean(gaps[17:20] if len(gaps) >= 20 else gaps[-3:]))
    return (
        statistics.median(per_step) * 1e6,
        statistics.median(early) * 1e6,
        statistics.median(late) * 1e6,
    )


async def manual_tool_call(catalog: list[Any], runs: int) -> float:
    """The floor: parse the action JSON, validate args, call the tool, validate output."""
    spec = catalog[0]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for i in range(20):
            action = json.loads(call(i, i))
            args = spec.args_model.model_validate(action["args"])
            out = await spec.node.func(args, None)
            spec.out_model.model_validate(out).model_dump(mode="json")
        samples.append((time.perf_counter() - start) / 20)
    return statistics.median(samples) * 1e6


def construction_us(catalog: list[Any], repeats: int) -> tuple[float, float]:
    client = TimedClient(2)
    ReactPlanner(llm_client=client, catalog=catalog)  # the first one may fill caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        ReactPlanner(llm_client=client, catalog=catalog)
        samples.append(time.perf_counter() - start)
    gauge = []
    for _ in range(repeats):
        start = time.perf_counter()
        Args.model_validate({"value": 1})
        gauge.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6, statistics.median(gauge) * 1e6


async def concurrent_runs(catalog: list[Any], count: int, delay: float) -> float:
    """Wall time of `count` concurrent runs (planners built beforehand)."""
    planners = [
        ReactPlanner(llm_client=SleepyClient(delay), catalog=catalog, max_iters=8)
        for _ in range(count)
    ]
    gc.collect()
    start = time.perf_counter()
    results = await asyncio.gather(*(p.run(f"query {i}") for i, p in enumerate(planners)))
    wall = time.perf_counter() - start
    assert all(getattr(r, "reason", None) == "answer_complete" for r in results), results[:1]
    return wall


async def bare_sleeps(count: int, delay: float) -> float:
    """The floor: the same waits without a planner, `count` tasks sleeping 3 x `delay`."""

    async def one() -> None:
        for _ in range(3):
            await asyncio.sleep(delay)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start


async def spec_work_by_hand(catalog: list[Any], count: int, delay: float) -> float:
    """The same sleeps in `count` tasks, plus the work the planner's specification asks
    of every run, written plainly: parse each reply into a `PlannerAction`, validate the
    arguments, call the tool, validate and dump its output, serialise the new step's
    messages (sorted-key JSON), and dump the history at the finish. A bound: no planner
    doing that work can be faster than this by much."""
    by_name = {spec.name: spec for spec in catalog}

    async def one(query: str) -> None:
        json.dumps({"query": query}, ensure_ascii=False, sort_keys=True)
        history = []
        for reply in SleepyClient.REPLIES:
            await asyncio.sleep(delay)
            action = PlannerAction.model_validate_json(reply)
            if action.next_node is None:
                for step_action, output in history:
                    step_action.model_dump(mode="json")
                    output.model_dump(mode="json")
                return
            spec = by_name[action.next_node]
            args = spec.args_model.model_validate(action.args)
            output = spec.out_model.model_validate(await spec.node.func(args, None))
            dumped = output.model_dump(mode="json")
            json.dumps(action.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
            json.dumps({"observation": dumped}, ensure_ascii=False, sort_keys=True)
            history.append((action, output))

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(one(f"query {i}") for i in range(count)))
    return time.perf_counter() - start


async def concurrency_rounds(
    catalog: list[Any], count: int, delay: float, repeats: int
) -> dict[str, list[float]]:
    """Planner runs, the spec'd work by hand and bare sleeps, measured in turn each round
    (the order rotates), so a burst of load from a neighbour hits all three alike."""
    sides = {
        "planner": lambda: concurrent_runs(catalog, count, delay),
        "by_hand": lambda: spec_work_by_hand(catalog, count, delay),
        "bare": lambda: bare_sleeps(count, delay),
    }
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up
        gc.collect()
        await sides[name]()
    for round_no in range(repeats):
        for name in names[round_no % 3 :] + names[: round_no % 3]:
            gc.collect()
            samples[name].append(await sides[name]())
    return samples


async def memory_per_run(catalog: list[Any], count: int, delay: float) -> tuple[float, float]:
    """Peak memory per concurrent run, in KB: (Python allocations, process RSS growth).

    Planners are built inside the measured window (they are per-run state). RSS is
    read while every run is waiting on its LLM, i.e. with all runs alive at once.
    """
    gc.collect()
    rss_before = current_rss_kb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    rss_during: list[float] = []

    class Probe(SleepyClient):
        async def complete(self, **kwargs: Any) -> str:
            if self.calls == 1 and not rss_during and probe_state["waiting"] == count - 1:
                rss_during.append(current_rss_kb())
            probe_state["waiting"] += self.calls == 1
            return await super().complete(**kwargs)

    probe_state = {"waiting": 0}
    planners = [
        ReactPlanner(llm_client=Probe(delay), catalog=catalog, max_iters=8) for _ in range(count)
    ]
    await asyncio.gather(*(p.run(f"query {i}") for i, p in enumerate(planners)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    traced_kb = max(peak - base, 0) / 1024 / count
    rss_kb = max((rss_during[0] if rss_during else current_rss_kb()) - rss_before, 0.0) / count
    return traced_kb, rss_kb


def current_rss_kb() -> float:
    """Resident set size now, in KB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 1024
    except OSError:
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def parallel_steps(catalog: list[Any], width: int, runs: int) -> float:
    """Seconds spent in the parallel step of `runs` plans of `width` calls plus a join."""
    reply = plan_reply(width)
    total = 0.0
    for _ in range(runs):
        client = ParallelClient(reply)
        planner = ReactPlanner(
            llm_client=client,
            catalog=catalog,
            absolute_max_parallel=width,
            planning_hints={"max_parallel": width},
        )
        result = await planner.run("fan out")
        assert getattr(result, "reason", None) == "answer_complete", result
        total += client.next_call - client.plan_sent
    return total


async def parallel_by_hand(catalog: list[Any], width: int, runs: int) -> float:
    """The floor: validate the args, gather the tool calls, validate/dump, call the join."""
    calls = [(catalog[i % TOOLS], {"value": i}) for i in range(width)]
    join = catalog[0]
    start = time.perf_counter()
    for _ in range(runs):
        args = [spec.args_model.model_validate(raw) for spec, raw in calls]
        outs = await asyncio.gather(
            *(spec.node.func(a, None) for (spec, _), a in zip(calls, args, strict=True))
        )
        results = [
            spec.out_model.model_validate(out).model_dump(mode="json")
            for (spec, _), out in zip(calls, outs, strict=True)
        ]
        joined = await join.node.func(join.args_model.model_validate({"value": len(results)}), None)
        join.out_model.model_validate(joined).model_dump(mode="json")
    return time.perf_counter() - start


async def parallel_spec_work_by_hand(catalog: list[Any], width: int, runs: int) -> float:
    """The floor plus what the planner's specification asks of a parallel step beyond
    it, written plainly with the standard library: parse the reply into a
    `PlannerAction`, and write the step into the next request as its specified pair of
    messages (the action's JSON-mode dump and the observation, each as compact JSON:
    `json.dumps(..., ensure_ascii=False, sort_keys=True)`). What that work costs done
    the obvious way; the planner does the same work with encoders built once and
    fewer copies, and comes out about a fifth below it."""
    reply = plan_reply(width)
    by_name = {spec.name: spec for spec in catalog}
    join = catalog[0]
    start = time.perf_counter()
    for _ in range(runs):
        action = PlannerAction.model_validate_json(reply)
        plan = action.plan or []
        calls = [(by_name[item.node], item.args) for item in plan]
        args = [spec.args_model.model_validate(raw) for spec, raw in calls]
        outs = await asyncio.gather(
            *(spec.node.func(a, None) for (spec, _), a in zip(calls, args, strict=True))
        )
        branches = [
            {
                "node": spec.name,
                "args": a.model_dump(mode="json"),
                "observation": spec.out_model.model_validate(out).model_dump(mode="json"),
            }
            for (spec, _), a, out in zip(calls, args, outs, strict=True)
        ]
        joined = await join.node.func(join.args_model.model_validate({"value": len(plan)}), None)
        observation = {
            "branches": branches,
            "stats": {"success": len(branches), "failed": 0},
            "join": {
                "node": join.name,
                "observation": join.out_model.model_validate(joined).model_dump(mode="json"),
            },
        }
        json.dumps(action.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
        json.dumps({"observation": observation}, ensure_ascii=False, sort_keys=True)
    return time.perf_counter() - start


async def parallel_branch_us(
    catalog: list[Any], width: int, runs: int, repeats: int
) -> tuple[float, float, float, float, float]:
    """µs per branch of the planner's parallel step and of the floor, their ratio, and
    µs per branch of the spec'd work by hand (the bound) with its ratio to the floor."""
    paired = await interleave_async(
        lambda: parallel_steps(catalog, width, runs),
        lambda: parallel_by_hand(catalog, width, runs),
        repeats=repeats,
    )
    bound = await interleave_async(
        lambda: parallel_spec_work_by_hand(catalog, width, runs),
        lambda: parallel_by_hand(catalog, width, runs),
        repeats=repeats,
    )
    per_branch = 1e6 / (runs * width)
    return (
        paired.subject_median * per_branch,
        paired.floor_median * per_branch,
        paired.ratio,
        bound.subject_median * per_branch,
        bound.ratio,
    )


async def _measure(quick: bool) -> list[Result]:
    catalog = make_catalog()
    runs = 3 if quick else 30
    step_us, early_us, late_us = await step_costs(catalog, runs)
    floor_us = await manual_tool_call(catalog, runs)
    build_us, gauge_us = construction_us(catalog, 20 if quick else 2000)
    count = 50 if quick else 1000
    delay = 0.01
    rounds = await concurrency_rounds(catalog, count, delay, 1 if quick else 9)
    wall, hand, bare = (statistics.median(rounds[k]) for k in ("planner", "by_hand", "bare"))

    def ratio_of(subject: str, floor: str) -> float:
        return statistics.median(s / f for s, f in zip(rounds[subject], rounds[floor]))

    concurrent_ratio = ratio_of("planner", "bare")
    traced_kb, rss_kb = await memory_per_run(catalog, count, delay)
    per_run_kb = max(traced_kb, rss_kb)
    repeats = 1 if quick else 15
    parallel = {
        width: await parallel_branch_us(catalog, width, 1 if quick else 400 // width, repeats)
        for width in (8, 50)
    }
    awaiting = await parallel_branch_us(make_catalog(awaiting=True), 50, 2 if quick else 8, repeats)
    growth = late_us / early_us if early_us else float("nan")
    results = [
        Result(
            name="planner step (10 tools)",
            subject=step_us,
            floor=floor_us,
            unit="us",
            ratio=step_us / floor_us,
            target="report",
            met=None,
            note="median µs per step of a 20-step run; floor: the same tool call by hand",
        ),
        Result(
            name="steps 17-19 vs 2-4",
            subject=late_us,
            floor=early_us,
            unit="us",
            ratio=growth,
            target="<=1.3x",
            met=growth <= 1.3,
            note="cost of late steps against early ones in the same 20-step runs",
        ),
        Result(
            name="ReactPlanner() construction",
            subject=build_us,
            floor=gauge_us,
            unit="us",
            ratio=build_us / gauge_us if gauge_us else float("nan"),
            target="<=100 us",
            met=build_us <= 100,
            note="median after the first; floor: one pydantic validation (speed gauge)",
        ),
        Result(
            name=f"{count} concurrent runs",
            subject=wall * 1000,
            floor=bare * 1000,
            unit="ms",
            ratio=concurrent_ratio,
            target="<=1.1x",
            met=concurrent_ratio <= 1.1,
            note=(
                f"3 LLM calls of 10 ms each per run; floor: the same sleeps in {count} bare "
                f"asyncio tasks (ideal critical path 30 ms: planner {wall / 0.03:.2f}x, bare "
                f"{bare / 0.03:.2f}x); planner / spec'd work by hand = "
                f"{ratio_of('planner', 'by_hand'):.2f}x; median of {len(rounds['bare'])} rounds"
            ),
        ),
        Result(
            name=f"{count} runs' spec'd work by hand",
            subject=hand * 1000,
            floor=bare * 1000,
            unit="ms",
            ratio=ratio_of("by_hand", "bare"),
            target="report",
            met=None,
            note=(
                "the bound of the row above: the same sleeps plus, written plainly, the work "
                "every run must do (parse replies, validate, call, dump, serialise messages)"
            ),
        ),
        Result(
            name="peak RSS per concurrent run",
            subject=per_run_kb,
            floor=15.0,
            unit="KB",
            ratio=max(per_run_kb, 1e-9) / 15.0,
            target="<=15 KB",
            met=per_run_kb <= 15.0,
            note=(
                f"Python allocations {traced_kb:.1f} KB/run (tracemalloc peak), RSS growth "
                f"{rss_kb:.1f} KB/run with all runs alive; the larger is reported"
            ),
        ),
    ]
    for width, (branch_us, branch_floor_us, ratio, bound_us, bound) in parallel.items():
        results.append(
            Result(
                name=f"parallel plan of {width} + join",
                subject=branch_us,
                floor=branch_floor_us,
                unit="us",
                ratio=ratio,
                target="<=1.3x",
                met=ratio <= 1.3,
                note=(
                    "µs per branch, LLM reply holding the plan to the next LLM call; floor: "
                    "validate args, asyncio.gather the calls, validate/dump outputs, join; "
                    f"planner / spec'd work by hand = {branch_us / bound_us:.2f}x"
                ),
            )
        )
        results.append(
            Result(
                name=f"plan of {width}: spec'd work by hand",
                subject=bound_us,
                floor=branch_floor_us,
                unit="us",
                ratio=bound,
                target="report",
                met=None,
                note=(
                    "the row above done the obvious way: the floor plus, written plainly, "
                    "what the spec asks beyond it (parse the reply into a PlannerAction, "
                    "write the step's two messages as compact JSON)"
                ),
            )
        )
    branch_us, branch_floor_us, ratio, _, _ = awaiting
    results.append(
        Result(
            name="parallel plan of 50 + join, tools await",
            subject=branch_us,
            floor=branch_floor_us,
            unit="us",
            ratio=ratio,
            target="report",
            met=None,
            note="as above with tools that await (asyncio.sleep(0)): one task per branch",
        )
    )
    return results


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "ReactPlanner overhead"))
