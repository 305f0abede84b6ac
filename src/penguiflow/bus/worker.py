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

A trace whose flow fails for good on its last attempt (`--max-deliveries`) is
reported on the egress edge too: the envelope's payload is the trace's `FlowError`
(its meta carries `ingress_msg_id` like a result's), published before the ingress
message goes to the dead letters, so a caller waiting for the trace's result
(`penguiflow.bus.BusClient`) gets the error instead of waiting in vain. A flow with
`emit_errors_to_rookery=True` delivers its `FlowError` as the result: it is published
the same way, and the ingress message acknowledged.

The command reaches the broker and puts the ingress group in place before it prints
`penguiflow worker <name>: consuming ...`; on stop (SIGTERM, SIGINT) a worker finishes
the messages it holds, then prints its bus counters (`stopped; round_trips=...
published=... acked=...`) to stderr. A mistake (an option, `--flow`, a URL, a missing
driver, an unreachable broker) is one line on stderr, `penguiflow: <what>; <fix>`,
with exit status 2 for the command line and 1 for the broker.

Run one with `python -m penguiflow.bus.worker --flow pkg.mod:build_flow
--redis redis://127.0.0.1:6379/0 --prefix app --ingress in --egress out`, or with
`--nats nats://127.0.0.1:4222 [--stream APP]` instead of `--redis`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import inspect
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .._logfmt import LogLine
from ..errors import FlowError, MissingExtraError
from ..tracing.propagation import adopt, extract
from ..types import Message
from ._codec import derived_msg_id
from ._consumer import check_consume_options, default_consumer
from ._urls import redact
from .errors import BrokerUnavailableError, BusError, FlowFactoryError, InvalidBusOptionError
from .nats_jetstream import durable_name
from .protocol import BusEnvelope, ConsumerBus, Delivery, Handler

if TYPE_CHECKING:
    from ..core import PenguiFlow
    from ._broker import BrokerBus

__all__ = [
    "Bus",
    "build_flow",
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


_FLOW_FIX = "point it at a zero-argument function returning a PenguiFlow"


def load_flow_factory(spec: str) -> Callable[[], Any]:
    """The zero-argument function named by `package.module:function` (it must build a
    flow; `build_flow` checks what it builds).

    Raises `FlowFactoryError` (saying what was found and what to do) for a spec not of
    that form, a module that does not exist, a missing attribute, and an object that
    is not a zero-argument function; a module that exists but fails to import raises
    its own error.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise FlowFactoryError(
            f"{spec!r} is not of the form module:callable; write it as package.module:build_flow",
            spec=spec,
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing != module_name and not module_name.startswith(missing + "."):
            raise  # the module exists; something it imports does not
        raise FlowFactoryError(
            f"no module named {module_name!r}; check the name before the colon and run "
            "from the directory that holds it (or add that directory to PYTHONPATH)",
            spec=spec,
        ) from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise FlowFactoryError(
                f"module {module_name!r} has no attribute {attr!r}; check the name after the colon",
                spec=spec,
            )
        target = getattr(target, part)
    if inspect.isclass(target):
        raise FlowFactoryError(
            f"{spec} is a class, not a function building a flow; {_FLOW_FIX}", spec=spec
        )
    if not callable(target):
        raise FlowFactoryError(
            f"{spec} is a {type(target).__name__}, not a function building a flow; {_FLOW_FIX}",
            spec=spec,
        )
    if not _takes_no_arguments(target):
        raise FlowFactoryError(
            f"{spec} needs arguments, so it cannot build the flow by itself; {_FLOW_FIX}",
            spec=spec,
        )
    return target  # type: ignore[no-any-return]


async def build_flow(factory: Callable[[], Any], spec: str) -> PenguiFlow:
    """What `factory` builds (awaited if it is a coroutine), checked to be a flow.

    Raises `FlowFactoryError` when it is not (anything without `run`, `emit`,
    `fetch` and `stop`).
    """
    flow = factory()
    if inspect.isawaitable(flow):
        flow = await flow
    if not all(callable(getattr(flow, name, None)) for name in ("run", "emit", "fetch", "stop")):
        raise FlowFactoryError(
            f"{spec} returned a {type(flow).__name__}, not a PenguiFlow; "
            "make it return the flow it builds (e.g. create(...))",
            spec=spec,
        )
    return flow  # type: ignore[no-any-return]


def _takes_no_arguments(function: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return True
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


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
    unacknowledged: retried, then dead-lettered; after its last attempt its
    `FlowError` is published to `egress` first (under the id its result would have
    had), so whoever waits for the trace learns that it failed.
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
        sent: list[int] = []  # the index of each envelope's delivery
        for index, (delivery, (key, future)) in enumerate(zip(deliveries, pending)):
            if not future.done():
                results.give_up(key, future)
                outcomes[index] = TimeoutError(f"no result within {result_timeout_s} s")
                continue
            error = future.exception()
            if error is not None:
                outcomes[index] = error  # retried, or dead-lettered after its last attempt
                if not isinstance(error, FlowError) or delivery.deliveries < max_deliveries:
                    continue
            result = future.result() if error is None else error
            envelopes.append(_result_envelope(result, delivery, name, ingress, egress))
            ids.append(derived_msg_id(egress, delivery.msg_id))
            sent.append(index)
        if envelopes:
            stored = await bus.publish_many(envelopes, msg_ids=ids)
            for index, outcome in zip(sent, stored):
                if outcomes[index] is None:  # a result: acknowledged once it is stored
                    outcomes[index] = outcome
                elif outcome is not None:  # a failure report that was not stored
                    fields = {
                        "edge": egress,
                        "msg_id": deliveries[index].msg_id,
                        "error": repr(outcome),
                    }
                    logger.warning(LogLine("bus_worker_failure_unreported"), fields, extra=fields)
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
    """The envelope of a trace's result, or of its `FlowError` (with the input's
    headers and meta, as the error has none of its own)."""
    headers = meta = None
    carrier = result
    if isinstance(result, FlowError) and isinstance(delivery.envelope.payload, Message):
        carrier = delivery.envelope.payload
    if isinstance(carrier, Message):
        carrier = _with_ingress(carrier, delivery, worker)
        headers, meta = carrier.headers.model_dump(), dict(carrier.meta)
        if not isinstance(result, FlowError):
            result = carrier
    return BusEnvelope(
        edge=egress,
        source=ingress,
        target=egress,
        trace_id=getattr(result, "trace_id", None),
        payload=result,
        headers=headers,
        meta=meta,
    )


_PROG = "python -m penguiflow.bus.worker"


class _Mistake:
    """A mistake the user can fix: one line, `what`; `fix`, and the exit status."""

    def __init__(self, what: str, fix: str, code: int) -> None:
        self.line = f"{what}; {fix}" if fix else what
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line: what was wrong, then where the options are listed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"penguiflow: {message}; see '{self.prog} --help'\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
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


def _open_bus(args: argparse.Namespace) -> BrokerBus:
    """The bus the command line selects (`--redis URL` or `--nats URL`), not connected."""
    if args.redis is not None:
        from .redis_streams import RedisStreamsBus

        return RedisStreamsBus(args.redis, prefix=args.prefix)
    from .nats_jetstream import NatsJetStreamBus

    return NatsJetStreamBus(args.nats, stream=args.stream or "PENGUIFLOW", prefix=args.prefix)


def _explain(exc: BaseException, args: argparse.Namespace) -> _Mistake | None:
    """The one-line report of `exc` if it is a mistake the user can fix, else `None`."""
    if getattr(args, "redis", None) is not None:
        option, url, server = "--redis", args.redis, "Redis server"
    else:
        option, url, server = "--nats", args.nats or "", "NATS server (with JetStream)"
    if isinstance(exc, FlowFactoryError):  # its message says what to do
        return _Mistake(str(exc), "", 2)
    if isinstance(exc, InvalidBusOptionError):
        fixed = option if exc.option == "url" else f"--{exc.option.replace('_', '-')}"
        return _Mistake(str(exc), f"fix {fixed}", 2)
    if isinstance(exc, MissingExtraError):
        driver = "redis" if exc.extra == "redis" else "nats-py"
        return _Mistake(
            f"{option} needs the {driver} driver, which is not installed",
            f"pip install 'penguiflow[{exc.extra}]'",
            1,
        )
    if isinstance(exc, BrokerUnavailableError):
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        reason = str(cause).strip().rstrip(".") or type(cause).__name__
        return _Mistake(
            f"cannot reach the bus at {redact(url)}: {reason}",
            f"check that the {server} is running and that {option} names it",
            1,
        )
    if isinstance(exc, BusError):
        return _Mistake(f"{exc} (bus {redact(url)})", f"check the {server} and the options", 1)
    if isinstance(exc, ModuleNotFoundError):  # the --flow module imports a missing one
        module, missing = args.flow.partition(":")[0], exc.name or str(exc)
        return _Mistake(
            f"importing {module!r} failed: no module named {missing!r}",
            f"install {missing!r} (or fix the import in {module})",
            1,
        )
    return None


def main(argv: Sequence[str] | None = None, *, prog: str = _PROG) -> int:
    """`python -m penguiflow.bus.worker`: one worker process on a Redis or NATS bus.

    Returns 0 once stopped (SIGTERM, SIGINT). A mistake is one line on stderr and
    `SystemExit` with status 2 (the command line: options, `--flow`, a URL) or 1 (a
    missing driver, an unreachable or refusing broker). `prog` names the command in
    its help and usage errors.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path and "" not in sys.path:  # as with `python -m`
        sys.path.insert(0, os.getcwd())
    parser = _parser(prog)
    # `--flow` first, as every command of the package loads its target first.
    probe = _Parser(prog=prog, add_help=False)
    probe.add_argument("--flow")
    early, _ = probe.parse_known_args(argv, argparse.Namespace(redis=None, nats=None))
    if early.flow is not None and not {"-h", "--help"} & set(argv):
        _report(lambda: load_flow_factory(early.flow), early)
    args = parser.parse_args(argv)
    if args.redis is not None and args.stream is not None:
        parser.error("--stream applies to --nats only")
    for option in ("claim_idle_ms", "batch", "max_deliveries", "concurrency"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")

    def start() -> None:
        bus = _open_bus(args)
        factory = load_flow_factory(args.flow)
        asyncio.run(_serve(args, bus, factory))

    _report(start, args)
    return 0


def _report(call: Callable[[], object], args: argparse.Namespace) -> None:
    """Run `call`; a mistake the user can fix is one line and `SystemExit`."""
    try:
        call()
    except Exception as exc:
        mistake = _explain(exc, args)
        if mistake is None:
            raise
        print(f"penguiflow: {mistake.line}", file=sys.stderr, flush=True)
        raise SystemExit(mistake.code) from None


async def _serve(args: argparse.Namespace, bus: BrokerBus, factory: Callable[[], Any]) -> None:
    """Build the flow, reach the broker and put the group in place, then consume."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    name = args.consumer or default_consumer()
    try:
        flow = await build_flow(factory, args.flow)
        await bus.connect()
        await bus.ensure_group(
            args.ingress,
            args.group,
            claim_idle_ms=args.claim_idle_ms,
            max_deliveries=args.max_deliveries,
        )
    except BaseException:
        await bus.close()
        raise
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


if __name__ == "__main__":
    raise SystemExit(main())
