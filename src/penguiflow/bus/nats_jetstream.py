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
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any, Literal
from urllib.parse import quote

from .._logfmt import LogLine
from ..errors import MissingExtraError
from ._broker import BrokerBus, BrokerCall, Outgoing
from ._consumer import Received
from ._urls import check_nats_url, redact
from .errors import BrokerUnavailableError, BusError, InvalidBusOptionError
from .protocol import GroupStatus

__all__ = ["NatsJetStreamBus", "durable_name"]

logger = logging.getLogger("penguiflow.bus")

_MSG_ID = "Nats-Msg-Id"
_STATUS = "Status"  # the header nats-py puts an inline status in


def _token(edge: str) -> str:
    """An edge name as one NATS subject token (no `.`, `*`, `>` or whitespace)."""
    return quote(edge, safe="").replace(".", "%2E")


def _ack_subject_counts(reply: str) -> tuple[int, int]:
    """(delivery count, stream sequence) from a JetStream ack subject.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
    or with `<domain>.<account hash>` after `ACK` (and a token at the end) on newer
    servers. Read here rather than through `Msg.metadata`, which builds a dozen
    objects per message.
    """
    tokens = reply.split(".")
    first = 4 if len(tokens) == 9 else 6
    return int(tokens[first]), int(tokens[first + 1])


def durable_name(group: str, edge: str) -> str:
    """The durable consumer of `group` on `edge` (one per edge: a durable has one
    filter subject). Unsafe characters become `_`, plus a short hash of the edge."""
    name = f"{group}_{edge}"
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(edge.encode("utf-8")).hexdigest()[:8]
    return safe


_Translated = Callable[[str, str | None], AbstractContextManager[None]]


