"""Scale a flow over processes: each worker runs the flow on messages taken from a bus.

Every worker process builds the same flow (a `module:callable` factory), joins one
consumer group on the ingress edge (a Redis Streams consumer group, or a durable pull
consumer on NATS JetStream), emits each message into its local flow, and publishes the
flow's result to the egress edge. The ingress message is acknowledged only after the
result is published, so a worker killed mid-message leaves it unacknowledged and
another worker gets it again after `--claim-idle-ms` (at-least-once).

Duplicates are therefore possible; both the input message seen by the flow and its
result carry `meta["ingress_msg_id"]` (the bus message id) and
`meta["ingress_deliveries"]`, so nodes can make their effects idempotent and consumers
can drop duplicate results. On NATS the result is also published with a `Nats-Msg-Id`
derived from the ingress id, so JetStream itself drops a duplicate result inside its
duplicate window.

Run one with `python -m penguiflow.bus.worker --flow pkg.mod:build_flow
--redis redis://127.0.0.1:6379/0 --prefix app --ingress in --egress out`, or with
`--nats nats://127.0.0.1:4222 [--stream APP]` instead of `--redis`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import logging
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..types import Message
from ._codec import Delivery, Handler
from .nats_jetstream import NatsJetStreamBus
from .protocol import BusEnvelope
from .redis_streams import RedisStreamsBus

if TYPE_CHECKING:
    from ..core import PenguiFlow

__all__ = ["Bus", "consume_edge", "durable_name", "load_flow_factory", "main", "run_worker"]

Bus = RedisStreamsBus | NatsJetStreamBus

logger = logging.getLogger("penguiflow.bus.worker")

# Namespace of the deterministic ids under which results are published on NATS.
_RESULT_NAMESPACE = uuid.UUID("6f1d3c0e-1b7a-4c55-9d7e-2f4a8b9c0d11")


def load_flow_factory(spec: str) -> Callable[[], Any]:
    """The callable named by `package.module:callable` (it must build a flow)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError("flow spec must be in the form 'package.module:callable'")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise TypeError(f"{spec!r} does not resolve to a callable")
    return factory  # type: ignore[no-any-return]


