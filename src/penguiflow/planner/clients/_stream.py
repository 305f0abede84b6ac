"""Handing streamed reply text to the caller once, across retried attempts."""

from __future__ import annotations

from collections.abc import Callable

from .retry import LLMEmptyResponseError, LLMStreamDivergedError

__all__ = ["DeltaRelay"]


class DeltaRelay:
    """Passes each attempt's pieces of text to `on_delta`, past what was delivered.

    Call `begin()` at the start of every attempt, `feed()` with each piece the
    stream yields, and `finish()` when the stream ended well. A retried attempt's
    text is compared with what earlier attempts delivered: the part already
    delivered is checked, not delivered again; a difference, or a reply that ends
    short of it, raises `LLMStreamDivergedError`.
    """

    __slots__ = ("_delivered", "_describe", "_on_delta", "_position", "_prefix", "_size")

    def __init__(self, on_delta: Callable[[str], None], *, describe: str) -> None:
        self._on_delta = on_delta
        self._describe = describe
        self._delivered: list[str] = []  # every piece handed to on_delta
        self._size = 0  # characters delivered
        self._prefix = ""  # what earlier attempts delivered, as one string
        self._position = 0  # characters of the current attempt seen so far

    @property
    def delivered_chars(self) -> int:
        """How many characters `on_delta` has received."""
        return self._size

    def begin(self) -> None:
        """Start an attempt: its text is compared with what was delivered before."""
        self._prefix = "".join(self._delivered)
        self._delivered = [self._prefix] if self._prefix else []
        self._position = 0

    def feed(self, piece: str) -> None:
        """Take the next piece of the current attempt's reply."""
        if not piece:
            return
        start = self._position
        self._position += len(piece)
        overlap = min(len(piece), max(len(self._prefix) - start, 0))
        if overlap and piece[:overlap] != self._prefix[start : start + overlap]:
            raise self._diverged()
        fresh = piece[overlap:]
        if fresh:
            self._delivered.append(fresh)
            self._size += len(fresh)
            self._on_delta(fresh)

    def finish(self) -> str:
        """The whole reply of the attempt that ended well (the pieces delivered, joined).

        Raises `LLMEmptyResponseError` when the reply is empty and nothing was
        delivered, `LLMStreamDivergedError` when it ends short of what was.
        """
        if self._position < self._size:
            raise self._diverged()
        if not self._size:
            raise LLMEmptyResponseError(f"{self._describe} streamed an empty reply")
        return "".join(self._delivered)

    def _diverged(self) -> LLMStreamDivergedError:
        return LLMStreamDivergedError(
            f"the stream from {self._describe} broke after {self._size} characters were "
            "delivered to on_delta, and the retried reply differed from them; the "
            "delivered text cannot be taken back, so the call is not retried again",
            delivered_chars=self._size,
        )