class NatsJetStreamBus(BrokerBus):
    """A `ConsumerBus` on NATS JetStream, with at-least-once durable consumers.

    Every member of a group shares the durable `durable_name(group, edge)`; the
    `consumer` name only labels a member (JetStream does not track members).
    `servers` is one URL, `nats://HOST[:PORT]`, `tls://...`, `ws://...` or `wss://...`;
    another form raises `InvalidBusOptionError` here. Nothing connects before the
    first call (or `connect()`).
    """

    backend = "nats"

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
        super().__init__()
        self._servers = check_nats_url(servers)
        self._stream = stream
        self._prefix = prefix
        self._duplicate_window_s = duplicate_window_s
        self._publish_timeout_s = publish_timeout_s
        self._nc: Any = None
        self._js: Any = None
        self._confirmations: _Confirmations | None = None
        self._subjects: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"NatsJetStreamBus(stream={self._stream!r}, prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The first token of every subject this bus publishes to (`<prefix>.*`)."""
        return self._prefix

    @property
    def stream_name(self) -> str:
        """The JetStream stream holding every subject of this bus."""
        return self._stream

    def subject(self, edge: str) -> str:
        """The subject of an edge (e.g. `penguiflow.triage-%3Eretrieve`)."""
        subject = self._subjects.get(edge)
        if subject is None:  # escaping is slow next to a publish: once per edge
            subject = self._subjects[edge] = f"{self._prefix}.{_token(edge)}"
        return subject

    def dead_letter_subject(self, edge: str) -> str:
        """The subject where the edge's failed messages go (`<prefix>.dead.<edge>`)."""
        return f"{self._prefix}.dead.{_token(edge)}"

    async def jetstream(self) -> Any:
        """The `JetStreamContext`, connected and with the stream in place (first use)."""
        if self._js is not None:
            return self._js
        try:
            import nats
        except ImportError as exc:
            raise MissingExtraError(
                "nats-py is not installed: pip install 'penguiflow[nats]' to use NatsJetStreamBus",
                extra="nats",
            ) from exc
        from nats.js.api import StreamConfig
        from nats.js.errors import BadRequestError

        with self._translated("connect", None):
            self._nc = await nats.connect(
                self._servers,
                connect_timeout=5,
                max_reconnect_attempts=3,
                error_cb=self._on_connection_error,
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

    async def connect(self) -> None:
        """Connect and put the stream in place now; raises `BrokerUnavailableError`."""
        await self.jetstream()

    async def _on_connection_error(self, exc: Exception) -> None:
        # nats-py's own handler logs each failed attempt with its traceback. While
        # connecting, the error `connect` raises reports them; once connected, a lost
        # connection (nats-py reconnects) is a warning.
        fields = {"servers": redact(self._servers), "error": repr(exc)}
        level = logging.WARNING if self._nc is not None else logging.DEBUG
        logger.log(level, LogLine("bus_nats_connection_error"), fields, extra=fields)

    async def _disconnect(self) -> None:
        if self._nc is not None:
            with self._translated("close", None):
                await self._nc.flush()  # acks written so far reach the server
                await self._nc.close()
            self._nc = None
            self._js = None
            self._confirmations = None

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
                f"cannot reach NATS at {redact(self._servers)} during {operation} ({exc!r}); "
                "check that the server is running with JetStream and the URL is right",
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

    async def _send(self, items: list[Outgoing]) -> list[BaseException | None]:
        await self.jetstream()
        if self._confirmations is None:
            with self._translated("publish", items[0].edge):
                self._confirmations = await _Confirmations.open(self._nc)
        confirmations = self._confirmations
        batch = confirmations.expect(len(items))
        try:
            with self._translated("publish", items[0].edge):
                for index, item in enumerate(items):
                    await self._nc.publish(
                        self.subject(item.edge),
                        item.body.encode(),
                        reply=batch.reply(index),
                        headers={_MSG_ID: item.msg_id},
                    )
            outcomes = await self._call(
                "publish", None, asyncio.wait_for(batch.done, self._publish_timeout_s)
            )
        finally:
            confirmations.forget(batch)
        self._stats.published += outcomes.count(None)
        return outcomes

    # -- consuming ---------------------------------------------------------------------

    @asynccontextmanager
    async def _inbox(
        self,
        edge: str,
        group: str,
        consumer: str,
        *,
        claim_idle_ms: int,
        max_deliveries: int,
        poll_ms: int,
    ) -> AsyncIterator[_NatsInbox]:
        js = await self.jetstream()
        durable = durable_name(group, edge)
        await self.ensure_group(
            edge, group, claim_idle_ms=claim_idle_ms, max_deliveries=max_deliveries
        )
        inbox = _NatsInbox(
            js,
            self._nc,
            self._call,
            self._translated,
            edge=edge,
            stream=self._stream,
            durable=durable,
            dead_subject=self.dead_letter_subject(edge),
            poll_ms=poll_ms,
        )
        with self._translated("subscribe", edge):
            await inbox.open()
        try:
            yield inbox
        finally:
            with self._translated("unsubscribe", edge):
                await inbox.close()

    async def ensure_group(
        self,
        edge: str,
        group: str,
        *,
        start: Literal["first", "new"] = "first",
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        inactive_s: float | None = None,
    ) -> None:
        """Create the durable consumer `durable_name(group, edge)` if it is missing.

        An existing durable is used as it is (like nats-py's `pull_subscribe`). A new
        one redelivers after `claim_idle_ms` (its ack wait), allows `max_deliveries`
        attempts (plus one to dead-letter), and starts at the edge's first message or,
        with `start="new"`, takes only those published from now on. With `inactive_s`
        the server deletes it once no member has read for that long.
        """
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        js = await self.jetstream()
        durable = durable_name(group, edge)
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=self.subject(edge),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=claim_idle_ms / 1000,
            max_deliver=max_deliveries + 1,
            deliver_policy=DeliverPolicy.ALL if start == "first" else DeliverPolicy.NEW,
            inactive_threshold=inactive_s,
        )
        try:
            await self._call("subscribe", edge, js.consumer_info(self._stream, durable))
        except BusError as exc:
            if not isinstance(exc.__cause__, NotFoundError):
                raise
            await self._call("subscribe", edge, js.add_consumer(self._stream, config))

    async def delete_group(self, edge: str, group: str) -> None:
        """Delete the durable consumer of `group` on `edge`, if there is one."""
        from nats.js.errors import NotFoundError

        js = await self.jetstream()
        try:
            await self._call(
                "delete_group", edge, js.delete_consumer(self._stream, durable_name(group, edge))
            )
        except BusError as exc:
            if not isinstance(exc.__cause__, NotFoundError):
                raise

    async def group_status(self, edge: str, group: str) -> GroupStatus:
        """The backlog of `group` on `edge` (JetStream does not know it per member)."""
        js = await self.jetstream()
        info = await self._call(
            "group_status", edge, js.consumer_info(self._stream, durable_name(group, edge))
        )
        return GroupStatus(unacked=int(info.num_ack_pending), undelivered=int(info.num_pending))


