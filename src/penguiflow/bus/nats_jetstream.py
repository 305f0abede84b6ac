"""`NatsJetStreamBus`: envelopes on NATS JetStream, consumed by durable pull consumers.

`publish` sends each envelope to the subject of its edge (`<prefix>.<edge>`, the edge
name escaped into one subject token) with a `Nats-Msg-Id`, so JetStream drops a
re-published duplicate inside the stream's duplicate window. `consume` reads with a
durable consumer and explicit acks: the entry is acknowledged after the handler
returns; a consumer that dies leaves it unacknowledged and JetStream redelivers it
after `ack_wait_s`; after `max_deliveries` failed attempts it is published to the
dead-letter subject `<prefix>.dead.<edge>` and terminated.

Payloads are JSON, exactly as for `RedisStreamsBus` (`Message` payloads rebuilt).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote

from ._codec import Delivery, Handler, decode_envelope, encode_envelope
from .protocol import BusEnvelope

__all__ = ["NatsJetStreamBus"]

logger = logging.getLogger("penguiflow.bus")


def _token(edge: str) -> str:
    """An edge name as one NATS subject token (no `.`, `*`, `>` or whitespace)."""
    return quote(edge, safe="").replace(".", "%2E")


class NatsJetStreamBus:
    """A `MessageBus` on NATS JetStream, with at-least-once durable consumers."""

    def __init__(
        self,
        servers: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "PENGUIFLOW",
        prefix: str = "penguiflow",
        duplicate_window_s: float = 120.0,
    ) -> None:
        for name, value in (("stream", stream), ("prefix", prefix)):
            if not value or any(c in value for c in ".*> \t\n"):
                raise ValueError(f"{name} must be one NATS token, got {value!r}")
        self._servers = servers
        self._stream = stream
        self._prefix = prefix
        self._duplicate_window_s = duplicate_window_s
        self._nc: Any = None
        self._js: Any = None

    def __repr__(self) -> str:
        return f"NatsJetStreamBus(stream={self._stream!r}, prefix={self._prefix!r})"

    def subject(self, edge: str) -> str:
        return f"{self._prefix}.{_token(edge)}"

    def dead_letter_subject(self, edge: str) -> str:
        return f"{self._prefix}.dead.{_token(edge)}"

    async def _jetstream(self) -> Any:
        if self._js is not None:
            return self._js
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import BadRequestError

        self._nc = await nats.connect(self._servers, connect_timeout=5, max_reconnect_attempts=3)
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
        if self._nc is not None:
            await self._nc.flush()  # every publish is on the server before we go
            await self._nc.close()
            self._nc = None
            self._js = None

    async def delete_stream(self) -> None:
        """Remove the stream and everything in it (tests, teardown)."""
        js = await self._jetstream()
        await js.delete_stream(self._stream)
        self._js = None

    async def publish(self, envelope: BusEnvelope, *, msg_id: str | None = None) -> None:
        """Send the envelope; the same `msg_id` published twice is stored once."""
        js = await self._jetstream()
        fields = encode_envelope(envelope)
        if msg_id is not None:
            fields["id"] = msg_id
        await js.publish(
            self.subject(envelope.edge),
            fields["body"].encode("utf-8"),
            headers={"Nats-Msg-Id": fields["id"]},
        )

    async def consume(
        self,
        edge: str,
        durable: str,
        handler: Handler,
        *,
        batch: int = 16,
        ack_wait_s: float = 30.0,
        max_deliveries: int = 5,
        fetch_timeout_s: float = 0.2,
        stop: asyncio.Event | None = None,
        concurrency: int = 1,
    ) -> None:
        """Run `handler` for the edge's messages until `stop` is set (or cancelled).

        With `concurrency > 1`, up to that many messages of a fetch are handled at
        once (no order between them); each is acked after its own handler returns.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig

        js = await self._jetstream()
        subscription = await js.pull_subscribe(
            self.subject(edge),
            durable=durable,
            stream=self._stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait_s,
                max_deliver=max_deliveries + 1,
            ),
        )
        stop = stop or asyncio.Event()
        gate = asyncio.Semaphore(concurrency)  # 1: one at a time, in fetch order

        async def deliver(message: Any) -> None:
            async with gate:
                await self._deliver(edge, message, handler, max_deliveries)

        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=fetch_timeout_s)
            except (TimeoutError, NatsTimeout):
                continue
            await asyncio.gather(*(deliver(message) for message in messages))

    async def _deliver(
        self, edge: str, message: Any, handler: Handler, max_deliveries: int
    ) -> None:
        deliveries = int(message.metadata.num_delivered)
        msg_id = (message.headers or {}).get("Nats-Msg-Id") or uuid.uuid4().hex
        fields = {"id": msg_id, "body": message.data.decode("utf-8", "replace")}
        if deliveries > max_deliveries:
            await self._dead_letter(edge, message, deliveries)
            return
        try:
            _, envelope = decode_envelope(fields)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("bus_undecodable_entry", extra={"edge": edge, "error": repr(exc)})
            await self._dead_letter(edge, message, deliveries)
            return
        try:
            await handler(Delivery(msg_id=msg_id, envelope=envelope, deliveries=deliveries))
        except Exception as exc:
            logger.warning("bus_handler_failed", extra={"edge": edge, "error": repr(exc)})
            if deliveries >= max_deliveries:
                await self._dead_letter(edge, message, deliveries)
            else:
                await message.nak()
            return
        await message.ack()

    async def _dead_letter(self, edge: str, message: Any, deliveries: int) -> None:
        js = await self._jetstream()
        headers = dict(message.headers or {})
        # A fresh id: the original one would be dropped as a duplicate by JetStream.
        headers["Nats-Msg-Id"] = f"dead-{headers.get('Nats-Msg-Id', uuid.uuid4().hex)}"
        await js.publish(self.dead_letter_subject(edge), message.data, headers=headers)
        await message.term()
        logger.error("bus_dead_letter", extra={"edge": edge, "deliveries": deliveries})
