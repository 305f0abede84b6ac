"""What recording costs: planner steps and flow hops with a recorder or OpenTelemetry.

Figures (each against the same work without recording, interleaved in the same run):

* a planner step recorded to SQLite (target <= 1.3x): a 20-step run with an
  instant scripted client, per step, the recorder's flush included (the pure
  overhead), and the same with a model answering in 2 ms (what it adds in use);
* a flow hop recorded to SQLite (target <= 1.3x): a message through 10 nodes, one
  trace per message, per hop, the flush included;
* a planner step exported to OpenTelemetry with an in-memory exporter (target
  <= 1.5x), and a flow hop likewise; each with its bound: the same work plus as many
  spans as were exported, started and ended by the OpenTelemetry SDK itself (no
  exporter can cost less than the SDK it exports through);
* 1,000 recorded planner runs (4 steps, a model answering in 2 ms, 50 at a time)
  while the store (a Redis server this bench starts on a free port) is stopped for
  the middle 40% of them, against the same 1,000 runs with the store up (target
  <= 1.1x, 0 failed runs); the dropped spans are reported.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from _common import Result, interleave_async, run_cli
from penguiflow import Headers, Message, ModelRegistry, Node, NodePolicy, build_catalog, create
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.clients.protocol import LLMReply
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.tracing import Recorder

STEPS = 20
HOPS = 10
LATENCY_S = 0.002  # the model's latency in the store-outage runs (a fast local model)


class Args(BaseModel):
    value: int


class Out(BaseModel):
    value: int


def make_catalog() -> list[Any]:
    registry = ModelRegistry()
    nodes = []
    for i in range(4):

        async def work(args: Args, ctx: Any) -> Out:
            return Out(value=args.value + 1)

        name = f"tool_{i}"
        work.__doc__ = f"Adds one (tool {i})."
        nodes.append(Node(work, name=name, policy=NodePolicy(validate="none")))
        registry.register(name, Args, Out)
    return build_catalog(nodes, registry)


def replies(steps: int) -> list[str]:
    calls = [
        LLMReply(
            json.dumps(
                {"thought": f"step {i}", "next_node": f"tool_{i % 4}", "args": {"value": i}}
            ),
            prompt_tokens=100 + i,
            completion_tokens=20,
            total_tokens=120 + i,
            cost_usd=0.0001,
            model="gpt-4o-mini",
        )
        for i in range(steps - 1)
    ]
    finish = json.dumps({"thought": "done", "next_node": None, "args": {"answer": "ok"}})
    return [*calls, LLMReply(finish, prompt_tokens=10, completion_tokens=5, cost_usd=0.0001)]


class Client:
    """Answers from a script, instantly or after `delay_s` (a model's latency)."""

    def __init__(self, script: list[str], delay_s: float = 0.0) -> None:
        self.script = script
        self.calls = 0
        self.delay_s = delay_s

    async def complete(
        self, *, messages: Sequence[Mapping[str, str]], response_format: Any = None
    ) -> str:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self.script[self.calls - 1]


def planner_batch(
    catalog: list[Any],
    runs: int,
    attach: Callable[[ReactPlanner], None] | None,
    flush: Callable[[], Awaitable[None]] | None,
    latency_s: float = 0.0,
) -> Callable[[], Awaitable[float]]:
    script = replies(STEPS)

    async def batch() -> float:
        planners = [
            ReactPlanner(llm_client=Client(script, latency_s), catalog=catalog, max_iters=STEPS + 2)
            for _ in range(runs)
        ]
        if attach is not None:
            for planner in planners:
                attach(planner)
        start = time.perf_counter()
        for planner in planners:
            result = await planner.run("count")
            assert isinstance(result, PlannerFinish)
        if flush is not None:
            await flush()
        return (time.perf_counter() - start) / (runs * STEPS)

    return batch


async def passthrough(message: Any, ctx: Any) -> Any:
    return message


def build_flow() -> Any:
    policy = NodePolicy(validate="none")
    nodes = [Node(passthrough, name=f"hop{i}", policy=policy) for i in range(HOPS)]
    adjacencies = [a.to(b) for a, b in itertools.pairwise(nodes)]
    adjacencies.append(nodes[-1].to())
    return create(*adjacencies, queue_maxsize=64)


def flow_batch(
    flow: Any, count: int, flush: Callable[[], Awaitable[None]] | None
) -> Callable[[], Awaitable[float]]:
    headers = Headers(tenant="bench")

    async def batch() -> float:
        messages = [Message(payload=i, headers=headers) for i in range(count)]
        start = time.perf_counter()
        for message in messages:
            await flow.emit(message)
            await flow.fetch()
        if flush is not None:
            await flush()
        return (time.perf_counter() - start) / (count * HOPS)

    return batch


def result(name: str, paired: Any, target: float, unit_note: str) -> Result:
    return Result(
        name=name,
        subject=paired.subject_median * 1e6,
        floor=paired.floor_median * 1e6,
        unit="us",
        ratio=paired.ratio,
        target=f"<={target}x",
        met=paired.ratio <= target,
        note=f"{unit_note}; round-ratio spread {paired.spread:.0%}",
    )


def sqlite_by_hand_us(path: str, steps: int) -> float:
    """µs per step to record a step the least a recorder can: three span records (the
    step, its LLM call with the new messages and the reply, its tool call with the
    arguments and result) built as dicts, encoded as JSON, and appended to SQLite as one
    chunk per run in one transaction, written plainly with the standard library."""
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS chunks (run_id TEXT, body TEXT)")
    script = replies(steps)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            trace_id = os.urandom(16).hex()
            rows = []
            for step in range(steps):
                step_id = os.urandom(8).hex()
                now = time.time()
                common = {"trace_id": trace_id, "start": now, "end": now, "status": "ok"}
                reply = script[step]
                spans = (
                    {**common, "span_id": step_id, "kind": "step", "name": f"step {step}"},
                    {
                        **common,
                        "span_id": os.urandom(8).hex(),
                        "parent_id": step_id,
                        "kind": "llm",
                        "name": "chat",
                        "attributes": {
                            "model": reply.model,
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "cost_usd": reply.cost_usd,
                        },
                        "content": {
                            "messages": [{"role": "user", "content": '{"observation": 1}'}],
                            "reply": str(reply),
                        },
                    },
                    {
                        **common,
                        "span_id": os.urandom(8).hex(),
                        "parent_id": step_id,
                        "kind": "tool",
                        "name": f"tool_{step % 4}",
                        "content": {"args": {"value": step}, "result": {"value": step + 1}},
                    },
                )
                rows.extend(json.dumps(span) for span in spans)
            connection.execute("BEGIN")
            connection.execute(
                "INSERT INTO chunks (run_id, body) VALUES (?, ?)", (trace_id, "\n".join(rows))
            )
            connection.execute("COMMIT")
        samples.append((time.perf_counter() - start) / (10 * steps))
    connection.close()
    return min(samples) * 1e6


def by_hand_bound(name: str, plain_us: float, added_us: float, what: str) -> Result:
    """The work without recording plus the least recording can add, written plainly."""
    subject = plain_us + added_us
    return Result(
        name=name,
        subject=subject,
        floor=plain_us,
        unit="us",
        ratio=subject / plain_us,
        target="report",
        met=None,
        note=f"the bound of the row above: the work without recording plus {what}",
    )


def otel_sdk_span_us(provider: Any, count: int) -> float:
    """µs to start and end one span with the OpenTelemetry SDK itself, under a parent,
    with two attributes: what any exporter pays per span, whatever it does besides."""
    from opentelemetry import trace

    tracer = provider.get_tracer("bench")
    root = tracer.start_span("invoke_agent bench")
    context = trace.set_span_in_context(root)
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "tool_0"}
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            tracer.start_span("execute_tool tool_0", context=context, attributes=attributes).end()
        samples.append((time.perf_counter() - start) / count)
    root.end()
    return min(samples) * 1e6


