"""`RedisStreamsBus`: envelopes on Redis Streams, consumed by consumer groups.

`publish` appends each envelope to the stream of its edge (`<prefix>:<edge>`) as an
entry `{"id": msg_id, "body": JSON}`; concurrent publishes go in one script call.
`consume` reads a stream as one consumer of a group, in batches (one script call
reads a batch; one `XACK` acknowledges a batch). A consumer that dies mid-handler
leaves its entries pending; any live consumer reclaims them once idle for
`claim_idle_ms` (`XAUTOCLAIM`). An entry delivered `max_deliveries` times without
success goes to the dead-letter stream `<prefix>:dead:<edge>` and is acknowledged.

Redis does not de-duplicate: an envelope published twice under one `msg_id` is
stored twice, and both deliveries carry that `msg_id`. The scripts name every key
they touch, but one batch may span edges, so a Redis Cluster needs the edges of a
bus in one hash slot (a `{tag}` in the prefix).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

from ..errors import MissingExtraError
from ._broker import BrokerBus, BrokerCall, Outgoing
from ._consumer import Received
from ._urls import check_redis_url, redact
from .errors import BrokerUnavailableError, BusError, InvalidBusOptionError
from .protocol import Delivery, GroupStatus

__all__ = ["Delivery", "RedisStreamsBus"]  # Delivery re-exported for existing imports

T = TypeVar("T")

# Appends a batch. ARGV[1] is maxlen ('' for none); ARGV[2] holds the entries as one
# text, "key index\nid\nbody" each, joined by "\n" (ids and bodies never hold one):
# one argument to pack instead of three per entry, which the client pays for.
_PUBLISH = """
local maxlen, text = ARGV[1], ARGV[2]
local pos, count = 1, 0
while pos <= #text do
  local a = string.find(text, '\\n', pos, true)
  local b = string.find(text, '\\n', a + 1, true)
  local c = string.find(text, '\\n', b + 1, true) or (#text + 1)
  local key = KEYS[tonumber(string.sub(text, pos, a - 1))]
  local id, body = string.sub(text, a + 1, b - 1), string.sub(text, b + 1, c - 1)
  if maxlen == '' then
    redis.call('XADD', key, '*', 'id', id, 'body', body)
  else
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'id', id, 'body', body)
  end
  pos, count = c + 1, count + 1
end
return count
"""

# Acknowledges a batch: ARGV[1] is the group, ARGV[2] the entry ids joined by "\n".
_ACK = """
local ids, acked = {}, 0
for id in string.gmatch(ARGV[2], '[^\\n]+') do
  ids[#ids + 1] = id
  if #ids == 256 then
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) end
return acked
"""

# Reads new entries without blocking, as one text "entry\nid\nbody\n..." (parsing one
# string is far cheaper for the client than a nested reply). An entry without both
# fields, or with a newline in one, comes back with empty ones: it is dead-lettered.
_READ = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[1], '>')
if not reply then return '' end
local out = {}
for _, entry in ipairs(reply[1][2]) do
  local fields, id, body = entry[2], '', ''
  for j = 1, #fields, 2 do
    if fields[j] == 'id' then id = fields[j + 1]
    elseif fields[j] == 'body' then body = fields[j + 1] end
  end
  if string.find(id, '\\n', 1, true) or string.find(body, '\\n', 1, true) then
    id, body = '', ''
  end
  out[#out + 1] = entry[1] .. '\\n' .. id .. '\\n' .. body
end
return table.concat(out, '\\n')
"""