def default_consumer() -> str:
    """A consumer name unique across hosts: `<hostname>-<pid>`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def durable_name(group: str, edge: str) -> str:
    """The NATS durable consumer of `group` on `edge` (one per edge: a durable has one
    filter subject). Unsafe characters become `_`, plus a short hash of the edge."""
    name = f"{group}_{edge}"
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(edge.encode("utf-8")).hexdigest()[:8]
    return safe


async def consume_edge(
    bus: Bus,
    edge: str,
    group: str,
    handler: Handler,
    *,
    consumer: str | None = None,
    batch: int = 1,
    claim_idle_ms: int = 5_000,
    max_deliveries: int = 5,
    stop: asyncio.Event | None = None,
    concurrency: int = 1,
) -> None:
    """Run `handler` for `edge` as one member of `group`, on either bus, until `stop`.

    Same semantics on both: ack after the handler returns; an unacknowledged message is
    delivered again after `claim_idle_ms` (Redis: reclaimed by `XAUTOCLAIM`; NATS: the
    consumer's `ack_wait`) and dead-lettered after `max_deliveries`. `batch` messages
    are taken at a time: keep `batch` x handler time well below `claim_idle_ms`, or
    messages waiting in a live consumer's batch are delivered again elsewhere.
    """
    if isinstance(bus, NatsJetStreamBus):
        await bus.consume(
            edge,
            durable_name(group, edge),
            handler,
            batch=batch,
            ack_wait_s=claim_idle_ms / 1000,
            max_deliveries=max_deliveries,
            stop=stop,
            concurrency=concurrency,
        )
    else:
        await bus.consume(
            edge,
            group,
            consumer or default_consumer(),
            handler,
            count=batch,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            stop=stop,
            concurrency=concurrency,
        )


def _with_ingress(message: Message, delivery: Delivery, consumer: str | None) -> Message:
    meta = dict(message.meta)
    meta["ingress_msg_id"] = delivery.msg_id
    meta["ingress_deliveries"] = delivery.deliveries
    if consumer is not None:
        meta["worker"] = consumer
    return message.model_copy(update={"meta": meta})


class _Results:
    """Hands each result the local flow produces to the message of the same trace.

    Lets a worker run several messages through its flow at once: results are matched
    by trace id (not taken in arrival order), and a node that fails for good fails
    its own message (which stays unacknowledged, so it is retried or dead-lettered).
    """

    def __init__(self, flow: PenguiFlow) -> None:
        self._flow = flow
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._busy: dict[str, list[Any]] = {}  # trace id -> [lock, users]
        self._task: asyncio.Task[None] | None = None
        previous = flow._failure_observer

        def failed(error: Any) -> None:
            if previous is not None:
                previous(error)
            future = self._waiting.get(error.trace_id or "")
            if future is not None and not future.done():
                future.set_exception(error)

        flow._failure_observer = failed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._route())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _route(self) -> None:
        while True:
            item = await self._flow.fetch()
            trace_id = getattr(item, "trace_id", None)
            future = self._waiting.get(trace_id) if trace_id is not None else None
            if future is None or future.done():
                logger.warning("bus_worker_unclaimed_result", extra={"trace_id": trace_id})
                continue
            future.set_result(item)

    async def run(self, message: Message, timeout_s: float | None) -> Any:
        """Emit `message` and wait for the first result of its trace."""
        trace_id = message.trace_id
        entry = self._busy.get(trace_id)
        if entry is None:
            entry = self._busy[trace_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:  # two deliveries of one trace at once: one after the other
                future = asyncio.get_running_loop().create_future()
                self._waiting[trace_id] = future
                try:
                    await self._flow.emit(message)
                    return await asyncio.wait_for(future, timeout_s)
                finally:
                    del self._waiting[trace_id]
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._busy[trace_id]


async def run_worker(
    bus: Bus,
    flow: PenguiFlow,
    *,
    ingress: str,
    egress: str,
    group: str = "workers",
    consumer: str | None = None,
    batch: int = 1,
    claim_idle_ms: int = 5_000,
    max_deliveries: int = 5,
    stop: asyncio.Event | None = None,
    concurrency: int = 1,
    result_timeout_s: float | None = None,
) -> None:
    """Feed the flow from `ingress`, publish each result to `egress`, until `stop`.

    `concurrency` messages run through the local flow at once (results are matched
    to messages by trace id). A message whose flow fails, or gives no result within
    `result_timeout_s`, is left unacknowledged: retried, then dead-lettered.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    name = consumer or default_consumer()
    results = _Results(flow)
    lock = asyncio.Lock()  # payloads without a trace id: one at a time, in order

    async def handle(delivery: Delivery) -> None:
        message = delivery.envelope.payload
        if isinstance(message, Message):
            message = _with_ingress(message, delivery, None)
            result = await results.run(message, result_timeout_s)
        else:
            async with lock:
                await flow.emit(message)
                result = await asyncio.wait_for(flow.fetch(), result_timeout_s)
        if isinstance(result, Message):
            result = _with_ingress(result, delivery, name)
        envelope = BusEnvelope(
            edge=egress,
            source=ingress,
            target=egress,
            trace_id=getattr(result, "trace_id", None),
            payload=result,
            headers=result.headers.model_dump() if isinstance(result, Message) else None,
            meta=dict(result.meta) if isinstance(result, Message) else None,
        )
        if isinstance(bus, NatsJetStreamBus):
            result_id = uuid.uuid5(_RESULT_NAMESPACE, f"{egress}\n{delivery.msg_id}").hex
            await bus.publish(envelope, msg_id=result_id)
        else:
            await bus.publish(envelope)

    flow.run()
    results.start()
    try:
        await consume_edge(
            bus,
            ingress,
            group,
            handle,
            consumer=name,
            batch=batch,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            stop=stop,
            concurrency=concurrency,
        )
    finally:
        await results.close()
        await flow.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m penguiflow.bus.worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--flow", required=True, help="module:callable building the flow")
    bus = parser.add_mutually_exclusive_group(required=True)
    bus.add_argument("--redis", metavar="URL", help="Redis Streams bus, e.g. redis://host:6379/0")
    bus.add_argument("--nats", metavar="URL", help="NATS JetStream bus, e.g. nats://host:4222")
    parser.add_argument(
        "--prefix", default="penguiflow", help="stream key (Redis) / subject (NATS) prefix"
    )
    parser.add_argument("--stream", help="JetStream stream name (NATS only; default PENGUIFLOW)")
    parser.add_argument("--ingress", required=True, help="edge name of the input stream")
    parser.add_argument("--egress", required=True, help="edge name of the output stream")
    parser.add_argument("--group", default="workers", help="consumer group / durable name")
    parser.add_argument("--consumer", help="consumer name (default <hostname>-<pid>)")
    parser.add_argument(
        "--claim-idle-ms",
        type=int,
        default=5_000,
        help="redeliver a message left unacknowledged this long (NATS: ack wait)",
    )
    parser.add_argument(
        "--batch", type=int, default=1, help="messages taken per read (keep small for slow flows)"
    )
    parser.add_argument("--max-deliveries", type=int, default=5, help="then dead-letter")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="messages run through the flow at once"
    )
    parser.add_argument(
        "--result-timeout-s",
        type=float,
        default=None,
        help="give up on a message whose flow gives no result this long (then it is retried)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m penguiflow.bus.worker`: one worker process on a Redis or NATS bus."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.redis is not None and args.stream is not None:
        parser.error("--stream applies to --nats only")
    for option in ("claim_idle_ms", "batch", "max_deliveries", "concurrency"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    try:
        factory = load_flow_factory(args.flow)
        bus: Bus = (
            RedisStreamsBus(args.redis, prefix=args.prefix)
            if args.redis is not None
            else NatsJetStreamBus(args.nats, stream=args.stream or "PENGUIFLOW", prefix=args.prefix)
        )
    except (ImportError, ValueError, TypeError) as exc:
        parser.error(str(exc))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print(
            f"penguiflow worker {args.consumer or default_consumer()}: consuming "
            f"{args.ingress!r} (group {args.group!r}) on {bus!r}, results to {args.egress!r}",
            file=sys.stderr,
            flush=True,
        )
        try:
            await run_worker(
                bus,
                factory(),
                ingress=args.ingress,
                egress=args.egress,
                group=args.group,
                consumer=args.consumer,
                batch=args.batch,
                claim_idle_ms=args.claim_idle_ms,
                max_deliveries=args.max_deliveries,
                stop=stop,
                concurrency=args.concurrency,
                result_timeout_s=args.result_timeout_s,
            )
        finally:
            await bus.close()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
