"""Message buses: the protocols, and the brokers we ship.

`BusEnvelope` and `MessageBus` are the spec'd names: what the runtime publishes.
`ConsumerBus` is what a broker-backed bus adds for workers (publish under an id,
`consume` / `consume_batches` with at-least-once delivery, `publish_many`,
`group_status`, `stats`); a handler receives a `Delivery`. `RedisStreamsBus`
(`penguiflow.bus.redis_streams`, extra `redis`) and `NatsJetStreamBus`
(`penguiflow.bus.nats_jetstream`, extra `nats`) implement it and load on first access.
`BusClient` (`penguiflow.bus.client`, loaded on first access) sends work to a flow
served by workers and awaits each result. The errors (`BusError` and below) are in
`penguiflow.bus.errors`. Envelopes carry
the publisher's trace context (`meta["traceparent"]`; `with_trace_context` for a bus
of your own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BrokerUnavailableError as BrokerUnavailableError
from .errors import BusError as BusError
from .errors import InvalidBusOptionError as InvalidBusOptionError
from .errors import PublishError as PublishError
from .errors import ResultTimeoutError as ResultTimeoutError
from .protocol import (
    BatchHandler,
    BusEnvelope,
    BusStats,
    ConsumerBus,
    Delivery,
    GroupStatus,
    Handler,
    MessageBus,
    with_trace_context,
)

if TYPE_CHECKING:
    from .client import BusClient as BusClient
    from .nats_jetstream import NatsJetStreamBus as NatsJetStreamBus
    from .redis_streams import RedisStreamsBus as RedisStreamsBus

__all__ = [
    "BatchHandler",
    "BusEnvelope",
    "BusStats",
    "ConsumerBus",
    "Delivery",
    "GroupStatus",
    "Handler",
    "MessageBus",
    "with_trace_context",
]


def __getattr__(name: str) -> Any:
    if name == "BusClient":
        from .client import BusClient

        return BusClient
    if name == "RedisStreamsBus":
        from .redis_streams import RedisStreamsBus

        return RedisStreamsBus
    if name == "NatsJetStreamBus":
        from .nats_jetstream import NatsJetStreamBus

        return NatsJetStreamBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
