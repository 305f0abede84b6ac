"""Bus fixtures on the real servers: a unique prefix (and stream) per test, cleaned up.

`bus` is a Redis Streams bus; `consumer_bus` is each bus we ship in turn (Redis
Streams, NATS JetStream), for the tests every `ConsumerBus` must pass.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from penguiflow.bus import ConsumerBus
from penguiflow.bus.nats_jetstream import NatsJetStreamBus
from penguiflow.bus.redis_streams import RedisStreamsBus

from ..state.conftest import REDIS_URL, unavailable

NATS_URL = os.environ.get("PENGUIFLOW_TEST_NATS", "nats://127.0.0.1:4222")


async def redis_bus() -> AsyncIterator[RedisStreamsBus]:
    from redis.exceptions import RedisError

    prefix = f"pfbus:{uuid.uuid4().hex[:10]}"
    bus = RedisStreamsBus(REDIS_URL, prefix=prefix)
    client = await bus.redis()
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await bus.close()
        unavailable("Redis", exc)
    yield bus
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await bus.close()


async def nats_bus() -> AsyncIterator[NatsJetStreamBus]:
    name = uuid.uuid4().hex[:10]
    bus = NatsJetStreamBus(NATS_URL, stream=f"PFTEST_{name}", prefix=f"pftest_{name}")
    try:
        await bus.jetstream()
    except OSError as exc:  # BrokerUnavailableError is a ConnectionError
        unavailable("NATS JetStream", exc)
    yield bus
    await bus.delete_stream()
    await bus.close()


@pytest.fixture
async def bus() -> AsyncIterator[RedisStreamsBus]:
    async for value in redis_bus():
        yield value


@pytest.fixture(params=["redis", "nats"])
async def consumer_bus(request: pytest.FixtureRequest) -> AsyncIterator[ConsumerBus]:
    make = redis_bus if request.param == "redis" else nats_bus
    async for value in make():
        yield value
