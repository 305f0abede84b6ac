"""Every error penguiflow raises, under one root: `PenguiflowError`.

Each error also keeps the builtin base that code written for the specified API
catches (`except KeyError`, `except RuntimeError`, ...), so both styles work::

    PenguiflowError
    ├── FlowError                          a node failed for good (trace, node, cause)
    ├── TraceCancelled                     work of a cancelled trace (penguiflow.core)
    ├── CycleError (RuntimeError)          the graph has a forbidden cycle (penguiflow.core)
    ├── NodeSignatureError (ValueError)    a node function is not `(message, ctx)`
    ├── UnknownTargetError (KeyError)      emit/fetch named a peer that is not connected
    ├── RegistryCoverageError (RuntimeError)   run(registry=) lacks validating nodes
    ├── FlowLifecycleError (RuntimeError)  the flow cannot serve the call as it is
    │   └── FlowStoppedError               emit() after stop(), before the next run()
    ├── FlowTimeoutError (TimeoutError)    flow.call(timeout_s=) found no result in time
    ├── NoResultError (LookupError)        flow.call(): no result (penguiflow.core)
    ├── ContextError (RuntimeError)        a Context used without a flow or floes
    ├── InvalidArgumentError (ValueError)  an argument outside what the call accepts
    │   ├── UnsafeURLError                 penguiflow.transports: a refused agent URL
    │   ├── InvalidBusOptionError          penguiflow.bus (also a BusError): a bad option
    │   └── FlowFactoryError               penguiflow.bus (also a BusError): a bad --flow
    ├── NotFoundError (KeyError)           an unregistered node, a missing variable
    ├── MissingExtraError (RuntimeError)   an optional dependency is not installed
    ├── FlowAssertionError (AssertionError)    penguiflow.testkit: an assertion failed
    ├── StateStoreError (RuntimeError)     penguiflow.state
    │   ├── InvalidDataError (ValueError)  data refused on write
    │   └── CorruptRecordError             a stored row does not decode
    ├── ResumeTokenError (KeyError)        penguiflow.state: unknown or used resume token
    ├── StateFileNotFoundError (FileNotFoundError)  penguiflow-admin: no SQLite file
    ├── LLMError (RuntimeError)            penguiflow.planner.clients: a failed LLM call
    │   ├── LLMRateLimitError, LLMServerError, LLMTimeoutError, LLMConnectionError,
    │   │   LLMEmptyResponseError
    │   ├── LLMStreamDivergedError         a retried stream differed from what it delivered
    │   └── LLMRequestError
    │       └── LLMAuthenticationError     a refused or missing API key
    ├── PlannerError (RuntimeError)        penguiflow.planner: a run cannot go on
    │   ├── ActionRepairError              no valid PlannerAction after repair_attempts
    │   ├── PauseDisabledError             planner.pause() with pause_enabled=False
    │   └── NoActiveRunError               planner.pause() outside a run
    ├── ResumeError (KeyError)             penguiflow.planner: resume(token) found nothing
    │   └── ResumeLoadError                the state store failed to load it (transient)
    ├── BusError (RuntimeError)            penguiflow.bus.errors: a broker failed a call
    │   ├── BrokerUnavailableError (ConnectionError)   the broker cannot be reached
    │   ├── PublishError                   an envelope was not confirmed stored
    │   └── ResultTimeoutError (TimeoutError)   BusClient: no result for a trace in time
    ├── RemoteCallError (RuntimeError)     penguiflow.transports: a remote agent failed
    ├── MCPToolsetError                    penguiflow.mcp: an MCP server's tool call failed
    │   ├── MCPConnectionError (ConnectionError), MCPToolError (RuntimeError),
    │   └── MCPTimeoutError (TimeoutError)
    ├── ScriptExhaustedError (RuntimeError)    penguiflow.testkit: a script ran out
    └── A2ARequestError                    penguiflow_a2a: a refused request (HTTP status)

Errors of optional extras live in the module that needs the extra, and join this root.
Two kinds of exception stay outside on purpose: the planner's pause signal (control
flow that a tool's `except PenguiflowError` must not swallow), and builtin errors the
library raises inside a node or tool, whose class the specified `FlowError` and
observation texts name (`Node 'join' raised ValueError: ...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["FlowError", "FlowErrorCode"]


class PenguiflowError(Exception):
    """The root of every error raised by penguiflow (see the module docstring)."""


def exception_text(exc: BaseException) -> str:
    """`str(exc)`, or a stand-in naming the class when the exception's own `__str__`
    raises: a user's broken exception must not break the report of its failure."""
    try:
        return str(exc)
    except Exception as inner:  # a user's __str__ may raise anything
        return f"<{type(exc).__name__}: str() raised {type(inner).__name__}>"


def exception_repr(value: object) -> str:
    """`repr(value)` (an exception, or any value a user supplied), or a stand-in naming
    the class when its own `__repr__` raises."""
    try:
        return repr(value)
    except Exception as inner:  # a user's __repr__ may raise anything
        return f"<{type(value).__name__}: repr() raised {type(inner).__name__}>"


