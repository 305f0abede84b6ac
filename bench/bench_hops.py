"""Hop overhead: a message through a chain of 10 pass-through nodes.

Subject: `create(n0.to(n1), ..., n9.to())` with `NodePolicy(validate="none")`,
driven through `flow.emit` / `flow.fetch`.
Floor: 10 tasks joined by 11 bare `asyncio.Queue(maxsize=64)`s, each task doing
`put(await fn(await get()))` with the same pass-through coroutine.

Two shapes: 1 message in flight (emit, fetch, repeat) — pure latency — and 64 in
flight (emit 64, fetch 64, repeat) — pipelined. The figure is microseconds per
message per hop (batch time / (messages x 10)).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import Result, interleave_async, run_cli
from penguiflow import Headers, Message, Node, NodePolicy, PenguiFlow, create

HOPS = 10
QUEUE_MAXSIZE = 64


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def make_messages(count: int) -> list[Message]:
    headers = Headers(tenant="bench")
    return [Message(payload=i, headers=headers) for i in range(count)]


# -- subject ---------------------------------------------------------------------------


def build_flow(hops: int = HOPS) -> PenguiFlow:
    policy = NodePolicy(validate="none")
    nodes = [Node(passthrough, name=f"hop{i}", policy=policy) for i in range(hops)]
    adjacencies = [a.to(b) for a, b in itertools.pairwise(nodes)]
    adjacencies.append(nodes[-1].to())
    return create(*adjacencies, queue_maxsize=QUEUE_MAXSIZE)


def flow_batch(
    flow: PenguiFlow, messages: list[Message], inflight: int, rounds: int
) -> Callable[[], Awaitable[float]]:
    window = messages[:inflight]

    async def batch() -> float:
        emit, fetch = flow.emit, flow.fetch
        start = time.perf_counter()
        for _ in range(rounds):
            for message in window:
                await emit(message)
            for _ in window:
                await fetch()
        return time.perf_counter() - start

    return batch


# -- floor -----------------------------------------------------------------------------


class QueueChain:
    """The floor: `hops` tasks connected by bare asyncio queues."""

    def __init__(self, hops: int = HOPS) -> None:
        self.queues: list[asyncio.Queue[Any]] = [
            asyncio.Queue(maxsize=QUEUE_MAXSIZE) for _ in range(hops + 1)
        ]
        self.tasks = [
            asyncio.create_task(self._stage(self.queues[i], self.queues[i + 1]))
            for i in range(hops)
        ]

    @staticmethod
    async def _stage(inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any]) -> None:
        while True:
            item = await inbox.get()
            await outbox.put(await passthrough(item, None))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def floor_batch(
    chain: QueueChain, messages: list[Message], inflight: int, rounds: int
) -> Callable[[], Awaitable[float]]:
    window = messages[:inflight]
    ingress, egress = chain.queues[0], chain.queues[-1]

    async def batch() -> float:
        put, get = ingress.put, egress.get
        start = time.perf_counter()
        for _ in range(rounds):
            for message in window:
                await put(message)
            for _ in window:
                await get()
        return time.perf_counter() - start

    return batch


# -- driver ----------------------------------------------------------------------------


async def _measure(quick: bool) -> list[Result]:
    # (label, messages in flight, rounds per batch, target ratio)
    shapes = [
        ("hops: 1 in flight", 1, 40 if quick else 1500, 1.3),
        ("hops: 64 in flight", 64, 2 if quick else 40, 2.5),
    ]
    repeats = 2 if quick else 9
    messages = make_messages(64)
    flow = build_flow()
    flow.run()
    chain = QueueChain()
    results: list[Result] = []
    try:
        for label, inflight, rounds, target in shapes:
            paired = await interleave_async(
                flow_batch(flow, messages, inflight, rounds),
                floor_batch(chain, messages, inflight, rounds),
                repeats=repeats,
            )
            per_hop = 1e6 / (inflight * rounds * HOPS)
            ratio = paired.ratio
            results.append(
                Result(
                    name=label,
                    subject=paired.subject_median * per_hop,
                    floor=paired.floor_median * per_hop,
                    unit="us/hop",
                    ratio=ratio,
                    target=f"<={target:g}x",
                    met=ratio <= target,
                    note=(
                        f"{inflight * rounds} msgs x {HOPS} hops per batch, {repeats} rounds; "
                        f"best {paired.subject_best * per_hop:.2f} vs "
                        f"{paired.floor_best * per_hop:.2f} us/hop; "
                        f"round-ratio spread {paired.spread:.0%}"
                    ),
                )
            )
    finally:
        await flow.stop()
        await chain.stop()
    return results


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "Hop overhead (10-node pass-through chain)"))