def sdk_bound(name: str, plain_us: float, spans: float, span_us: float) -> Result:
    """The least an OpenTelemetry export can cost: the unit's own spans, SDK alone."""
    return by_hand_bound(
        name,
        plain_us,
        spans * span_us,
        f"{spans:.1f} spans per unit (as many as exported) at {span_us:.1f} us each, "
        "started and ended by the OpenTelemetry SDK itself (in-memory exporter)",
    )


def otel_exporter() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from penguiflow.tracing import OTelExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return OTelExporter(provider), memory, provider


async def _steps_and_hops(quick: bool, tmp: str) -> list[Result]:
    runs, repeats = (2, 3) if quick else (10, 9)
    messages = 20 if quick else 200
    catalog = make_catalog()
    results: list[Result] = []

    store = SQLiteStateStore(os.path.join(tmp, "bench.db"), synchronous="NORMAL")
    recorder = Recorder(store)
    paired = await interleave_async(
        planner_batch(catalog, runs, recorder.attach, recorder.flush),
        planner_batch(catalog, runs, None, None),
        repeats=repeats,
    )
    results.append(
        result("planner step: recorded to sqlite", paired, 1.3, "per step, flush included")
    )
    results.append(
        by_hand_bound(
            "planner step: sqlite by hand",
            paired.floor_median * 1e6,
            sqlite_by_hand_us(os.path.join(tmp, "by-hand.db"), STEPS),
            "three span records a step (step, LLM call with messages and reply, tool call "
            "with arguments and result) as dicts, JSON-encoded and appended to SQLite as "
            "one chunk per run, with the standard library",
        )
    )

    exporter, memory, provider = otel_exporter()
    paired = await interleave_async(
        planner_batch(catalog, runs, lambda p: p.hooks.span.append(exporter), None),
        planner_batch(catalog, runs, None, None),
        repeats=repeats,
    )
    memory.clear()
    results.append(result("planner step: OpenTelemetry (memory)", paired, 1.5, "per step"))
    await planner_batch(catalog, runs, lambda p: p.hooks.span.append(exporter), None)()
    spans_per_step = len(memory.get_finished_spans()) / (runs * STEPS)
    memory.clear()
    span_us = otel_sdk_span_us(provider, 500 if quick else 5000)
    memory.clear()
    results.append(
        sdk_bound(
            "planner step: OTel SDK alone",
            paired.floor_median * 1e6,
            spans_per_step,
            span_us,
        )
    )

    # The same, with a model that answers in 2 ms (a fast local one): what recording
    # adds to a step in use. The rows above (an instant model) are the pure overhead.
    slow_runs, slow_repeats = (1, 3) if quick else (3, 5)
    paired = await interleave_async(
        planner_batch(catalog, slow_runs, recorder.attach, recorder.flush, LATENCY_S),
        planner_batch(catalog, slow_runs, None, None, LATENCY_S),
        repeats=slow_repeats,
    )
    results.append(
        result("step, 2 ms model: recorded to sqlite", paired, 1.3, "per step, flush included")
    )
    paired = await interleave_async(
        planner_batch(catalog, slow_runs, lambda p: p.hooks.span.append(exporter), None, LATENCY_S),
        planner_batch(catalog, slow_runs, None, None, LATENCY_S),
        repeats=slow_repeats,
    )
    memory.clear()
    results.append(result("step, 2 ms model: OpenTelemetry (memory)", paired, 1.5, "per step"))

    plain, recorded, exported = build_flow(), build_flow(), build_flow()
    recorder.attach(recorded)
    from penguiflow.tracing import FlowTracer

    FlowTracer.of(exported).sinks.append(exporter)
    for flow in (plain, recorded, exported):
        flow.run()
    try:
        paired = await interleave_async(
            flow_batch(recorded, messages, recorder.flush),
            flow_batch(plain, messages, None),
            repeats=repeats,
        )
        results.append(
            result("flow hop: recorded to sqlite", paired, 1.3, "per hop, flush included")
        )
        paired = await interleave_async(
            flow_batch(exported, messages, None), flow_batch(plain, messages, None), repeats=repeats
        )
        results.append(result("flow hop: OpenTelemetry (memory)", paired, 1.5, "per hop"))
        memory.clear()
        await flow_batch(exported, messages, None)()
        spans_per_hop = len(memory.get_finished_spans()) / (messages * HOPS)
        memory.clear()
        results.append(
            sdk_bound(
                "flow hop: OTel SDK alone",
                paired.floor_median * 1e6,
                spans_per_hop,
                span_us,
            )
        )
    finally:
        for flow in (plain, recorded, exported):
            await flow.stop()
    await recorder.aclose()
    await store.close()
    return results