class _Batch:
    """The confirmations awaited for one batch of publishes."""

    def __init__(self, prefix: str, token: str, size: int) -> None:
        self.token = token
        self.outcomes: list[BaseException | None] = [None] * size
        self.done: asyncio.Future[list[BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._prefix = f"{prefix}.{token}."
        self._missing = size

    def reply(self, index: int) -> str:
        return f"{self._prefix}{index}"

    def confirm(self, index: int, error: BaseException | None) -> None:
        self.outcomes[index] = error
        self._missing -= 1
        if self._missing == 0 and not self.done.done():
            self.done.set_result(self.outcomes)


class _Confirmations:
    """JetStream's replies to this connection's publishes, matched to their batch.

    Every publish of a batch asks for its reply on `<inbox>.<batch>.<index>`; one
    subscription takes them all, so a batch costs one wait however large it is.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._batches: dict[str, _Batch] = {}
        self._serial = 0

    @classmethod
    async def open(cls, nc: Any) -> _Confirmations:
        confirmations = cls(nc.new_inbox())
        await nc.subscribe(f"{confirmations._prefix}.>", cb=confirmations._on_reply)
        return confirmations

    def expect(self, size: int) -> _Batch:
        self._serial += 1
        batch = _Batch(self._prefix, str(self._serial), size)
        self._batches[batch.token] = batch
        return batch

    def forget(self, batch: _Batch) -> None:
        self._batches.pop(batch.token, None)

    async def _on_reply(self, msg: Any) -> None:
        token, _, index = msg.subject[len(self._prefix) + 1 :].partition(".")
        batch = self._batches.get(token)
        if batch is None:  # its batch timed out already
            return
        error: BaseException | None = None
        status = (msg.headers or {}).get(_STATUS)
        if status == "503":
            error = BusError(f"no JetStream stream takes subject {msg.subject!r}")
        elif status is not None or b'"error"' in msg.data:
            error = BusError(f"JetStream refused the message: {status} {msg.data!r}")
        batch.confirm(int(index), error)


class _NatsInbox:
    """One member of a durable pull consumer on one edge (the consume loop's `Inbox`).

    Pulls by request: one pull request open at a time, for as many messages as the
    consume loop has room for minus those already on their way, expiring after the
    poll time. Messages are taken as soon as they arrive, while the rest of their
    batch is still coming.
    """

    def __init__(
        self,
        js: Any,
        nc: Any,
        call: BrokerCall,
        translated: _Translated,
        *,
        edge: str,
        stream: str,
        durable: str,
        dead_subject: str,
        poll_ms: int,
    ) -> None:
        self._js = js
        self._nc = nc
        self._broker_call = call
        self._translated = translated
        self._edge = edge
        self._stream = stream
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._dead_subject = dead_subject
        self._expires_ns = poll_ms * 1_000_000
        self._buffer: deque[Any] = deque()
        self._remaining = 0  # messages the open pull request may still bring
        # A quick pull (`no_wait`) brings what is there and then ends; the reader waits
        # for its end, so it gets whole batches. Only when one found nothing does the
        # next pull wait (`expires`) for new messages, waking the reader at the first.
        self._quick = False
        self._idle = False  # the last quick pull found nothing
        self._pause = False  # the server refused a pull for now: wait a poll first
        self._arrived = asyncio.Event()
        self._failure: BusError | None = None
        self._subscription: Any = None

    async def open(self) -> None:
        self._subscription = await self._nc.subscribe(self._nc.new_inbox(), cb=self._on_message)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        while self._buffer:  # arrived after the last read: hand them back at once
            await self._buffer.popleft().nak()

    async def _on_message(self, msg: Any) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            self._buffer.append(msg)
            self._remaining = max(0, self._remaining - 1)
            if self._quick and self._remaining:
                return  # the rest of the quick pull follows at once: wake at its end
        elif status == "100":  # idle heartbeat
            return
        elif status in ("404", "408"):  # no messages / the request expired
            self._remaining = 0
        else:
            description = (msg.headers or {}).get("Description", "")
            self._remaining = 0
            self._pause = True  # e.g. 409 Exceeded MaxWaiting: asking again at once would spin
            if status != "409" or "Deleted" in description:
                self._failure = BusError(
                    f"JetStream ended the pull on edge {self._edge!r}: {status} {description}",
                    backend="nats",
                    operation="read",
                    edge=self._edge,
                )
        self._arrived.set()

    async def read(self, count: int) -> Sequence[Received[Any]]:
        if self._failure is not None:
            raise self._failure
        if self._pause:
            self._pause = False
            await asyncio.sleep(self._expires_ns / 1e9)
        wanted = count - len(self._buffer) - self._remaining
        if wanted > 0 and self._remaining == 0:
            self._remaining = wanted
            self._quick = not self._idle
            pull: dict[str, Any] = {"batch": wanted}
            if self._quick:
                pull["no_wait"] = True
            else:
                pull["expires"] = self._expires_ns
            reply = self._subscription.subject
            await self._broker_call(
                "read",
                self._edge,
                self._nc.publish(self._next, json.dumps(pull).encode(), reply=reply),
            )
        if not self._buffer or (self._quick and self._remaining):
            # Wait for a message (a waiting pull), or for the pull to end.
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), self._expires_ns / 1e9 * 2 + 1)
            except TimeoutError:  # the request's end was lost (a reconnect): ask again
                self._remaining = 0
        if self._remaining == 0:
            self._idle = self._quick and not self._buffer
        taken = [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]
        return [self._received(message) for message in taken]

    def _received(self, message: Any) -> Received[Any]:
        delivered, stream_seq = _ack_subject_counts(message.reply)
        msg_id = (message.headers or {}).get(_MSG_ID)
        if not msg_id:  # published without an id: its stream sequence is stable
            msg_id = f"{self._stream}-{stream_seq}"
        return Received(message, msg_id, message.data, delivered)

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
