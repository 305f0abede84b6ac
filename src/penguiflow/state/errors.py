"""Typed errors raised by the state stores (all under `penguiflow.errors.PenguiflowError`)."""

from __future__ import annotations

from ..errors import InvalidDataError, PenguiflowError, StateStoreError

__all__ = [
    "CorruptRecordError",
    "InvalidDataError",
    "ResumeTokenError",
    "StateFileNotFoundError",
    "StateStoreError",
]


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
    """An SQLite state file named by a URL does not exist (nothing is created);
    `path` is the path looked for."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
