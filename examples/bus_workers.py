"""Scale a flow out over worker processes that share one message bus.

Starts three `python -m penguiflow.bus.worker` processes, each running `build_flow`
(below) as one member of the consumer group of the `tickets` edge, sends ten tickets
through a `BusClient`, prints each reply (from the `replies` edge) with the worker
that produced it, then stops the workers (SIGTERM) and deletes what it wrote:

    python examples/bus_workers.py                                  # Redis, 127.0.0.1
    python examples/bus_workers.py --redis redis://127.0.0.1:6379/1
    python examples/bus_workers.py --nats nats://127.0.0.1:4222     # NATS JetStream

Each worker is what you would run on your own machines (with `examples/` on
`PYTHONPATH`):

    python -m penguiflow.bus.worker --flow bus_workers:build_flow \\
        --redis redis://127.0.0.1:6379/0 --prefix demo --ingress tickets --egress replies

A worker acknowledges a ticket only after publishing its reply, so a worker that dies
mid-ticket leaves it to another one (at-least-once); the client keeps the first reply
of each trace. An unreachable broker, a wrong URL or a missing driver is one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from penguiflow import Headers, Message, Node, NodePolicy, PenguiFlow, create
from penguiflow.bus import BusClient, BusError, InvalidBusOptionError
from penguiflow.bus.nats_jetstream import NatsJetStreamBus
from penguiflow.bus.redis_streams import RedisStreamsBus
from penguiflow.errors import MissingExtraError

HERE = Path(__file__).resolve().parent
WORKERS = 3
TICKETS = 10


async def triage(message: Message, ctx: Any) -> Message:
    await asyncio.sleep(0.05)  # stands in for real work (an LLM call, a lookup)
    text = str(message.payload)
    team = "billing" if "invoice" in text else "support"
    return message.model_copy(update={"payload": {"ticket": text, "team": team}})


async def reply(message: Message, ctx: Any) -> Message:
    answer = f"[{message.payload['team']}] thanks, we are on it: {message.payload['ticket']}"
    return message.model_copy(update={"payload": answer})


def build_flow() -> PenguiFlow:
    """The flow every worker process builds: triage -> reply."""
    first = Node(triage, name="triage", policy=NodePolicy(validate="none"))
    second = Node(reply, name="reply", policy=NodePolicy(validate="none"))
    return create(first.to(second), second.to())


async def run(bus: RedisStreamsBus | NatsJetStreamBus, worker_args: list[str]) -> None:
    """Start the workers, send the tickets and print the replies."""
    async with BusClient(bus, ingress="tickets", egress="replies") as client:
        path = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        command = [sys.executable, "-m", "penguiflow.bus.worker"]
        command += ["--flow", "bus_workers:build_flow", *worker_args]
        command += ["--ingress", "tickets", "--egress", "replies"]
        workers = [await asyncio.create_subprocess_exec(*command, env=env) for _ in range(WORKERS)]
        try:
            headers = Headers(tenant="demo")
            tickets = [
                f"ticket {i}: " + ("invoice is wrong" if i % 3 == 0 else "cannot log in")
                for i in range(TICKETS)
            ]
            trace_ids = [await client.submit(text, headers=headers) for text in tickets]
            replies = [await client.result(trace_id, timeout_s=30) for trace_id in trace_ids]
            for message in replies:
                print(f"{message.meta['worker']}: {message.payload}")
            names = {message.meta["worker"] for message in replies}
            print(f"{len(replies)} replies from {len(names)} workers")
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                await asyncio.wait_for(worker.wait(), 10)


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    if args.nats:
        stream, prefix = f"DEMO_{tag}", f"demo_{tag}"
        nats_bus = NatsJetStreamBus(args.nats, stream=stream, prefix=prefix)
        try:
            await nats_bus.connect()  # creates the stream
            try:
                await run(nats_bus, ["--nats", args.nats, "--stream", stream, "--prefix", prefix])
            finally:
                await nats_bus.delete_stream()
        finally:
            await nats_bus.close()
        return
    prefix = f"demo:{tag}"
    redis_bus = RedisStreamsBus(args.redis, prefix=prefix)
    try:
        await redis_bus.connect()
        try:
            await run(redis_bus, ["--redis", args.redis, "--prefix", prefix])
        finally:
            client = await redis_bus.redis()
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await redis_bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--redis", metavar="URL", default="redis://127.0.0.1:6379/0")
    choice.add_argument("--nats", metavar="URL")
    try:
        asyncio.run(main(parser.parse_args()))
    except (BusError, MissingExtraError) as exc:  # each says what to check or install
        print(f"bus_workers.py: {exc}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, InvalidBusOptionError) else 1) from None
