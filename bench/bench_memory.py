"""Memory stability: nothing may accumulate per trace once it has finished.

A 3-node pass-through chain (`validate="none"`) processes 10,000 messages, each
its own trace, with up to 64 in flight (a producer task emits while a consumer
fetches). Memory is measured after a full collection — `tracemalloc` current
size (tracing started before `penguiflow` is imported when run as a script, so
it covers the whole Python heap like RSS does) and the process RSS. The run then
continues to 100,000 messages and memory is measured again. The figure is the
growth from the 10k to the 100k checkpoint; target: within 5%.

The floor column here is the 10k checkpoint (this benchmark compares penguiflow
with itself); bytes per extra message are printed to show what a leak would cost.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import resource
import sys
import tracemalloc
from typing import Any

from _common import Result, run_cli

CHAIN = 3
INFLIGHT = 64
TARGET_GROWTH = 0.05


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def rss_bytes() -> tuple[int, str]:
    """Current resident set size, or the peak when /proc is unavailable."""
    try:
        with open("/proc/self/statm") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE"), "RSS"
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024
        return peak * scale, "peak RSS"


def snapshot() -> dict[str, int]:
    gc.collect()
    gc.collect()
    rss, _ = rss_bytes()
    current, _peak = tracemalloc.get_traced_memory()
    return {"traced": current, "rss": rss, "objects": len(gc.get_objects())}


async def _run(total_first: int, total_second: int) -> tuple[dict[str, int], dict[str, int], int]:
    from penguiflow import Headers, Message, Node, NodePolicy, create

    policy = NodePolicy(validate="none")
    nodes = [Node(passthrough, name=f"n{i}", policy=policy) for i in range(CHAIN)]
    flow = create(*(a.to(b) for a, b in itertools.pairwise(nodes)), nodes[-1].to())
    headers = Headers(tenant="bench")
    flow.run()

    async def drive(count: int) -> None:
        async def produce() -> None:
            for i in range(count):
                await flow.emit(Message(payload={"i": i}, headers=headers))

        producer = asyncio.create_task(produce())
        for _ in range(count):
            await flow.fetch()
        await producer

    try:
        await drive(total_first)
        first = snapshot()
        await drive(total_second - total_first)
        second = snapshot()
        live_traces = len(flow.traces.active())
    finally:
        await flow.stop()
    return first, second, live_traces


def main(quick: bool = False) -> list[Result]:
    first_n, second_n = (500, 5_000) if quick else (10_000, 100_000)
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        first, second, live_traces = asyncio.run(_run(first_n, second_n))
    finally:
        if started_here:
            tracemalloc.stop()
    _, rss_kind = rss_bytes()
    extra_messages = second_n - first_n
    results: list[Result] = []
    for key, label in (("traced", "tracemalloc current"), ("rss", rss_kind)):
        before, after = first[key], second[key]
        ratio = after / before
        growth = ratio - 1.0
        results.append(
            Result(
                name=f"memory: {label}",
                subject=after / 2**20,
                floor=before / 2**20,
                unit="MiB",
                ratio=ratio,
                target=f"growth <={TARGET_GROWTH:.0%}",
                met=growth <= TARGET_GROWTH,
                note=(
                    f"{first_n:,} -> {second_n:,} msgs: growth {growth:+.2%} "
                    f"({(after - before) / extra_messages:+.1f} B per extra msg); "
                    f"gc objects {first['objects']:,} -> {second['objects']:,}; "
                    f"traces still tracked: {live_traces}"
                ),
                extra={"before": before, "after": after, "growth": growth},
            )
        )
    return results


if __name__ == "__main__":
    tracemalloc.start()
    sys.exit(run_cli(__doc__ or "", main, "Memory over 10k -> 100k traces"))