# -- the store outage ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


async def _outage(quick: bool, tmp: str) -> list[Result]:
    if shutil.which("redis-server") is None:
        nan = float("nan")
        return [
            Result(
                "1,000 runs, store stopped",
                nan,
                nan,
                "ms",
                nan,
                "<=1.1x",
                None,
                note="skipped: redis-server is not installed",
            )
        ]
    from penguiflow.state.redis import RedisStateStore

    total = 100 if quick else 1000
    batch = 10 if quick else 50
    catalog = make_catalog()
    script = replies(4)
    port = free_port()
    server = start_redis(port, tmp)
    store = RedisStateStore(f"redis://127.0.0.1:{port}/0", prefix="bench")

    async def runs(outage: bool) -> tuple[float, int, int]:
        recorder = Recorder(store, write_timeout_s=0.5)
        nonlocal server
        failed = 0
        down = False
        wall = 0.0  # the runs' own time: stopping and starting the server is not counted
        for index in range(0, total, batch):
            if outage and not down and total * 3 // 10 <= index < total * 7 // 10:
                server.terminate()
                server.wait()
                down = True
            if outage and down and index >= total * 7 // 10:
                server = start_redis(port, tmp)
                down = False
            planners = [
                ReactPlanner(llm_client=Client(script, LATENCY_S), catalog=catalog)
                for _ in range(batch)
            ]
            for planner in planners:
                recorder.attach(planner)
            start = time.perf_counter()
            outcomes = await asyncio.gather(
                *(p.run(f"q{index + n}") for n, p in enumerate(planners)), return_exceptions=True
            )
            wall += time.perf_counter() - start
            failed += sum(not isinstance(o, PlannerFinish) for o in outcomes)
        await recorder.aclose()
        return wall, failed, recorder.dropped

    try:
        await runs(False)  # warm up
        healthy, healthy_failed, _ = await runs(False)
        stopped, stopped_failed, dropped = await runs(True)
        healthy2, _, _ = await runs(False)
    finally:
        await store.close()
        server.terminate()
        server.wait()
    floor = min(healthy, healthy2)
    ratio = stopped / floor
    failed = healthy_failed + stopped_failed
    return [
        Result(
            name=f"{total:,} runs, store stopped 40% of the time",
            subject=stopped * 1000,
            floor=floor * 1000,
            unit="ms",
            ratio=ratio,
            target="<=1.1x, 0 failed",
            met=ratio <= 1.1 and failed == 0,
            note=f"{failed} runs failed; {dropped} spans dropped and reported; "
            f"Redis store on 127.0.0.1:{port}, stopped for runs 30%-70%",
        )
    ]


async def _measure(quick: bool) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="pf-bench-tracing-") as tmp:
        results = await _steps_and_hops(quick, tmp)
        results += await _outage(quick, tmp)
    return results


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "Recording (tracing)"))