class FlowErrorCode(StrEnum):
    """Machine-readable classification of a `FlowError`."""

    NODE_TIMEOUT = "NODE_TIMEOUT"
    NODE_EXCEPTION = "NODE_EXCEPTION"
    TRACE_CANCELLED = "TRACE_CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    HOP_BUDGET_EXHAUSTED = "HOP_BUDGET_EXHAUSTED"
    TOKEN_BUDGET_EXHAUSTED = "TOKEN_BUDGET_EXHAUSTED"


class FlowError(PenguiflowError):
    """A node failure with the trace, node and original exception attached.

    Built by the runtime when a node fails for good (after its retries); delivered
    to Rookery when the flow has `emit_errors_to_rookery=True`.
    """

    def __init__(
        self,
        *,
        trace_id: str | None,
        node_name: str | None,
        code: FlowErrorCode | str,
        message: str,
        original_exc: BaseException | None = None,
        node_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.trace_id = trace_id
        self.node_name = node_name
        self.node_id = node_id
        self.code: str = code.value if isinstance(code, FlowErrorCode) else str(code)
        self.message = message
        self.original_exc = original_exc
        self.metadata: dict[str, Any] = dict(metadata) if metadata is not None else {}
        self.exception_type: str | None = (
            type(original_exc).__name__ if original_exc is not None else None
        )

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.trace_id:
            text += f" trace={self.trace_id}"
        if self.node_name:
            text += f" node={self.node_name}"
        return text.strip()

    def unwrap(self) -> BaseException | None:
        """Return the exception that caused this error, if any."""
        return self.original_exc

    def to_payload(self) -> dict[str, Any]:
        """A JSON-friendly dict describing the error (keys only when known)."""
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.trace_id is not None:
            payload["trace_id"] = self.trace_id
        if self.node_name is not None:
            payload["node_name"] = self.node_name
        if self.node_id is not None:
            payload["node_id"] = self.node_id
        if self.exception_type is not None:
            payload["exception_type"] = self.exception_type
        if self.metadata:
            payload["metadata"] = dict(self.metadata)
        return payload

    @classmethod
    def from_exception(
        cls,
        *,
        trace_id: str | None,
        node_name: str | None,
        node_id: str | None,
        exc: BaseException,
        code: FlowErrorCode | str,
        message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FlowError:
        """Wrap `exc`; the message defaults to `str(exc)` or the exception's class name."""
        text = message or exception_text(exc) or exc.__class__.__name__
        return cls(
            trace_id=trace_id,
            node_name=node_name,
            node_id=node_id,
            code=code,
            message=text,
            original_exc=exc,
            metadata=metadata,
        )


# Typed errors for the calls the specification answers with a builtin exception. Each
# also subclasses that builtin, with the specified message, so code catching
# `KeyError`/`RuntimeError`/`ValueError` keeps working; the extra attributes name what
# was wrong. Not in `__all__`, which the specification fixes.


class NodeSignatureError(PenguiflowError, ValueError):
    """A node function does not have the `(message, ctx)` shape."""

    def __init__(self, message: str, *, node_name: str) -> None:
        super().__init__(message)
        self.node_name = node_name


class UnknownTargetError(PenguiflowError, KeyError):
    """`emit`/`fetch` named a peer that is not connected to the emitting context."""

    def __init__(self, message: str, *, target: str, owner: str) -> None:
        super().__init__(message)
        self.target = target
        self.owner = owner


class RegistryCoverageError(PenguiflowError, RuntimeError):
    """`run(registry=...)` was given a registry lacking validating nodes."""

    def __init__(self, message: str, *, node_names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.node_names = node_names


class FlowLifecycleError(PenguiflowError, RuntimeError):
    """A flow call the flow cannot serve as it is: already running, not running, or
    without the state store the call needs."""


class FlowStoppedError(FlowLifecycleError):
    """A message was emitted into a flow after `stop()` and before the next `run()`."""


class FlowTimeoutError(PenguiflowError, TimeoutError):
    """`flow.call(..., timeout_s=)` had no result in time (the trace was cancelled)."""

    def __init__(self, message: str, *, trace_id: str, timeout_s: float) -> None:
        super().__init__(message)
        self.trace_id = trace_id
        self.timeout_s = timeout_s


class ContextError(PenguiflowError, RuntimeError):
    """A `Context` used without a flow, or asked to fetch with no incoming floes."""


class InvalidArgumentError(PenguiflowError, ValueError):
    """An argument outside what the call accepts; the message names it and what is allowed."""


class NotFoundError(PenguiflowError, KeyError):
    """A name that was looked up is not there (a node in a registry, an environment variable).

    Like any `KeyError`, `str()` of it shows the message quoted.
    """


class MissingExtraError(PenguiflowError, RuntimeError):
    """An optional dependency is not installed; `extra` names what to install."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class FlowAssertionError(PenguiflowError, AssertionError):
    """A testkit assertion (`assert_node_sequence`, ...) that did not hold."""


# The state stores' errors live here, low in the package, so that the span model
# (`penguiflow.spans`) can refuse bad data without importing the stores;
# `penguiflow.state.errors` re-exports them.
class StateStoreError(PenguiflowError, RuntimeError):
    """A state store operation failed."""


class InvalidDataError(StateStoreError, ValueError):
    """Data refused on write (not JSON-serialisable, or not encodable as UTF-8)."""
