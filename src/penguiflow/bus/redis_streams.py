"""`RedisStreamsBus`: envelopes on Redis Streams, consumed by consumer groups.

`publish` appends each envelope to the stream of its edge (`<prefix>:<edge>`).
`consume` reads a stream as one consumer of a group: the handler runs, then the
entry is acknowledged, so a consumer that dies mid-handler leaves its entries
pending; any live consumer reclaims them after `claim_idle_ms` (`XAUTOCLAIM`). An
entry delivered `max_deliveries` times without success goes to the dead-letter
stream `<prefix>:dead:<edge>` and is acknowledged. Entries carry a unique `id`
(`msg_id`), so a handler can make its effect idempotent.

Payloads are JSON: a penguiflow `Message` is rebuilt as a `Message`; any other payload
must be JSON data (a pydantic model is sent as its JSON dump). Nothing is unpickled
and no class named in the data is imported.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._codec import Delivery, Handler, decode_envelope, encode_envelope
from .protocol import BusEnvelope

__all__ = ["Delivery", "RedisStreamsBus"]  # Delivery re-exported for consumers

logger = logging.getLogger("penguiflow.bus")


class RedisStreamsBus:
    """A `MessageBus` on Redis Streams, with at-least-once consumer groups."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "penguiflow",
        maxlen: int | None = None,
    ) -> None:
        if not prefix or any(c in prefix for c in "*?[] \n"):
            raise ValueError(f"prefix must be non-empty without glob characters, got {prefix!r}")
        self._url = url
        self._prefix = prefix
        self._maxlen = maxlen
        self._client: Any = None

    def __repr__(self) -> str:
        return f"RedisStreamsBus(prefix={self._prefix!r})"

    def stream(self, edge: str) -> str:
        """The stream key of an edge (e.g. `penguiflow:triage->retrieve`)."""
        return f"{self._prefix}:{edge}"

    def dead_letter_stream(self, edge: str) -> str:
        return f"{self._prefix}:dead:{edge}"

    async def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self._url, decode_responses=True)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, envelope: BusEnvelope) -> None:
        """Append the envelope to its edge's stream."""
        client = await self._redis()
        await client.xadd(
            self.stream(envelope.edge),
            encode_envelope(envelope),
            maxlen=self._maxlen,
            approximate=self._maxlen is not None,
        )

    async def ensure_group(self, edge: str, group: str) -> None:
        """Create the consumer group (from the start of the stream) if it is missing."""
        from redis.exceptions import ResponseError

        client = await self._redis()
        try:
            await client.xgroup_create(self.stream(edge), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume(
        self,
        edge: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        count: int = 16,
        block_ms: int = 200,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        stop: asyncio.Event | None = None,
        concurrency: int = 1,
    ) -> None:
        """Run `handler` for the edge's entries until `stop` is set (or cancelled).

        Each entry is acknowledged after its handler returns. A handler that raises
        leaves the entry pending: it is retried once idle for `claim_idle_ms`, and
        dead-lettered after `max_deliveries` attempts. With `concurrency > 1`, up to
        that many entries of a read are handled at once (no order between them).
        Pending entries of dead consumers are reclaimed a few times per
        `claim_idle_ms`, not on every read.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        await self.ensure_group(edge, group)
        client = await self._redis()
        key = self.stream(edge)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        claim_every = max(claim_idle_ms / 4000, 0.05)
        next_claim = 0.0
        gate = asyncio.Semaphore(concurrency)

        async def deliver(entry_id: str, fields: Any, deliveries: int | None) -> None:
            async with gate:
                if fields is None:  # trimmed away while pending
                    await client.xack(key, group, entry_id)
                    return
                await self._deliver(
                    client, key, edge, group, entry_id, fields, handler, max_deliveries, deliveries
                )

        while not stop.is_set():
            entries: list[Any] = []
            fresh = False
            if loop.time() >= next_claim:
                claimed = await client.xautoclaim(
                    key, group, consumer, min_idle_time=claim_idle_ms, start_id="0-0", count=count
                )
                entries = list(claimed[1])
                if not entries:
                    next_claim = loop.time() + claim_every
            if not entries:
                response = await client.xreadgroup(
                    group, consumer, {key: ">"}, count=count, block=block_ms
                )
                entries = [entry for _, items in response for entry in items]
                fresh = True
            deliveries = 1 if fresh else None  # fresh reads are first deliveries
            await asyncio.gather(*(deliver(eid, fields, deliveries) for eid, fields in entries))

    async def _deliver(
        self,
        client: Any,
        key: str,
        edge: str,
        group: str,
        entry_id: str,
        fields: dict[str, str],
        handler: Handler,
        max_deliveries: int,
        deliveries: int | None = None,
    ) -> None:
        if deliveries is None:  # a reclaimed entry: ask how often it was delivered
            pending = await client.xpending_range(key, group, min=entry_id, max=entry_id, count=1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
        if deliveries > max_deliveries:
            await client.xadd(self.dead_letter_stream(edge), {**fields, "entry": entry_id})
            await client.xack(key, group, entry_id)
            logger.error(
                "bus_dead_letter", extra={"edge": edge, "entry": entry_id, "deliveries": deliveries}
            )
            return
        try:
            msg_id, envelope = decode_envelope(fields)
        except (ValueError, KeyError, TypeError) as exc:
            await client.xadd(self.dead_letter_stream(edge), {**fields, "entry": entry_id})
            await client.xack(key, group, entry_id)
            logger.error("bus_undecodable_entry", extra={"edge": edge, "error": repr(exc)})
            return
        try:
            await handler(Delivery(msg_id=msg_id, envelope=envelope, deliveries=deliveries))
        except Exception as exc:
            logger.warning(
                "bus_handler_failed",
                extra={"edge": edge, "entry": entry_id, "error": repr(exc)},
            )
            return  # stays pending: reclaimed and retried later
        await client.xack(key, group, entry_id)
