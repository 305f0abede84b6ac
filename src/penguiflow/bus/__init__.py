"""Message buses: the protocol the runtime publishes to, and the brokers we ship.

`BusEnvelope` and `MessageBus` are the spec'd names. `RedisStreamsBus`
(`penguiflow.bus.redis_streams`, extra `redis`) and `NatsJetStreamBus`
(`penguiflow.bus.nats_jetstream`, extra `nats`) load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .protocol import BusEnvelope, MessageBus

if TYPE_CHECKING:
    from .nats_jetstream import NatsJetStreamBus as NatsJetStreamBus
    from .redis_streams import RedisStreamsBus as RedisStreamsBus

__all__ = ["BusEnvelope", "MessageBus"]


def __getattr__(name: str) -> Any:
    if name == "RedisStreamsBus":
        from .redis_streams import RedisStreamsBus

        return RedisStreamsBus
    if name == "NatsJetStreamBus":
        from .nats_jetstream import NatsJetStreamBus

        return NatsJetStreamBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
