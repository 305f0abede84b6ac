"""Scale a flow over processes: each worker runs the flow on messages taken from a bus.

Every worker process builds the same flow (a `module:callable` factory), joins one
consumer group on the ingress stream, emits each message into its local flow, and
publishes the flow's result to the egress stream. The ingress entry is acknowledged
only after the result is published, so a worker killed mid-message leaves it pending
and another worker reclaims it (at-least-once; results carry the ingress `msg_id` so a
consumer can drop duplicates).

Run one with `python -m penguiflow.bus.worker --flow pkg.mod:build_flow
--redis redis://127.0.0.1:6379/0 --prefix app --ingress in --egress out`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
from collections.abc import Sequence
from typing import Any

from ..types import Message
from ._codec import Delivery
from .protocol import BusEnvelope

__all__ = ["run_worker", "main"]


def load_flow_factory(spec: str) -> Any:
    """The callable named by `package.module:callable` (it must build a flow)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError("flow spec must be in the form 'package.module:callable'")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise TypeError(f"{spec!r} does not resolve to a callable")
    return factory


async def run_worker(
    bus: Any,
    flow: Any,
    *,
    ingress: str,
    egress: str,
    group: str = "workers",
    consumer: str | None = None,
    claim_idle_ms: int = 5_000,
    stop: asyncio.Event | None = None,
) -> None:
    """Feed the flow from `ingress`, publish each result to `egress`, until `stop`."""
    consumer = consumer or f"worker-{os.getpid()}"
    lock = asyncio.Lock()  # one message through the local flow at a time, in order

    async def handle(delivery: Delivery) -> None:
        message = delivery.envelope.payload
        async with lock:
            await flow.emit(message)
            result = await flow.fetch()
        if isinstance(result, Message):
            meta = dict(result.meta)
            meta["ingress_msg_id"] = delivery.msg_id
            meta["worker"] = consumer
            result = result.model_copy(update={"meta": meta})
        await bus.publish(
            BusEnvelope(
                edge=egress,
                source=ingress,
                target=egress,
                trace_id=getattr(result, "trace_id", None),
                payload=result,
                headers=result.headers.model_dump() if isinstance(result, Message) else None,
                meta=dict(result.meta) if isinstance(result, Message) else None,
            )
        )

    flow.run()
    try:
        await bus.consume(ingress, group, consumer, handle, claim_idle_ms=claim_idle_ms, stop=stop)
    finally:
        await flow.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m penguiflow.bus.worker`: one worker process on a Redis Streams bus."""
    parser = argparse.ArgumentParser(prog="penguiflow-worker", description=__doc__)
    parser.add_argument("--flow", required=True, help="module:callable building the flow")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    parser.add_argument("--prefix", default="penguiflow", help="stream key prefix")
    parser.add_argument("--ingress", required=True, help="edge name of the input stream")
    parser.add_argument("--egress", required=True, help="edge name of the output stream")
    parser.add_argument("--group", default="workers", help="consumer group")
    parser.add_argument("--claim-idle-ms", type=int, default=5_000)
    args = parser.parse_args(argv)

    from .redis_streams import RedisStreamsBus

    async def serve() -> None:
        bus = RedisStreamsBus(args.redis, prefix=args.prefix)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            await run_worker(
                bus,
                load_flow_factory(args.flow)(),
                ingress=args.ingress,
                egress=args.egress,
                group=args.group,
                claim_idle_ms=args.claim_idle_ms,
                stop=stop,
            )
        finally:
            await bus.close()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
