"""The errors of `penguiflow.bus`, under the package root `PenguiflowError`::

    BusError (RuntimeError)                 root of the bus errors; itself: a broker failed a call
    ├── BrokerUnavailableError (ConnectionError)   the broker cannot be reached
    ├── PublishError                        an envelope was not stored (edge, msg_id)
    ├── InvalidBusOptionError (InvalidArgumentError, ValueError)   a bus, consumer or
    │                                       worker option or name out of range
    └── FlowFactoryError (InvalidArgumentError, ValueError)   a worker's `--flow` is not
                                            `module:callable`

A bus whose driver is not installed raises the package's `MissingExtraError`
(`extra="redis"` or `"nats"`).

Broker errors (`redis.exceptions.*`, `nats.errors.*`) are translated in one place per
backend and raised `from` the original, which stays reachable as `__cause__`.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError, PenguiflowError

__all__ = [
    "BrokerUnavailableError",
    "BusError",
    "FlowFactoryError",
    "InvalidBusOptionError",
    "PublishError",
]


class BusError(PenguiflowError, RuntimeError):
    """The root of the bus errors; raised itself when a broker refused or failed a call.

    `backend` names the bus (`"redis"`, `"nats"`), `operation` the call (`"publish"`,
    `"read"`, `"ack"`, ...), `edge` the edge it was for (or `None`).
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        operation: str | None = None,
        edge: str | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
        self.edge = edge


class BrokerUnavailableError(BusError, ConnectionError):
    """The broker cannot be reached (refused, reset, timed out): check the URL and server."""


class PublishError(BusError):
    """The broker did not confirm that it stored an envelope; publishing it again is safe.

    `msg_id` is the id the envelope was published under.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        edge: str | None = None,
        msg_id: str | None = None,
    ) -> None:
        super().__init__(message, backend=backend, operation="publish", edge=edge)
        self.msg_id = msg_id


class InvalidBusOptionError(BusError, InvalidArgumentError):
    """A bus, consumer or worker option is out of range: `option` got `value`."""

    def __init__(self, message: str, *, option: str, value: Any) -> None:
        super().__init__(message)
        self.option = option
        self.value = value


class FlowFactoryError(BusError, InvalidArgumentError):
    """A worker's flow spec is not in the form `package.module:callable`."""

    def __init__(self, message: str, *, spec: str) -> None:
        super().__init__(message)
        self.spec = spec
