"""`NatsJetStreamBus`: envelopes on NATS JetStream, consumed by durable pull consumers.

`publish` sends each envelope to the subject of its edge (`<prefix>.<edge>`, the edge
name escaped into one subject token) with its message id as `Nats-Msg-Id`, so
JetStream drops a re-published duplicate inside the stream's duplicate window.
Concurrent publishes are written together and their confirmations awaited together.
`consume` reads with a durable consumer per group and edge (`durable_name`) and
explicit acks, fetching a batch per request: a message is acknowledged after its
handler returns; a consumer that dies leaves it unacknowledged and JetStream
redelivers it after `claim_idle_ms` (the consumer's ack wait); a failing handler's
message is redelivered at once; after `max_deliveries` attempts it is published to
the dead-letter subject `<prefix>.dead.<edge>` and terminated.

Payloads are JSON, exactly as for `RedisStreamsBus` (`Message` payloads rebuilt).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from ._batching import Batcher
from ._codec import check_msg_id, encode_body, new_msg_id
from ._consumer import Received, check_consume_options, run_consumer
from .errors import BrokerUnavailableError, BusError, InvalidBusOptionError, PublishError
from .protocol import BusEnvelope, BusStats, GroupStatus, Handler

__all__ = ["NatsJetStreamBus", "durable_name"]

T = TypeVar("T")

_MSG_ID = "Nats-Msg-Id"


def _token(edge: str) -> str:
    """An edge name as one NATS subject token (no `.`, `*`, `>` or whitespace)."""
    return quote(edge, safe="").replace(".", "%2E")


def durable_name(group: str, edge: str) -> str:
    """The durable consumer of `group` on `edge` (one per edge: a durable has one
    filter subject). Unsafe characters become `_`, plus a short hash of the edge."""
    name = f"{group}_{edge}"
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(edge.encode("utf-8")).hexdigest()[:8]
    return safe


class _BrokerCall(Protocol):
    async def __call__(self, operation: str, edge: str | None, call: Awaitable[T]) -> T: ...


_Translated = Callable[[str, str | None], AbstractContextManager[None]]


@dataclass(slots=True)
class _Outgoing:
    subject: str
    edge: str
    msg_id: str
    body: bytes


class NatsJetStreamBus:
    """A `ConsumerBus` on NATS JetStream, with at-least-once durable consumers."""

    def __init__(
        self,
        servers: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "PENGUIFLOW",
        prefix: str = "penguiflow",
        duplicate_window_s: float = 120.0,
        publish_timeout_s: float = 10.0,
    ) -> None:
        for name, value in (("stream", stream), ("prefix", prefix)):
            if not value or any(c in value for c in ".*> \t\n"):
                raise InvalidBusOptionError(
                    f"{name} must be one NATS token, got {value!r}", option=name, value=value
                )
        self._servers = servers
        self._stream = stream
        self._prefix = prefix
        self._duplicate_window_s = duplicate_window_s
        self._publish_timeout_s = publish_timeout_s
        self._nc: Any = None
        self._js: Any = None
        self._stats = BusStats()
        self._publisher: Batcher[_Outgoing] = Batcher(self._send, self._publish_error)

    def __repr__(self) -> str:
        return f"NatsJetStreamBus(stream={self._stream!r}, prefix={self._prefix!r})"

    @property
    def stream_name(self) -> str:
        """The JetStream stream holding every subject of this bus."""
        return self._stream

    @property
    def stats(self) -> BusStats:
        """This object's counters (see `BusStats`)."""
        return self._stats

    def subject(self, edge: str) -> str:
        """The subject of an edge (e.g. `penguiflow.triage-%3Eretrieve`)."""
        return f"{self._prefix}.{_token(edge)}"

    def dead_letter_subject(self, edge: str) -> str:
        """The subject where the edge's failed messages go (`<prefix>.dead.<edge>`)."""
        return f"{self._prefix}.dead.{_token(edge)}"

    async def jetstream(self) -> Any:
        """The `JetStreamContext`, connected and with the stream in place (first use)."""
        if self._js is not None:
            return self._js
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import BadRequestError

        with self._translated("connect", None):
            self._nc = await nats.connect(
                self._servers, connect_timeout=5, max_reconnect_attempts=3
            )
            js = self._nc.jetstream()
            config = StreamConfig(
                name=self._stream,
                subjects=[f"{self._prefix}.>"],
                duplicate_window=self._duplicate_window_s,
            )
            try:
                await js.add_stream(config)
            except BadRequestError:
                await js.update_stream(config)
        self._js = js
        return js

    async def close(self) -> None:
        """Wait for publishes in progress, then flush and close the connection."""
        await self._publisher.drain()
        if self._nc is not None:
            with self._translated("close", None):
                await self._nc.flush()  # acks written so far reach the server
                await self._nc.close()
            self._nc = None
            self._js = None

    async def delete_stream(self) -> None:
        """Remove the stream and everything in it (tests, teardown)."""
        js = await self.jetstream()
        await self._call("delete_stream", None, js.delete_stream(self._stream))
        self._js = None

    # -- broker calls: each one counted, and its errors translated, here -----------------

    @contextmanager
    def _translated(self, operation: str, edge: str | None) -> Iterator[None]:
        from nats.errors import ConnectionClosedError, Error, NoServersError, StaleConnectionError

        try:
            yield
        except (
            NoServersError,
            ConnectionClosedError,
            StaleConnectionError,
            TimeoutError,
            OSError,
        ) as exc:
            raise BrokerUnavailableError(
                f"NATS at {self._servers} is unreachable during {operation}: {exc!r}",
                backend="nats",
                operation=operation,
                edge=edge,
            ) from exc
        except Error as exc:
            raise BusError(
                f"NATS JetStream refused {operation} on edge {edge!r}: {exc!r}",
                backend="nats",
                operation=operation,
                edge=edge,
            ) from exc

    async def _call(self, operation: str, edge: str | None, call: Awaitable[T]) -> T:
        self._stats.round_trips += 1
        with self._translated(operation, edge):
            return await call

    # -- publishing --------------------------------------------------------------------

    async def publish(self, envelope: BusEnvelope, *, msg_id: str | None = None) -> None:
        """Send the envelope; the same `msg_id` published twice is stored once."""
        item = _Outgoing(
            self.subject(envelope.edge),
            envelope.edge,
            new_msg_id() if msg_id is None else check_msg_id(msg_id),
            encode_body(envelope).encode("utf-8"),
        )
        await self._publisher.submit(item)

    async def _send(self, items: list[_Outgoing]) -> list[BaseException | None]:
        js = await self.jetstream()
        with self._translated("publish", items[0].edge):
            acks = [
                await js.publish_async(item.subject, item.body, headers={_MSG_ID: item.msg_id})
                for item in items
            ]
        confirmed = asyncio.gather(*acks, return_exceptions=True)
        outcomes = await self._call(
            "publish", None, asyncio.wait_for(confirmed, self._publish_timeout_s)
        )
        failures = [o if isinstance(o, BaseException) else None for o in outcomes]
        self._stats.published += failures.count(None)
        return failures

    @staticmethod
    def _publish_error(item: _Outgoing, exc: BaseException) -> BaseException:
        error = PublishError(
            f"NATS JetStream did not confirm message {item.msg_id} on edge {item.edge!r}: {exc!r}",
            backend="nats",
            edge=item.edge,
            msg_id=item.msg_id,
        )
        error.__cause__ = exc
        return error

    # -- consuming ---------------------------------------------------------------------

    async def consume(
        self,
        edge: str,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        batch: int = 16,
        concurrency: int = 1,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        poll_ms: int = 200,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run `handler` for the edge's messages until `stop` (see `ConsumerBus.consume`).

        Every member of `group` shares the durable `durable_name(group, edge)`;
        `consumer` only names this member in logs (JetStream does not track members).
        """
        check_consume_options(
            batch=batch,
            concurrency=concurrency,
            claim_idle_ms=claim_idle_ms,
            max_deliveries=max_deliveries,
            poll_ms=poll_ms,
        )
        from nats.js.api import AckPolicy, ConsumerConfig

        js = await self.jetstream()
        subscription = await self._call(
            "subscribe",
            edge,
            js.pull_subscribe(
                self.subject(edge),
                durable=durable_name(group, edge),
                stream=self._stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=claim_idle_ms / 1000,
                    max_deliver=max_deliveries + 1,
                ),
            ),
        )
        inbox = _NatsInbox(
            js,
            subscription,
            self._call,
            self._translated,
            edge=edge,
            stream=self._stream,
            dead_subject=self.dead_letter_subject(edge),
            poll_s=poll_ms / 1000,
        )
        try:
            await run_consumer(
                inbox,
                handler,
                edge=edge,
                batch=batch,
                concurrency=concurrency,
                max_deliveries=max_deliveries,
                stop=stop,
                stats=self._stats,
            )
        finally:
            with self._translated("unsubscribe", edge):
                await subscription.unsubscribe()

    async def group_status(self, edge: str, group: str) -> GroupStatus:
        """The backlog of `group` on `edge` (see `GroupStatus`)."""
        js = await self.jetstream()
        info = await self._call(
            "group_status", edge, js.consumer_info(self._stream, durable_name(group, edge))
        )
        return GroupStatus(unacked=int(info.num_ack_pending), undelivered=int(info.num_pending))


class _NatsInbox:
    """One member of a durable pull consumer on one edge (the consume loop's `Inbox`)."""

    def __init__(
        self,
        js: Any,
        subscription: Any,
        call: _BrokerCall,
        translated: _Translated,
        *,
        edge: str,
        stream: str,
        dead_subject: str,
        poll_s: float,
    ) -> None:
        self._js = js
        self._subscription = subscription
        self._broker_call = call
        self._translated = translated
        self._edge = edge
        self._stream = stream
        self._dead_subject = dead_subject
        self._poll_s = poll_s

    async def read(self, count: int) -> Sequence[Received[Any]]:
        messages = await self._broker_call("read", self._edge, self._fetch(count))
        received = []
        for message in messages:
            metadata = message.metadata
            msg_id = (message.headers or {}).get(_MSG_ID)
            if not msg_id:  # published without an id: its stream sequence is stable
                msg_id = f"{self._stream}-{metadata.sequence.stream}"
            received.append(Received(message, msg_id, message.data, int(metadata.num_delivered)))
        return received

    async def _fetch(self, count: int) -> list[Any]:
        try:
            messages: list[Any] = await self._subscription.fetch(count, timeout=self._poll_s)
        except TimeoutError:  # nothing to read within the poll time
            return []
        return messages

    async def ack(self, handles: list[Any]) -> None:
        # Acks are written without waiting for a reply (no round trip): a lost ack
        # means a redelivery, which at-least-once allows.
        with self._translated("ack", self._edge):
            for message in handles:
                await message.ack()

    async def retry(self, received: Received[Any]) -> None:
        with self._translated("retry", self._edge):
            await received.handle.nak()

    async def dead_letter(self, received: Received[Any], reason: str) -> None:
        message = received.handle
        headers = dict(message.headers or {})
        # A fresh id: the original one would be dropped as a duplicate by JetStream.
        headers[_MSG_ID] = f"dead-{received.msg_id}"
        headers["Penguiflow-Dead-Reason"] = reason
        await self._broker_call(
            "dead_letter",
            self._edge,
            self._js.publish(self._dead_subject, message.data, headers=headers),
        )
        with self._translated("dead_letter", self._edge):
            await message.term()
