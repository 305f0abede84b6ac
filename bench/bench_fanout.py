"""Fan-out / join throughput: split to 8 workers, `join_k` the 8 results back.

Subject: `split -> w0..w7 -> join_k("join", 8)` (all `validate="none"`), fed by a
producer task calling `flow.emit` while a consumer task calls `flow.fetch`, so the
pipeline stays full (bounded by the default queue size of 64).
Floor: the same shape from bare asyncio — a split task putting each message on 8
worker queues, 8 worker tasks putting their results on one shared join queue, and
a join task grouping 8 per trace id and emitting a shallow `Message` copy whose
payload is the list of the 8 payloads (what `join_k` produces).

The figure is throughput in ingress messages per second (each one joined and
fetched); the ratio is floor throughput / penguiflow throughput (lower is better).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import Result, interleave_async, run_cli
from penguiflow import Headers, Message, Node, NodePolicy, PenguiFlow, create

WIDTH = 8
QUEUE_MAXSIZE = 64
TARGET = 3.0  # floor throughput / penguiflow throughput


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def make_messages(count: int) -> list[Message]:
    headers = Headers(tenant="bench")
    return [Message(payload=i, headers=headers) for i in range(count)]


def joined(first: Message, bucket: list[Message]) -> Message:
    """What `join_k` emits for a full bucket of `Message`s (spec core.md 10.5)."""
    return first.model_copy(update={"payload": [m.payload for m in bucket]})


# -- subject ---------------------------------------------------------------------------


def load_join_k() -> tuple[Callable[[str, int], Node] | None, str]:
    """`penguiflow.patterns.join_k`, or `None` and a reason when it is not usable yet."""
    try:
        from penguiflow.patterns import join_k
    except ImportError as exc:  # pragma: no cover - depends on the tree state
        return None, f"cannot import penguiflow.patterns.join_k: {exc}"
    try:
        probe = join_k("probe", WIDTH)
    except NotImplementedError:
        return None, "penguiflow.patterns.join_k is still a placeholder"
    if not isinstance(probe, Node):
        return None, f"join_k returned {type(probe).__name__}, not a Node"
    return join_k, ""


def build_flow(join_k: Callable[[str, int], Node]) -> PenguiFlow:
    policy = NodePolicy(validate="none")
    split = Node(passthrough, name="split", policy=policy)
    workers = [Node(passthrough, name=f"w{i}", policy=policy) for i in range(WIDTH)]
    join = join_k("join", WIDTH)
    return create(
        split.to(*workers),
        *(worker.to(join) for worker in workers),
        join.to(),
        queue_maxsize=QUEUE_MAXSIZE,
    )


async def _pump(
    emit: Callable[[Any], Awaitable[None]],
    fetch: Callable[[], Awaitable[Any]],
    messages: list[Message],
) -> float:
    count = len(messages)

    async def produce() -> None:
        for message in messages:
            await emit(message)

    async def consume() -> None:
        for _ in range(count):
            result = await fetch()
            if len(result.payload) != WIDTH:  # cheap sanity check, both sides alike
                raise AssertionError(f"joined {len(result.payload)} items, expected {WIDTH}")

    start = time.perf_counter()
    producer = asyncio.create_task(produce())
    await consume()
    await producer
    return time.perf_counter() - start


def flow_batch(flow: PenguiFlow, messages: list[Message]) -> Callable[[], Awaitable[float]]:
    async def batch() -> float:
        return await _pump(flow.emit, flow.fetch, messages)

    return batch


# -- floor -----------------------------------------------------------------------------


class QueueFanout:
    """The floor: split task, `WIDTH` worker tasks, one joining task."""

    def __init__(self) -> None:
        self.ingress: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_MAXSIZE)
        self.egress: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_MAXSIZE)
        self.join_queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_MAXSIZE)
        self.worker_queues: list[asyncio.Queue[Any]] = [
            asyncio.Queue(maxsize=QUEUE_MAXSIZE) for _ in range(WIDTH)
        ]
        self.tasks = [
            asyncio.create_task(self._split()),
            asyncio.create_task(self._join()),
            *(asyncio.create_task(self._work(q)) for q in self.worker_queues),
        ]

    async def _split(self) -> None:
        while True:
            item = await passthrough(await self.ingress.get(), None)
            for queue in self.worker_queues:
                await queue.put(item)

    async def _work(self, inbox: asyncio.Queue[Any]) -> None:
        outbox = self.join_queue
        while True:
            item = await inbox.get()
            await outbox.put(await passthrough(item, None))

    async def _join(self) -> None:
        buckets: dict[str, list[Message]] = {}
        while True:
            item = await self.join_queue.get()
            bucket = buckets.setdefault(item.trace_id, [])
            bucket.append(item)
            if len(bucket) == WIDTH:
                del buckets[item.trace_id]
                await self.egress.put(joined(bucket[0], bucket))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def floor_batch(fanout: QueueFanout, messages: list[Message]) -> Callable[[], Awaitable[float]]:
    async def batch() -> float:
        return await _pump(fanout.ingress.put, fanout.egress.get, messages)

    return batch


# -- driver ----------------------------------------------------------------------------


async def _measure(quick: bool) -> list[Result]:
    name = f"fan-out {WIDTH} + join_k"
    target = f"<={TARGET:g}x (>=1/{TARGET:g} floor)"
    join_k, reason = load_join_k()
    if join_k is None:
        nan = float("nan")
        return [Result(name, nan, nan, "msg/s", nan, target, None, note=f"skipped: {reason}")]
    count = 100 if quick else 2000
    repeats = 2 if quick else 7
    messages = make_messages(count)
    flow = build_flow(join_k)
    flow.run()
    fanout = QueueFanout()
    try:
        paired = await interleave_async(
            flow_batch(flow, messages), floor_batch(fanout, messages), repeats=repeats
        )
    finally:
        await flow.stop()
        await fanout.stop()
    # Time ratio subject/floor == throughput ratio floor/subject.
    ratio = paired.ratio
    return [
        Result(
            name=name,
            subject=count / paired.subject_median,
            floor=count / paired.floor_median,
            unit="msg/s",
            ratio=ratio,
            target=target,
            met=ratio <= TARGET,
            note=(
                f"{count} msgs per batch ({1 + 2 * WIDTH} node calls each), {repeats} rounds; "
                f"best {count / paired.subject_best:,.0f} vs "
                f"{count / paired.floor_best:,.0f} msg/s; "
                f"round-ratio spread {paired.spread:.0%}"
            ),
        )
    ]


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, f"Fan-out to {WIDTH} + join_k throughput"))
