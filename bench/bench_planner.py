"""ReactPlanner overhead with an in-process client that answers instantly.

Figures (each against a floor measured in the same run):

* per-step cost with a 10-tool catalog, and the cost of steps 17-19 of a 20-step run
  against steps 2-4 (target <= 1.3x: history must not be re-serialised each step);
  floor: the same tool call done by hand (validate args, call, validate output);
* `ReactPlanner(...)` construction with a 10-tool catalog after the first (target
  <= 100 us); floor: validating one small pydantic model, as a machine-speed gauge;
* 1,000 concurrent `run()`s with a client that sleeps 10 ms per call: wall time
  against the ideal (the sleeps on one run's critical path; target <= 1.5x) and peak
  RSS per concurrent run (target <= 15 KB);
* a parallel plan of 50 calls + join: overhead per branch against a bare
  `asyncio.gather` of the same 50 tool calls.
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

from _common import Result, run_cli
from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog
from penguiflow.planner import ReactPlanner

TOOLS = 10


class Args(BaseModel):
    value: int


class Out(BaseModel):
    value: int


def make_catalog() -> list[Any]:
    registry = ModelRegistry()
    nodes = []
    for i in range(TOOLS):

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
    """Two tool calls then finish, sleeping `delay` per call."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return call(self.calls, self.calls) if self.calls < 3 else FINISH


class ParallelClient:
    def __init__(self, width: int) -> None:
        self.width = width
        self.calls = 0

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.calls += 1
        if self.calls == 1:
            plan = [{"node": f"tool_{i % TOOLS}", "args": {"value": i}} for i in range(self.width)]
            return json.dumps(
                {
                    "thought": "fan out",
                    "plan": plan,
                    "join": {"node": "tool_0", "args": {"value": 0}},
                }
            )
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


async def concurrent_runs(catalog: list[Any], count: int, delay: float) -> tuple[float, float]:
    """Wall time and ideal time for `count` concurrent runs (planners built beforehand)."""
    planners = [
        ReactPlanner(llm_client=SleepyClient(delay), catalog=catalog, max_iters=8)
        for _ in range(count)
    ]
    gc.collect()
    start = time.perf_counter()
    results = await asyncio.gather(*(p.run(f"query {i}") for i, p in enumerate(planners)))
    wall = time.perf_counter() - start
    assert all(getattr(r, "reason", None) == "answer_complete" for r in results), results[:1]
    ideal = 3 * delay  # three LLM calls on each run's critical path
    return wall, ideal


async def bare_sleeps(count: int, delay: float) -> float:
    """The same waits without a planner: `count` tasks sleeping 3 x `delay` each."""

    async def one() -> None:
        for _ in range(3):
            await asyncio.sleep(delay)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start


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


async def parallel_branch_us(catalog: list[Any], width: int, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        planner = ReactPlanner(
            llm_client=ParallelClient(width),
            catalog=catalog,
            absolute_max_parallel=width,
            planning_hints={"max_parallel": width},
        )
        start = time.perf_counter()
        result = await planner.run("fan out")
        samples.append(time.perf_counter() - start)
        assert getattr(result, "reason", None) == "answer_complete", result
    floor = []
    spec = catalog[0]
    for _ in range(repeats):
        start = time.perf_counter()
        outs = await asyncio.gather(
            *(spec.node.func(spec.args_model(value=i), None) for i in range(width))
        )
        [spec.out_model.model_validate(o).model_dump(mode="json") for o in outs]
        floor.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6 / width, statistics.median(floor) * 1e6 / width


async def _measure(quick: bool) -> list[Result]:
    catalog = make_catalog()
    runs = 3 if quick else 30
    step_us, early_us, late_us = await step_costs(catalog, runs)
    floor_us = await manual_tool_call(catalog, runs)
    build_us, gauge_us = construction_us(catalog, 20 if quick else 2000)
    count = 50 if quick else 1000
    wall, ideal = await concurrent_runs(catalog, count, 0.01)
    bare = await bare_sleeps(count, 0.01)
    traced_kb, rss_kb = await memory_per_run(catalog, count, 0.01)
    per_run_kb = max(traced_kb, rss_kb)
    width = 50
    branch_us, branch_floor_us = await parallel_branch_us(catalog, width, 2 if quick else 20)
    growth = late_us / early_us if early_us else float("nan")
    return [
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
            floor=ideal * 1000,
            unit="ms",
            ratio=wall / ideal,
            target="<=1.5x ideal",
            met=wall / ideal <= 1.5,
            note=(
                f"3 LLM calls of 10 ms each per run; ideal = 30 ms critical path; the same "
                f"sleeps in {count} bare tasks take {bare * 1000:.1f} ms "
                f"(planner/bare = {wall / bare:.2f}x)"
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
        Result(
            name=f"parallel plan of {width} + join",
            subject=branch_us,
            floor=branch_floor_us,
            unit="us",
            ratio=branch_us / branch_floor_us if branch_floor_us else float("nan"),
            target="report",
            met=None,
            note="µs per branch for the whole run; floor: bare gather of the same calls",
        ),
    ]


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "ReactPlanner overhead"))
