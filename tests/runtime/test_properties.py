"""Property-based tests for the invariants users build on.

Each property builds a real flow, drives it with generated input and checks what a
user would observe. Every example runs in its own event loop (`asyncio.run`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow import WM, FinalAnswer, FlowError, FlowEvent, Message, Node, NodePolicy, create
from penguiflow.patterns import map_concurrent
from penguiflow.types import StreamChunk

from ..conftest import make_message

FAST = settings(max_examples=30, deadline=None)
OFF = NodePolicy(validate="none")


class Recorder:
    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    async def __call__(self, event: FlowEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[FlowEvent]:
        return [e for e in self.events if e.event_type == kind]


async def _emit_all(flow: Any, messages: list[Message]) -> None:
    for message in messages:
        await flow.emit(message)


def passthrough(name: str, *, yields: int = 0) -> Node:
    async def forward(message: Message, ctx: Any) -> Message:
        for _ in range(yields):
            await asyncio.sleep(0)
        return message

    return Node(forward, name=name, policy=OFF)


@FAST
@given(
    traces=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=60),
    maxsize=st.integers(min_value=1, max_value=8),
    yields=st.lists(st.integers(min_value=0, max_value=2), min_size=3, max_size=3),
)
def test_messages_of_one_trace_arrive_in_the_order_they_were_emitted(
    traces: list[int], maxsize: int, yields: list[int]
) -> None:
    async def scenario() -> None:
        a, b, c = (passthrough(n, yields=y) for n, y in zip("abc", yields))
        flow = create(a.to(b), b.to(c), c.to(), queue_maxsize=maxsize)
        flow.run()
        ids = [f"trace-{i}" for i in range(5)]
        sent: dict[str, list[int]] = defaultdict(list)

        async def produce() -> None:
            for seq, index in enumerate(traces):
                sent[ids[index]].append(seq)
                await flow.emit(make_message(seq, trace_id=ids[index]))

        producer = asyncio.create_task(produce())
        received: dict[str, list[int]] = defaultdict(list)
        for _ in traces:
            message = await asyncio.wait_for(flow.fetch(), 5)
            received[message.trace_id].append(message.payload)
        await producer
        await flow.stop()
        assert received == sent

    asyncio.run(scenario())


@FAST
@given(
    streams=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
    shared_stream_id=st.booleans(),
)
def test_stream_chunks_are_numbered_without_gaps_or_duplicates(
    streams: list[int], shared_stream_id: bool
) -> None:
    async def scenario() -> None:
        async def speak(message: Message, ctx: Any) -> None:
            count = message.payload
            for i in range(count):
                await ctx.emit_chunk(
                    parent=message,
                    text=f"t{i}",
                    stream_id="shared" if shared_stream_id else None,
                    done=i == count - 1,
                )

        flow = create(Node(speak, policy=OFF).to(), queue_maxsize=2)
        flow.run()
        messages = [make_message(count) for count in streams]
        producer = asyncio.create_task(_emit_all(flow, messages))
        seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        for _ in range(sum(streams)):
            out = await asyncio.wait_for(flow.fetch(), 5)
            chunk = out.payload
            assert isinstance(chunk, StreamChunk)
            seqs[(out.trace_id, chunk.stream_id)].append(chunk.seq)
        await producer
        await flow.stop()
        expected = {
            (m.trace_id, "shared" if shared_stream_id else m.trace_id): m.payload for m in messages
        }
        assert {key: len(value) for key, value in seqs.items()} == expected
        for numbers in seqs.values():
            assert numbers == list(range(len(numbers)))

    asyncio.run(scenario())


@FAST
@given(
    count=st.integers(min_value=2, max_value=8),
    doomed=st.sets(st.integers(min_value=0, max_value=7), min_size=1),
)
def test_cancelling_traces_leaves_no_orphan_tasks_and_the_others_finish(
    count: int, doomed: set[int]
) -> None:
    doomed = {i for i in doomed if i < count} or {0}

    async def scenario() -> None:
        baseline = set(asyncio.all_tasks())
        release = asyncio.Event()

        async def fan(message: Message, ctx: Any) -> Message:
            # Each invocation runs child tasks; a cancelled trace must take them down.
            async def part(i: int) -> int:
                if message.payload in doomed:
                    await asyncio.sleep(30)
                await release.wait()
                return i

            parts = await map_concurrent(range(3), part, max_concurrency=3)
            return message.model_copy(update={"meta": {"parts": parts}})

        worker = Node(fan, policy=OFF)
        flow = create(passthrough("entry").to(worker), worker.to())
        flow.run()
        workers = set(asyncio.all_tasks()) - baseline
        messages = [make_message(i) for i in range(count)]
        for message in messages:
            await flow.emit(message)
        await asyncio.sleep(0.01)
        for i in doomed:
            assert await flow.cancel(messages[i].trace_id)
        release.set()
        finished = [await asyncio.wait_for(flow.fetch(), 5) for _ in range(count - len(doomed))]
        assert sorted(m.payload for m in finished) == sorted(set(range(count)) - doomed)
        assert all(m.meta["parts"] == [0, 1, 2] for m in finished)
        for _ in range(50):
            if not flow.traces.active():
                break
            await asyncio.sleep(0.005)
        assert flow.traces.active() == ()
        current = asyncio.current_task()
        orphans = set(asyncio.all_tasks()) - baseline - workers - {current}
        assert orphans == set()
        await flow.stop()
        assert set(asyncio.all_tasks()) - baseline - {current} == set()

    asyncio.run(scenario())


@FAST
@given(
    retries=st.integers(min_value=0, max_value=4),
    base=st.sampled_from([0.0005, 0.001, 0.002]),
    mult=st.sampled_from([1.0, 2.0, 3.0]),
    cap=st.one_of(st.none(), st.sampled_from([0.001, 0.003])),
    succeed_after=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
)
def test_retries_follow_the_backoff_and_stop_at_the_limit(
    retries: int, base: float, mult: float, cap: float | None, succeed_after: int | None
) -> None:
    async def scenario() -> None:
        calls = 0

        async def flaky(message: Message, ctx: Any) -> Message:
            nonlocal calls
            calls += 1
            if succeed_after is None or calls <= succeed_after:
                raise RuntimeError(f"failure {calls}")
            return message

        policy = NodePolicy(
            validate="none",
            max_retries=retries,
            backoff_base=base,
            backoff_mult=mult,
            max_backoff=cap,
        )
        recorder = Recorder()
        flow = create(
            Node(flaky, name="flaky", policy=policy).to(),
            middlewares=[recorder],
            emit_errors_to_rookery=True,
        )
        flow.run()
        message = make_message("x")
        await flow.emit(message)
        result = await asyncio.wait_for(flow.fetch(), 5)
        await flow.stop()

        succeeds = succeed_after is not None and succeed_after <= retries
        attempts = succeed_after + 1 if succeeds and succeed_after is not None else retries + 1
        assert calls == attempts
        sleeps = [e.extra["sleep_s"] for e in recorder.of("node_retry")]
        expected = [base * mult ** (n - 1) for n in range(1, attempts)]
        if cap is not None:
            expected = [min(s, cap) for s in expected]
        assert sleeps == expected
        if succeeds:
            assert result is message
        else:
            assert isinstance(result, FlowError)
            assert (result.node_name, result.trace_id) == ("flaky", message.trace_id)
            assert [e.attempt for e in recorder.of("node_failed")] == [retries]

    asyncio.run(scenario())


@FAST
@given(budget=st.integers(min_value=0, max_value=6))
def test_a_hop_budget_ends_the_trace_with_the_documented_answer(budget: int) -> None:
    async def scenario() -> None:
        runs = 0

        async def think(message: Message, ctx: Any) -> Message:
            nonlocal runs
            runs += 1
            return message

        node = Node(think, name="controller", policy=OFF, allow_cycle=True)
        flow = create(node.to(node))
        flow.run()
        await flow.emit(make_message(WM(query="q", budget_hops=budget)))
        final = await asyncio.wait_for(flow.fetch(), 5)
        await asyncio.sleep(0.01)
        await flow.stop()
        assert final.payload == FinalAnswer(text="Hop budget exhausted")
        assert runs == max(budget, 1)

    asyncio.run(scenario())


@FAST
@given(used=st.integers(min_value=0, max_value=50), budget=st.integers(min_value=1, max_value=50))
def test_a_token_budget_ends_the_trace_with_the_documented_answer(used: int, budget: int) -> None:
    async def scenario() -> None:
        async def spend(message: Message, ctx: Any) -> Message:
            wm = message.payload
            return message.model_copy(
                update={"payload": wm.model_copy(update={"tokens_used": wm.tokens_used + used})}
            )

        node = Node(spend, name="controller", policy=OFF, allow_cycle=True)
        flow = create(node.to(node))
        flow.run()
        await flow.emit(make_message(WM(query="q", budget_tokens=budget, budget_hops=100)))
        final = await asyncio.wait_for(flow.fetch(), 5)
        await flow.stop()
        if used == 0:
            assert final.payload == FinalAnswer(text="Hop budget exhausted")
        else:
            assert final.payload == FinalAnswer(text="Token budget exhausted")

    asyncio.run(scenario())


@FAST
@given(
    offset=st.floats(min_value=-5.0, max_value=-0.001),
    in_retry=st.booleans(),
)
def test_an_expired_deadline_ends_the_trace_with_the_documented_answer(
    offset: float, in_retry: bool
) -> None:
    async def scenario() -> None:
        import time

        calls = 0

        async def slow_fail(message: Message, ctx: Any) -> Message:
            nonlocal calls
            calls += 1
            raise RuntimeError("never works")

        policy = NodePolicy(validate="none", max_retries=50, backoff_base=0.01)
        flow = create(Node(slow_fail, policy=policy).to())
        flow.run()
        # Either it expires while the node is retrying, or it has already expired
        # and the node never runs.
        deadline = time.time() + (0.05 if in_retry else offset)
        await flow.emit(make_message("x", deadline_s=deadline))
        final = await asyncio.wait_for(flow.fetch(), 5)
        await flow.stop()
        assert final.payload == FinalAnswer(text="Deadline exceeded")
        if in_retry:
            assert 1 <= calls < 50
        else:
            assert calls == 0

    asyncio.run(scenario())


@FAST
@given(
    maxsize=st.integers(min_value=1, max_value=6),
    emits=st.integers(min_value=1, max_value=40),
    chain=st.integers(min_value=1, max_value=4),
)
def test_backpressure_bounds_every_queue(maxsize: int, emits: int, chain: int) -> None:
    async def scenario() -> None:
        nodes = [passthrough(f"n{i}") for i in range(chain)]
        adjacency = [nodes[i].to(nodes[i + 1]) for i in range(chain - 1)] + [nodes[-1].to()]
        flow = create(*adjacency, queue_maxsize=maxsize)
        flow.run()
        pending = [asyncio.create_task(flow.emit(make_message(i))) for i in range(emits)]
        for _ in range(20):
            await asyncio.sleep(0)
            assert all(f.queue.qsize() <= maxsize for f in flow.edges)
        # Nobody fetches: each edge holds maxsize, each node holds one in hand.
        capacity = (chain + 1) * maxsize + chain
        assert sum(task.done() for task in pending) == min(emits, capacity)
        got = [(await asyncio.wait_for(flow.fetch(), 5)).payload for _ in range(emits)]
        await asyncio.gather(*pending)
        await flow.stop()
        assert got == list(range(emits))

    asyncio.run(scenario())
