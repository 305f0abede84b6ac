"""The final answer as it is written: `llm_stream_chunk` events from a streamed action.

While the LLM streams its action, `AnswerStream` reads it with `JsonStreamScanner`.
Once the action is known to be a finish (`"next_node": null`), the text of
`args.answer` is emitted as it arrives, one `llm_stream_chunk` event per piece;
before that, pieces wait (a model may write `args` first), and they are dropped
when the action turns out to call a tool. Each event's `extra`:

* `stream`: which streamed answer of the run (1, 2, ...): a new one starts when the
  planner asks again after a finish it did not take;
* `index`: the chunk's number in its stream, from 0, without gaps;
* `text`: the piece of the answer (empty on the last event);
* `done`: `True` on the last event of a stream, sent when the finish is taken
  (the answer is complete), or with `discarded: True` when it is not (the run
  goes on; a later stream carries the answer).

The chunks of a stream that is not discarded join into `PlannerFinish.payload["answer"]`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .events import EventSink
from .json_stream import JsonStreamScanner
from .models import PlannerEvent

__all__ = ["ANSWER_PATH", "STREAM_CHUNK", "AnswerStream"]

STREAM_CHUNK = "llm_stream_chunk"
"""The event type of an answer chunk."""

ANSWER_PATH = ("args", "answer")
"""Where a finish action holds the answer text."""

_NEXT_NODE = ("next_node",)

# What the action is, as far as the stream has told.
_UNKNOWN, _FINISH, _TOOL = 0, 1, 2


class AnswerStream:
    """One streamed action reply: `feed` it the reply's text as it arrives, then
    `close()` when its finish is taken or `discard()` when not (both idempotent)."""

    __slots__ = (
        "_held",
        "_kind",
        "_number",
        "_scanner",
        "closed",
        "events",
        "index",
        "step",
        "stream",
    )

    def __init__(self, events: EventSink, *, number: Callable[[], int], step: int) -> None:
        self.events = events
        self._number = number
        self.stream = 0
        """The stream's number in the run, given (by `number()`) at its first chunk."""
        self.step = step
        self.index = 0
        self.closed = False
        self._scanner = JsonStreamScanner()
        self._kind = _UNKNOWN
        self._held: list[str] = []

    def feed(self, delta: str) -> None:
        """Read the next piece of the reply; emit what is known to be answer text."""
        if self.closed or self._kind == _TOOL:
            return
        for piece in self._scanner.feed(delta):
            path = piece.path
            if path == ANSWER_PATH and piece.kind == "text":
                if self._kind == _FINISH:
                    self._chunk(piece.value)
                else:
                    self._held.append(piece.value)
            elif path == _NEXT_NODE:
                if piece.kind == "scalar" and piece.value == "null":
                    self._kind = _FINISH
                    self._release()
                else:
                    self._tool()
                    return
            elif len(path) >= 2 and path[0] == "plan":
                self._tool()  # a parallel plan with a step in it
                return

    def close(self) -> None:
        """The finish is taken: emit what was held back, then the last event."""
        if self.closed:
            return
        self._release()
        if self.index:
            self._emit("", {"done": True})
        self.closed = True

    def discard(self) -> None:
        """The reply is not the answer: end the stream as discarded (if it began)."""
        if self.closed:
            return
        self.closed = True
        self._held.clear()
        if self.index:
            self._emit("", {"done": True, "discarded": True})

    def _tool(self) -> None:
        self._kind = _TOOL
        self._held.clear()

    def _release(self) -> None:
        held = self._held
        if held:
            self._chunk("".join(held))
            held.clear()

    def _chunk(self, text: str) -> None:
        self._emit(text, {"done": False})

    def _emit(self, text: str, more: dict[str, Any]) -> None:
        if not self.stream:
            self.stream = self._number()
        events = self.events
        events.emit(
            PlannerEvent(
                STREAM_CHUNK,
                ts=events.time_source(),
                trajectory_step=self.step,
                extra={"stream": self.stream, "index": self.index, "text": text, **more},
            )
        )
        self.index += 1