class RedisStreamsBus(BrokerBus):
    """A `ConsumerBus` on Redis Streams, with at-least-once consumer groups.

    `url` is `redis://HOST[:PORT][/DB]`, `rediss://...` (TLS) or `unix:///PATH`;
    another form raises `InvalidBusOptionError` here. Nothing connects before the
    first call (or `connect()`).
    """

    backend = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "penguiflow",
        maxlen: int | None = None,
    ) -> None:
        if not prefix or any(c in prefix for c in "*?[] \n"):
            raise InvalidBusOptionError(
                f"prefix must be non-empty without glob characters, got {prefix!r}",
                option="prefix",
                value=prefix,
            )
        super().__init__()
        self._url = check_redis_url(url)
        self._prefix = prefix
        self._maxlen = maxlen
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RedisStreamsBus(prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The prefix of every key this bus writes (`<prefix>:*`)."""
        return self._prefix

    def stream(self, edge: str) -> str:
        """The stream key of an edge (e.g. `penguiflow:triage->retrieve`)."""
        return f"{self._prefix}:{edge}"

    def dead_letter_stream(self, edge: str) -> str:
        """The stream where the edge's failed entries go (`<prefix>:dead:<edge>`)."""
        return f"{self._prefix}:dead:{edge}"

    async def redis(self) -> Any:
        """The `redis.asyncio.Redis` client of this bus (created on first use)."""
        if self._client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:
                raise MissingExtraError(
                    "redis is not installed: pip install 'penguiflow[redis]' to use "
                    "RedisStreamsBus",
                    extra="redis",
                ) from exc

            self._client = aioredis.Redis.from_url(self._url, decode_responses=True)
            self._scripts = {
                "publish": self._client.register_script(_PUBLISH),
                "read": self._client.register_script(_READ),
                "ack": self._client.register_script(_ACK),
            }
        return self._client

    async def connect(self) -> None:
        """Reach Redis now (one `PING`); raises `BrokerUnavailableError` if it cannot."""
        client = await self.redis()
        await self._call("connect", None, client.ping())

    async def _disconnect(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- broker calls: each one counted, and its errors translated, here -----------------

    @contextmanager
    def _translated(self, operation: str, edge: str | None) -> Iterator[None]:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BrokerUnavailableError(
                f"cannot reach Redis at {redact(self._url)} during {operation} ({exc}); "
                "check that the server is running and the URL is right",
                backend="redis",
                operation=operation,
                edge=edge,
            ) from exc
        except RedisError as exc:
            raise BusError(
                f"Redis refused {operation} on edge {edge!r}: {exc}",
                backend="redis",
                operation=operation,
                edge=edge,
            ) from exc

    async def _script(self, name: str, edge: str | None, keys: list[str], args: list[Any]) -> Any:
        await self.redis()
        return await self._call(name, edge, self._scripts[name](keys=keys, args=args))

    # -- publishing --------------------------------------------------------------------

    async def _send(self, items: list[Outgoing]) -> None:
        keys: dict[str, int] = {}
        entries = []
        for item in items:
            index = keys.setdefault(self.stream(item.edge), len(keys) + 1)
            entries.append(f"{index}\n{item.msg_id}\n{item.body}")
        maxlen = "" if self._maxlen is None else self._maxlen
        edge = items[0].edge if len(keys) == 1 else None
        await self._script("publish", edge, list(keys), [maxlen, "\n".join(entries)])
        self._stats.published += len(items)

    # -- consuming ---------------------------------------------------------------------

    async def ensure_group(
        self,
        edge: str,
        group: str,
        *,
        start: Literal["first", "new"] = "first",
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
    ) -> None:
        """Create the consumer group (and the stream) if it is missing.

        A new group starts at the stream's first entry, or with `start="new"` after its
        last one. `claim_idle_ms` and `max_deliveries` are options of each read on
        Redis, not of the group: they take effect in `consume`.
        """
        client = await self.redis()  # first: raises MissingExtraError without the driver
        from redis.exceptions import ResponseError

        first = "0" if start == "first" else "$"
        try:
            await self._call(
                "ensure_group",
                edge,
                client.xgroup_create(self.stream(edge), group, id=first, mkstream=True),
            )
        except BusError as exc:
            if not isinstance(exc.__cause__, ResponseError) or "BUSYGROUP" not in str(exc):
                raise

    async def delete_group(self, edge: str, group: str) -> None:
        """Remove the consumer group and its pending entries (`XGROUP DESTROY`)."""
        client = await self.redis()
        key = self.stream(edge)
        if await self._call("delete_group", edge, client.exists(key)):
            await self._call("delete_group", edge, client.xgroup_destroy(key, group))

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
    ) -> AsyncIterator[_RedisInbox]:
        # Pending entries of dead consumers are reclaimed a few times per
        # `claim_idle_ms`, not on every read.
        await self.ensure_group(edge, group)
        yield _RedisInbox(
            await self.redis(),
            self._call,
            self._scripts["read"],
            self._scripts["ack"],
            self.stream(edge),
            self.dead_letter_stream(edge),
            edge=edge,
            group=group,
            consumer=consumer,
            claim_idle_ms=claim_idle_ms,
            poll_ms=poll_ms,
        )

    async def group_status(self, edge: str, group: str) -> GroupStatus:
        """The backlog of `group` on `edge`; Redis also knows it per member."""
        client = await self.redis()
        key = self.stream(edge)
        pipe = client.pipeline(transaction=False)
        pipe.xpending(key, group)
        pipe.xinfo_groups(key)
        summary, groups = await self._call("group_status", edge, pipe.execute())
        info = next((g for g in groups if g["name"] == group), None)
        if info is None:
            raise BusError(
                f"no consumer group {group!r} on edge {edge!r}",
                backend="redis",
                operation="group_status",
                edge=edge,
            )
        lag = info.get("lag")
        if lag is None:  # Redis cannot tell (entries deleted mid-stream): count them
            start = "(" + str(info["last-delivered-id"])
            lag = len(await self._call("group_status", edge, client.xrange(key, start, "+")))
        return GroupStatus(
            unacked=int(summary["pending"]),
            undelivered=int(lag),
            unacked_by_consumer={c["name"]: int(c["pending"]) for c in summary["consumers"]},
        )


class _RedisInbox:
    """One consumer of one group on one edge's stream (the consume loop's `Inbox`)."""

    def __init__(
        self,
        client: Any,
        call: BrokerCall,
        read_script: Any,
        ack_script: Any,
        key: str,
        dead_key: str,
        *,
        edge: str,
        group: str,
        consumer: str,
        claim_idle_ms: int,
        poll_ms: int,
    ) -> None:
        self._client = client
        self._broker_call = call
        self._read_script = read_script
        self._ack_script = ack_script
        self._edge = edge
        self._key = key
        self._dead_key = dead_key
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._poll_ms = poll_ms
        self._claim_every = max(claim_idle_ms / 4000, 0.05)
        self._next_claim = 0.0

    async def read(self, count: int) -> Sequence[Received[str]]:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim:
            claimed = await self._reclaim(count)
            if claimed:
                return claimed
            self._next_claim = loop.time() + self._claim_every
        args = [self._group, self._consumer, count]
        text: str = await self._call("read", self._read_script(keys=[self._key], args=args))
        if text:
            parts = text.split("\n")
            return [
                Received(parts[i], parts[i + 1], parts[i + 2], 1) for i in range(0, len(parts), 3)
            ]
        client = self._client
        response = await self._call(
            "read",
            client.xreadgroup(
                self._group, self._consumer, {self._key: ">"}, count=count, block=self._poll_ms
            ),
        )
        return [
            self._received(eid, fields, 1) for _, entries in response for eid, fields in entries
        ]

    async def _reclaim(self, count: int) -> list[Received[str]]:
        client = self._client
        claimed = await self._call(
            "reclaim",
            client.xautoclaim(
                self._key,
                self._group,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id="0-0",
                count=count,
            ),
        )
        entries = list(claimed[1])
        gone = [eid for eid, fields in entries if fields is None]  # trimmed while pending
        if gone:
            await self.ack(gone)
        entries = [(eid, fields) for eid, fields in entries if fields is not None]
        if not entries:
            return []
        pending = await self._call(
            "reclaim",
            client.xpending_range(
                self._key, self._group, min=entries[0][0], max=entries[-1][0], count=len(entries)
            ),
        )
        times = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        return [self._received(eid, fields, times.get(eid, 1)) for eid, fields in entries]

    @staticmethod
    def _received(entry_id: str, fields: dict[str, str], deliveries: int) -> Received[str]:
        return Received(entry_id, fields.get("id", ""), fields.get("body", ""), deliveries)

    async def ack(self, handles: list[str]) -> None:
        args = [self._group, "\n".join(handles)]
        await self._call("ack", self._ack_script(keys=[self._key], args=args))

    async def retry(self, received: Received[str]) -> None:
        """Left pending: reclaimed once idle for `claim_idle_ms`."""

    async def dead_letter(self, received: Received[str], reason: str) -> None:
        client = self._client
        entry_id = received.handle
        stored = await self._call("dead_letter", client.xrange(self._key, entry_id, entry_id))
        fields = dict(stored[0][1]) if stored else {"id": received.msg_id}
        pipe = client.pipeline(transaction=False)
        pipe.xadd(self._dead_key, {**fields, "entry": entry_id})
        pipe.xack(self._key, self._group, entry_id)
        await self._call("dead_letter", pipe.execute())

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        return await self._broker_call(operation, self._edge, call)
