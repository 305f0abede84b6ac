"""The Redis Streams bus fixture: a unique prefix per test, cleaned up afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from penguiflow.bus.redis_streams import RedisStreamsBus

from ..state.conftest import REDIS_URL, unavailable


@pytest.fixture
async def bus() -> AsyncIterator[RedisStreamsBus]:
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
