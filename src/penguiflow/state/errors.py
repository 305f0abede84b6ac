"""Typed errors raised by the state stores (all under `penguiflow.errors.PenguiflowError`)."""

from __future__ import annotations

from ..errors import PenguiflowError

__all__ = [
    "CorruptRecordError",
    "InvalidDataError",
    "ResumeTokenError",
    "StateFileNotFoundError",
    "StateStoreError",
]


class StateStoreError(PenguiflowError, RuntimeError):
    """A state store operation failed."""


class InvalidDataError(StateStoreError, ValueError):
    """Data refused on write (not JSON-serialisable, or not encodable as UTF-8)."""


class CorruptRecordError(StateStoreError):
    """A stored row does not decode into a valid record (written outside the store)."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class ResumeTokenError(PenguiflowError, KeyError):
    """Unknown, already used or expired resume token (one error for all three)."""

    def __init__(self) -> None:
        super().__init__("unknown or already used resume token")

    def __str__(self) -> str:
        return "unknown or already used resume token"


class StateFileNotFoundError(PenguiflowError, FileNotFoundError):
    """An SQLite state file named by a URL does not exist (nothing is created)."""
