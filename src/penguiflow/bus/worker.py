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
can drop duplicate results. The trace context an ingress envelope came with is kept
in `meta["traceparent"]` of both, and adopted for the message's flow trace
(`penguiflow.tracing.propagation.adopt`), so the worker's spans join the publisher's
trace. Each result is published under a message id derived from
its ingress id, so a repeated result has the same `msg_id` on every bus, and JetStream
itself drops it inside its duplicate window.

On stop (SIGTERM, SIGINT) a worker finishes the messages it holds, then prints its
bus counters (`round_trips=... published=... acked=...`) to stderr.

Run one with `python -m penguiflow.bus.worker --flow pkg.mod:build_flow
--redis redis://127.0.0.1:6379/0 --prefix app --ingress in --egress out`, or with
`--nats nats://127.0.0.1:4222 [--stream APP]` instead of `--redis`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._logfmt import LogLine
from ..tracing.propagation import adopt, extract
from ..types import Message
from ._codec import derived_msg_id
from ._consumer import check_consume_options, default_consumer
from .errors import FlowFactoryError
from .nats_jetstream import durable_name
from .protocol import BusEnvelope, ConsumerBus, Delivery, Handler

if TYPE_CHECKING:
    from ..core import PenguiFlow
    from ..errors import FlowError

__all__ = [
    "Bus",
    "consume_edge",
    "default_consumer",
    "durable_name",
    "load_flow_factory",
    "main",
    "run_worker",
]

Bus = ConsumerBus
"""What a worker runs on: any `ConsumerBus` (the name code written earlier annotates with)."""

logger = logging.getLogger("penguiflow.bus.worker")


