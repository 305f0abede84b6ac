"""The errors of `penguiflow.bus`, under the package root `PenguiflowError`::

    BusError (RuntimeError)                 root of the bus errors; itself: a broker failed a call
    ├── BrokerUnavailableError (ConnectionError)   the broker cannot be reached
    ├── PublishError                        an envelope was not stored (edge, msg_id)
    ├── ResultTimeoutError (TimeoutError)   `BusClient`: no result for a trace in time
    ├── InvalidBusOptionError (InvalidArgumentError, ValueError)   a bus, consumer or
    │                                       worker option or name out of range
    └── FlowFactoryError (InvalidArgumentError, ValueError)   a worker's `--flow` does not
                                            name a function building a flow

A bus whose driver is not installed raises the package's `MissingExtraError`
(`extra="redis"` or `"nats"`). A trace that failed in a worker raises its own
`penguiflow.errors.FlowError` from `BusClient.result`.

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
    "ResultTimeoutError",
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


class ResultTimeoutError(BusError, TimeoutError):
    """No result for trace `trace_id` arrived within `timeout_s` seconds.

    The work may still be running (or queued, or retried): waiting again is safe.
    """

    def __init__(self, message: str, *, trace_id: str, timeout_s: float) -> None:
        super().__init__(message, operation="result")
        self.trace_id = trace_id
        self.timeout_s = timeout_s


class InvalidBusOptionError(BusError, InvalidArgumentError):
    """A bus, consumer or worker option is out of range: `option` got `value`."""

    def __init__(self, message: str, *, option: str, value: Any) -> None:
        super().__init__(message)
        self.option = option
        self.value = value


class FlowFactoryError(BusError, InvalidArgumentError):
    """A worker's flow spec does not name a function building a flow: not of the form
    `package.module:callable`, no such module or attribute, not a zero-argument
    function, or it built something else. `spec` is the spec as given."""

    def __init__(self, message: str, *, spec: str) -> None:
        super().__init__(message)
        self.spec = spec
