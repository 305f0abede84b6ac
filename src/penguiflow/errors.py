"""Traceable errors produced by the runtime."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["FlowError", "FlowErrorCode"]


class FlowErrorCode(StrEnum):
    """Machine-readable classification of a `FlowError`."""

    NODE_TIMEOUT = "NODE_TIMEOUT"
    NODE_EXCEPTION = "NODE_EXCEPTION"
    TRACE_CANCELLED = "TRACE_CANCELLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    HOP_BUDGET_EXHAUSTED = "HOP_BUDGET_EXHAUSTED"
    TOKEN_BUDGET_EXHAUSTED = "TOKEN_BUDGET_EXHAUSTED"


class FlowError(Exception):
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
        text = message or str(exc) or exc.__class__.__name__
        return cls(
            trace_id=trace_id,
            node_name=node_name,
            node_id=node_id,
            code=code,
            message=text,
            original_exc=exc,
            metadata=metadata,
        )


# Typed configuration errors. Each subclasses the builtin exception the specification
# names, with the specified message, so code catching `KeyError`/`RuntimeError`/`ValueError`
# keeps working; the extra attributes name what was wrong. Not in `__all__`, which the
# specification fixes.


class NodeSignatureError(ValueError):
    """A node function does not have the `(message, ctx)` shape."""

    def __init__(self, message: str, *, node_name: str) -> None:
        super().__init__(message)
        self.node_name = node_name


class UnknownTargetError(KeyError):
    """`emit`/`fetch` named a peer that is not connected to the emitting context."""

    def __init__(self, message: str, *, target: str, owner: str) -> None:
        super().__init__(message)
        self.target = target
        self.owner = owner


class RegistryCoverageError(RuntimeError):
    """`run(registry=...)` was given a registry lacking validating nodes."""

    def __init__(self, message: str, *, node_names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.node_names = node_names


class FlowStoppedError(RuntimeError):
    """A message was emitted into a flow after `stop()` and before the next `run()`."""
