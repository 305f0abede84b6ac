"""Typed errors raised by the state stores."""

from __future__ import annotations

__all__ = ["CorruptRecordError", "InvalidDataError", "ResumeTokenError", "StateStoreError"]


class StateStoreError(RuntimeError):
    """A state store operation failed."""


class InvalidDataError(StateStoreError, ValueError):
    """Data refused on write (not JSON-serialisable, or not encodable as UTF-8)."""


class CorruptRecordError(StateStoreError):
    """A stored row does not decode into a valid record (written outside the store)."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class ResumeTokenError(KeyError):
    """Unknown, already used or expired resume token (one error for all three)."""

    def __init__(self) -> None:
        super().__init__("unknown or already used resume token")

    def __str__(self) -> str:
        return "unknown or already used resume token"