def load_flow_factory(spec: str) -> Callable[[], Any]:
    """The callable named by `package.module:callable` (it must build a flow).

    Raises `FlowFactoryError` for a malformed spec, `ImportError` for a missing
    module and `TypeError` when the name is not callable.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FlowFactoryError(
            f"flow spec must be in the form 'package.module:callable', got {spec!r}", spec=spec
        )
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise TypeError(f"{spec!r} does not resolve to a callable")
    return factory  # type: ignore[no-any-return]


async def consume_edge(
    bus: ConsumerBus,
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
    """`bus.consume(...)` with the worker's defaults (batch 1, 5 s claim idle time).

    See `ConsumerBus.consume` for the guarantees, the same on every bus.
    """
    await bus.consume(
        edge,
        group,
        handler,
        consumer=consumer,
        batch=batch,
        concurrency=concurrency,
        claim_idle_ms=claim_idle_ms,
        max_deliveries=max_deliveries,
        stop=stop,
    )


def _stamp(message: Message, delivery: Delivery, consumer: str | None) -> Message:
    """Write the ingress id, delivery count (and worker) into `message.meta`, in place,
    and the trace context the envelope came with (`traceparent`).

    Only for a message this worker owns: one it decoded from the bus.
    """
    meta = message.meta
    meta["ingress_msg_id"] = delivery.msg_id
    meta["ingress_deliveries"] = delivery.deliveries
    if consumer is not None:
        meta["worker"] = consumer
    traceparent = extract(delivery.envelope.meta or {})
    if traceparent is not None:
        meta["traceparent"] = traceparent
    return message


def _with_ingress(message: Message, delivery: Delivery, consumer: str | None) -> Message:
    """`_stamp` on a copy: for a result, which a node may share with other code."""
    if message is delivery.envelope.payload:  # the node passed on the decoded input
        return _stamp(message, delivery, consumer)
    return _stamp(message.model_copy(update={"meta": dict(message.meta)}), delivery, consumer)


class _Results:
    """Runs deliveries through the local flow and hands each the result of its trace.

    Lets a worker run several messages through its flow at once: one task emits
    them in arrival order (so only it waits on the flow's backpressure), results are
    matched by trace id (payloads without one share the key `None`), one delivery
    per trace is in the flow at a time (later ones wait their turn), and a node that
    fails for good (the flow's `hooks.node_failed`) fails its own delivery.
    """

    def __init__(self, flow: PenguiFlow) -> None:
        self._flow = flow
        self._waiting: dict[str | None, asyncio.Future[Any]] = {}  # in the flow, per trace
        self._later: dict[str | None, deque[tuple[Any, asyncio.Future[Any]]]] = {}
        self._feed: deque[tuple[Any, asyncio.Future[Any]]] = deque()
        self._fed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hooks = getattr(flow, "hooks", None)

    def start(self) -> None:
        if self._hooks is None:
            fields = {
                "flow": type(self._flow).__name__,
                "effect": "a message whose flow fails waits for result_timeout_s",
            }
            logger.warning(LogLine("bus_worker_flow_without_hooks"), fields, extra=fields)
        else:
            self._hooks.node_failed.append(self._failed)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._route()), loop.create_task(self._emit())]

    async def close(self) -> None:
        if self._hooks is not None and self._failed in self._hooks.node_failed:
            self._hooks.node_failed.remove(self._failed)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, key: str | None, payload: Any) -> asyncio.Future[Any]:
        """Emit `payload` (of trace `key`); the future gets that trace's first result."""
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if key in self._waiting:  # the same trace delivered twice at once: in turn
            self._later.setdefault(key, deque()).append((payload, result))
        else:
            self._begin(key, payload, result)
        return result

    def give_up(self, key: str | None, result: asyncio.Future[Any]) -> None:
        """Its delivery stops waiting (timed out): the next one of the trace may go."""
        if not result.done():
            result.cancel()
        if self._waiting.get(key) is result:
            self._end(key)

    def _begin(self, key: str | None, payload: Any, result: asyncio.Future[Any]) -> None:
        self._waiting[key] = result
        self._feed.append((payload, result))
        self._fed.set()

    def _end(self, key: str | None) -> None:
        del self._waiting[key]
        later = self._later.get(key)
        while later:
            payload, result = later.popleft()
            if not result.done():
                self._begin(key, payload, result)
                break
        if later is not None and not later:
            del self._later[key]

    def _failed(self, error: FlowError) -> None:
        future = self._waiting.get(error.trace_id)
        if future is not None and not future.done():
            future.set_exception(error)
            self._end(error.trace_id)

    async def _emit(self) -> None:
        while True:
            if not self._feed:
                self._fed.clear()
                await self._fed.wait()
            payload, result = self._feed.popleft()
            if result.done():  # its delivery gave up (timed out, cancelled)
                continue
            if isinstance(payload, Message):  # its trace's spans join the publisher's trace
                adopt(payload.trace_id, payload.meta.get("traceparent"))  # set by `_stamp`
            try:
                await self._flow.emit(payload)
            except Exception as exc:  # the flow refused it: that delivery fails
                result.set_exception(exc)
                if self._waiting.get(_key(payload)) is result:
                    self._end(_key(payload))

    async def _route(self) -> None:
        while True:
            item = await self._flow.fetch()
            trace_id = getattr(item, "trace_id", None)
            future = self._waiting.get(trace_id)
            if future is None or future.done():
                unclaimed = {"trace_id": trace_id}
                logger.warning(LogLine("bus_worker_unclaimed_result"), unclaimed, extra=unclaimed)
                continue
            future.set_result(item)
            self._end(trace_id)


def _key(payload: Any) -> str | None:
    """The trace a payload belongs to (`None` for payloads without one)."""
    return payload.trace_id if isinstance(payload, Message) else None


async def run_worker(
    bus: ConsumerBus,
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

    Up to `concurrency` messages run through the local flow at once, taken in
    batches of up to `batch` (results are matched to messages by trace id). Each
    result is published under an id derived from its ingress message id, and the
    ingress message is acknowledged only after that publish was confirmed. A
    message whose flow fails, or gives no result within `result_timeout_s`, is left
    unacknowledged: retried, then dead-lettered.
    """
    check_consume_options(batch=batch, concurrency=concurrency)
    name = consumer or default_consumer()
    results = _Results(flow)

    async def handle(deliveries: Sequence[Delivery]) -> list[BaseException | None]:
        pending: list[tuple[str | None, asyncio.Future[Any]]] = []
        for delivery in deliveries:
            payload = delivery.envelope.payload
            if isinstance(payload, Message):
                payload = _stamp(payload, delivery, None)  # decoded here: ours to change
            key = _key(payload)
            pending.append((key, results.submit(key, payload)))
        await asyncio.wait([future for _, future in pending], timeout=result_timeout_s)
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        envelopes: list[BusEnvelope] = []
        ids: list[str | None] = []
        published: list[int] = []
        for index, (delivery, (key, future)) in enumerate(zip(deliveries, pending)):
            if not future.done():
                results.give_up(key, future)
                outcomes[index] = TimeoutError(f"no result within {result_timeout_s} s")
                continue
            error = future.exception()
            if error is not None:
                outcomes[index] = error
                continue
            envelopes.append(_result_envelope(future.result(), delivery, name, ingress, egress))
            ids.append(derived_msg_id(egress, delivery.msg_id))
            published.append(index)
        if envelopes:
            stored = await bus.publish_many(envelopes, msg_ids=ids)
            for index, outcome in zip(published, stored):
                outcomes[index] = outcome
        return outcomes

    flow.run()
    results.start()
    per_batch = min(batch, concurrency)
    try:
        await bus.consume_batches(
            ingress,
            group,
            handle,
            consumer=name,
            batch=per_batch,
            concurrency=max(1, concurrency // per_batch),
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            stop=stop,
        )
    finally:
        await results.close()
        await flow.stop()


def _result_envelope(
    result: Any, delivery: Delivery, worker: str, ingress: str, egress: str
) -> BusEnvelope:
    headers = meta = None
    if isinstance(result, Message):
        result = _with_ingress(result, delivery, worker)
        headers, meta = result.headers.model_dump(), dict(result.meta)
    return BusEnvelope(
        edge=egress,
        source=ingress,
        target=egress,
        trace_id=getattr(result, "trace_id", None),
        payload=result,
        headers=headers,
        meta=meta,
    )


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
        "--batch",
        type=int,
        default=1,
        help="messages taken per read and run together, up to --concurrency (keep small "
        "for slow flows)",
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


def _open_bus(args: argparse.Namespace) -> ConsumerBus:
    """The bus the command line selects (`--redis URL` or `--nats URL`)."""
    if args.redis is not None:
        from .redis_streams import RedisStreamsBus

        return RedisStreamsBus(args.redis, prefix=args.prefix)
    from .nats_jetstream import NatsJetStreamBus

    return NatsJetStreamBus(args.nats, stream=args.stream or "PENGUIFLOW", prefix=args.prefix)


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
        bus = _open_bus(args)
    except (ImportError, ValueError, TypeError) as exc:
        parser.error(str(exc))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        name = args.consumer or default_consumer()
        flow = factory()
        # The start-up heap (modules, schemas, the flow) lives as long as the process:
        # keep it out of the collector's sweeps, which otherwise rescan it all the time.
        gc.freeze()
        print(
            f"penguiflow worker {name}: consuming {args.ingress!r} (group {args.group!r}) "
            f"on {bus!r}, results to {args.egress!r}",
            file=sys.stderr,
            flush=True,
        )
        try:
            await run_worker(
                bus,
                flow,
                ingress=args.ingress,
                egress=args.egress,
                group=args.group,
                consumer=name,
                batch=args.batch,
                claim_idle_ms=args.claim_idle_ms,
                max_deliveries=args.max_deliveries,
                stop=stop,
                concurrency=args.concurrency,
                result_timeout_s=args.result_timeout_s,
            )
        finally:
            await bus.close()
            stats = bus.stats
            print(
                f"penguiflow worker {name}: stopped; round_trips={stats.round_trips} "
                f"published={stats.published} delivered={stats.delivered} "
                f"acked={stats.acked} dead_lettered={stats.dead_lettered}",
                file=sys.stderr,
                flush=True,
            )

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
