"""`BusClient`: send work to a flow served by workers, and await each trace's result.

Workers (`python -m penguiflow.bus.worker`) take messages from an ingress edge and
publish each result to an egress edge. A client publishes to the ingress edge and
reads the egress edge through a consumer group of its own, created when it starts
and taking only what is published from then on; it keeps the results of the traces
it waits for (by trace id) and drops the rest (other clients' traces, repeated
results of a redelivered message). Closing the client deletes its group; a client
that dies without closing leaves it behind (on NATS the server deletes it after
five minutes without a reader; on Redis `delete_group` removes it).

    async with BusClient("redis://127.0.0.1:6379/0", prefix="app",
                         ingress="requests", egress="results") as client:
        reply = await client.call("hello", timeout_s=30)  # the result Message
        trace_id = await client.submit({"n": 2})
        later = await client.result(trace_id, timeout_s=30)

A trace that failed in a worker (its `FlowError`, published after the worker's last
attempt) raises that `FlowError` from `result` and `call`; no result in time raises
`ResultTimeoutError`; a broker that fails raises its `BusError` to every waiter.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from .._logfmt import LogLine
from ..errors import FlowError
from ..types import Headers, Message
from ._broker import BrokerBus
from ._urls import NATS_FORMS, NATS_SCHEMES, REDIS_FORMS, REDIS_SCHEMES, redact
from .errors import BusError, InvalidBusOptionError, ResultTimeoutError
from .nats_jetstream import NatsJetStreamBus
from .protocol import BusEnvelope, Delivery

if TYPE_CHECKING:
    from .redis_streams import RedisStreamsBus

__all__ = ["BusClient", "open_bus"]

logger = logging.getLogger("penguiflow.bus")

_NATS_GROUP_INACTIVE_S = 300.0  # a dead client's group on NATS goes after this long


class BusClient:
    """Submit payloads to the flow workers serve on `ingress`; await results from `egress`.

    `bus` is a `RedisStreamsBus`, a `NatsJetStreamBus` (the caller keeps and closes
    it) or a URL (`redis://`, `rediss://`, `unix://`; `nats://`, `tls://`, `ws://`,
    `wss://`), for which the client opens a bus with `prefix` (default
    `penguiflow`) and, on NATS, `stream` (default `PENGUIFLOW`), and closes it.
    These must match the workers' `--prefix` and `--stream`. A bare payload is sent
    as a `Message` with `headers` (default tenant `"default"`). Use it as
    `async with`, or call `start()` and `close()`.
    """

    def __init__(
        self,
        bus: RedisStreamsBus | NatsJetStreamBus | str,
        *,
        ingress: str,
        egress: str,
        prefix: str | None = None,
        stream: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        if isinstance(bus, str):
            self._bus: BrokerBus = open_bus(bus, prefix=prefix or "penguiflow", stream=stream)
            self._owned = True
        elif isinstance(bus, BrokerBus):
            if prefix is not None or stream is not None:
                raise InvalidBusOptionError(
                    "prefix and stream are options of a bus the client opens from a URL; "
                    "this bus has its own",
                    option="prefix" if prefix is not None else "stream",
                    value=prefix if prefix is not None else stream,
                )
            self._bus = bus
            self._owned = False
        else:
            raise InvalidBusOptionError(
                f"BusClient needs a RedisStreamsBus, a NatsJetStreamBus or a bus URL, "
                f"got {type(bus).__name__}",
                option="bus",
                value=type(bus).__name__,
            )
        for option, edge in (("ingress", ingress), ("egress", egress)):
            if not edge:
                raise InvalidBusOptionError(
                    f"{option} must name an edge", option=option, value=edge
                )
        self._ingress = ingress
        self._egress = egress
        self._headers = headers if headers is not None else Headers(tenant="default")
        self._group = f"client-{uuid.uuid4().hex[:16]}"
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._stop = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"BusClient({self._bus!r}, ingress={self._ingress!r}, egress={self._egress!r}, "
            f"group={self._group!r})"
        )

    @property
    def bus(self) -> RedisStreamsBus | NatsJetStreamBus:
        """The bus this client publishes to and reads from."""
        return cast("RedisStreamsBus | NatsJetStreamBus", self._bus)

    @property
    def group(self) -> str:
        """The client's own consumer group on the egress edge."""
        return self._group

    async def __aenter__(self) -> BusClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Reach the broker and create the client's group on the egress edge, taking
        results published from now on; then read them in the background.

        Raises `BrokerUnavailableError` when the broker cannot be reached, and the
        package's `MissingExtraError` when the bus's driver is not installed.
        """
        if self._closed:
            raise BusError("this BusClient is closed; create a new one", operation="start")
        if self._reader is not None:
            return
        await self._bus.connect()
        if isinstance(self._bus, NatsJetStreamBus):
            await self._bus.ensure_group(
                self._egress, self._group, start="new", inactive_s=_NATS_GROUP_INACTIVE_S
            )
        else:
            await self._bus.ensure_group(self._egress, self._group, start="new")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        """Stop reading, delete the client's group, and close the bus if it opened it.

        Traces still waiting for a result get `BusError` (the client is closed).
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._reader is not None:
                self._stop.set()
                await self._reader
                if self._failure is None:
                    await self._bus.delete_group(self._egress, self._group)
                else:  # the broker failed already (and every waiter was told)
                    fields = {"edge": self._egress, "group": self._group}
                    logger.warning(LogLine("bus_client_group_left"), fields, extra=fields)
        finally:
            self._settle_all(BusError("the BusClient was closed", operation="result"))
            if self._owned:
                await self._bus.close()

    async def submit(
        self,
        payload: Any,
        *,
        headers: Headers | None = None,
        trace_id: str | None = None,
        msg_id: str | None = None,
    ) -> str:
        """Publish `payload` to the ingress edge; the trace id to await its result by.

        A `Message` is sent as it is (its own headers and trace id); anything else
        becomes the payload of a new `Message` with `headers` (default: the
        client's) and `trace_id` (default: a fresh one). `msg_id` is the bus
        message id (default: a fresh one; NATS drops a repeated id inside its
        duplicate window). Raises `PublishError` when the broker did not store it.
        """
        self._check_running()
        if isinstance(payload, Message):
            if headers is not None or trace_id is not None:
                raise InvalidBusOptionError(
                    "a Message brings its own headers and trace id: set them on the message",
                    option="headers" if headers is not None else "trace_id",
                    value=headers if headers is not None else trace_id,
                )
            message = payload
        else:
            fields: dict[str, Any] = {} if trace_id is None else {"trace_id": trace_id}
            message = Message(
                payload=payload, headers=headers if headers is not None else self._headers, **fields
            )
        key = message.trace_id
        if key in self._waiting:
            raise InvalidBusOptionError(
                f"trace {key!r} is already waiting for its result in this client",
                option="trace_id",
                value=key,
            )
        self._waiting[key] = asyncio.get_running_loop().create_future()
        envelope = BusEnvelope(
            edge=self._ingress,
            source=None,
            target=self._ingress,
            trace_id=key,
            payload=message,
            headers=message.headers.model_dump(),
            meta=dict(message.meta),
        )
        try:
            await self._bus.publish(envelope, msg_id=msg_id)
        except BaseException:
            self._forget(key)
            raise
        return key

    async def result(self, trace_id: str, *, timeout_s: float | None = None) -> Message:
        """The result `Message` of trace `trace_id`, once a worker published it.

        Raises the trace's `FlowError` when it failed in the worker, and
        `ResultTimeoutError` when nothing came within `timeout_s` (the client keeps
        waiting for it: call again). For a trace this client did not submit, only
        a result published after this call is seen.
        """
        self._check_running()
        future = self._waiting.get(trace_id)
        if future is None:
            future = self._waiting[trace_id] = asyncio.get_running_loop().create_future()
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            if future.done():  # it came just as the wait ended
                return self._take(trace_id, future)
            raise ResultTimeoutError(
                f"no result for trace {trace_id!r} within {timeout_s} s on edge "
                f"{self._egress!r}: are workers consuming {self._ingress!r}?",
                trace_id=trace_id,
                timeout_s=timeout_s if timeout_s is not None else 0.0,
            ) from None
        except BaseException:
            if future.done():
                self._forget(trace_id)  # its outcome (an error) was delivered
            raise
        self._forget(trace_id)
        return result

    async def call(
        self,
        payload: Any,
        *,
        timeout_s: float | None = None,
        headers: Headers | None = None,
        trace_id: str | None = None,
    ) -> Message:
        """`submit` then `result`: the result `Message` of one payload.

        Raises as `result` does; after a timeout the client stops waiting for it.
        """
        key = await self.submit(payload, headers=headers, trace_id=trace_id)
        try:
            return await self.result(key, timeout_s=timeout_s)
        finally:
            self._forget(key)

    # -- internals ---------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._reader is None or self._closed:
            state = "closed" if self._closed else "not started"
            raise BusError(
                f"this BusClient is {state}: use it as `async with BusClient(...)` "
                "(or call start() first)",
                operation="submit",
            )

    def _take(self, trace_id: str, future: asyncio.Future[Message]) -> Message:
        self._forget(trace_id)
        return future.result()

    def _forget(self, trace_id: str) -> None:
        future = self._waiting.pop(trace_id, None)
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # retrieved: no "exception was never retrieved" warning
        elif future is not None:
            future.cancel()

    def _settle_all(self, error: BaseException) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
            if not future.cancelled():
                future.exception()  # whoever waits sees it; nobody else warns about it

    async def _read(self) -> None:
        try:
            await self._bus.consume(
                self._egress, self._group, self._on_result, batch=64, poll_ms=100, stop=self._stop
            )
        except Exception as exc:  # the broker failed: every waiter learns it
            self._failure = exc
            fields = {"edge": self._egress, "group": self._group, "error": repr(exc)}
            logger.error(LogLine("bus_client_read_failed"), fields, extra=fields)
            self._settle_all(exc)

    async def _on_result(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        future = self._waiting.get(envelope.trace_id or "")
        if future is None or future.done():
            return  # another client's trace, or a repeated result
        payload = envelope.payload
        if isinstance(payload, FlowError):
            future.set_exception(payload)
        elif isinstance(payload, Message):
            future.set_result(payload)
        else:
            future.set_exception(
                BusError(
                    f"the result of trace {envelope.trace_id!r} is a {type(payload).__name__}, "
                    "not a Message",
                    operation="result",
                    edge=self._egress,
                )
            )


def open_bus(url: str, *, prefix: str = "penguiflow", stream: str | None = None) -> BrokerBus:
    """The shipped bus a URL names: `RedisStreamsBus` for `redis://`, `rediss://` and
    `unix://`, `NatsJetStreamBus` (on JetStream stream `stream`, default `PENGUIFLOW`)
    for `nats://`, `tls://`, `ws://` and `wss://`. Not connected yet."""
    scheme = urlsplit(url).scheme if "://" in url or url.startswith("unix:") else ""
    if scheme in REDIS_SCHEMES:
        if stream is not None:
            raise InvalidBusOptionError(
                "stream applies to a NATS bus only", option="stream", value=stream
            )
        from .redis_streams import RedisStreamsBus as Redis

        return Redis(url, prefix=prefix)
    if scheme in NATS_SCHEMES:
        return NatsJetStreamBus(url, stream=stream or "PENGUIFLOW", prefix=prefix)
    raise InvalidBusOptionError(
        f"{redact(url)!r} is not a bus URL: use {REDIS_FORMS} for Redis Streams, or "
        f"{NATS_FORMS} for NATS JetStream",
        option="url",
        value=redact(url),
    )
