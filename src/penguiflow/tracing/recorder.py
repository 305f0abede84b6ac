"""`Recorder`: writes every span of the runs it watches to a state store.

It never harms the run it records. Spans are queued (a bounded deque, no await on
the run's side) and written in batches by a background task; when the queue is
full, or the store fails or hangs, spans are dropped instead, counted in
`dropped`, and logged (once per outage, with the count when it ends). Content
is cleaned by the `ContentPolicy` in the writer, off the run's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from dataclasses import replace
from typing import Any

from ..errors import InvalidArgumentError
from ..spans import Span
from ..state.protocol import SpanStore
from .content import ContentPolicy
from .emitter import SpanSink

__all__ = ["Recorder"]

logger = logging.getLogger("penguiflow.tracing")


class Recorder:
    """A `SpanSink` that saves spans to `store` (any `SpanStore`: every store we ship).

    * `capture_content`: keep LLM messages and replies, tool arguments and results
      (default on; redacted and capped by `content`).
    * `queue_size`: spans waiting to be written before new ones are dropped.
    * `batch_size`, `flush_interval_s`: how many spans one write takes, and how long
      the writer waits to gather a batch.
    * `write_timeout_s`: a write taking longer counts as failed (its spans dropped).

    Root spans are written when they start (so a running run is listed) and every
    span when it ends. Use `async with Recorder(store) as recorder:` or call
    `aclose()`: both flush what is queued.

    Usage::

        recorder = Recorder(SQLiteStateStore(".penguiflow/state.db"))
        recorder.attach(planner)        # or a PenguiFlow
        result = await planner.run("...")
        await recorder.aclose()
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        capture_content: bool = True,
        content: ContentPolicy | None = None,
        queue_size: int = 10_000,
        batch_size: int = 256,
        flush_interval_s: float = 0.05,
        write_timeout_s: float = 5.0,
    ) -> None:
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        if flush_interval_s < 0 or write_timeout_s <= 0:
            raise InvalidArgumentError("flush_interval_s must be >= 0 and write_timeout_s > 0")
        self.store = store
        policy = content or ContentPolicy()
        self.content = policy if capture_content else replace(policy, capture=False)
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.write_timeout_s = write_timeout_s
        self._queue: deque[Span] = deque()
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._writing = 0
        self._closed = False
        self._failing_since: float | None = None
        self._dropped_in_outage = 0
        # Weakly held: a planner built per request and attached is not kept alive by
        # the recorder (its spans already queued are still written).
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()
        # The last prompt of each conversation written (run id, run span id).
        self._conversations: dict[tuple[str, str], tuple[str, list[Any]]] = {}
        self.dropped = 0
        self.written = 0

    def __repr__(self) -> str:
        return f"Recorder({self.store!r}, written={self.written}, dropped={self.dropped})"

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- attaching ---------------------------------------------------------------

    def attach(self, target: Any) -> None:
        """Record the runs of `target`: a `ReactPlanner` (its `hooks.span`) or a flow
        (through its `FlowTracer`). Attaching twice records once."""
        if target in self._attached:
            return
        sinks = _sinks_of(target)
        sinks.append(self)
        self._attached.add(target)

    def detach(self, target: Any) -> None:
        """Stop recording `target` (spans already queued are still written)."""
        if target not in self._attached:
            return
        self._attached.discard(target)
        sinks = _sinks_of(target)
        if self in sinks:
            sinks.remove(self)

    # -- SpanSink ----------------------------------------------------------------

    def span_started(self, span: Span) -> None:
        """Queue a root span at its start (so a running run is listed)."""
        if span.parent_id is None:
            self._enqueue(span)

    def span_ended(self, span: Span) -> None:
        """Queue an ended span."""
        self._enqueue(span)

    def _enqueue(self, span: Span) -> None:
        if self._closed:
            self._drop(1, "the recorder is closed")
            return
        queue = self._queue
        if len(queue) >= self.queue_size:
            self._drop(1, "the queue is full")
            return
        queue.append(span)
        wake = self._wake
        if wake is None:
            self._start()
            return
        if not wake.is_set():
            wake.set()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the spans wait for `flush()`
        self._wake = asyncio.Event()
        self._wake.set()
        self._writer = loop.create_task(self._write_loop(), name="penguiflow-recorder")

    # -- writing -----------------------------------------------------------------

    async def _write_loop(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            if self.flush_interval_s and not self._closed:
                await asyncio.sleep(self.flush_interval_s)
            while self._queue:
                if not await self._write_batch():
                    # Give a failing store a moment before the next try (the
                    # spans meanwhile queue up, or are dropped once it is full).
                    await asyncio.sleep(min(1.0, self.flush_interval_s * 10 or 0.1))

    async def _write_batch(self) -> bool:
        """Write one batch; whether the store took it (a failed batch is dropped)."""
        queue = self._queue
        latest: dict[tuple[str, str], Span] = {}
        for _ in range(min(self.batch_size, len(queue))):
            span = queue.popleft()
            latest[(span.run_id, span.span_id)] = span
        batch = [self._snapshot(span) for span in latest.values()]
        self._writing += 1
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await self.store.save_spans(batch)
        except Exception as exc:
            self._failed(len(batch), exc)
            return False
        else:
            self.written += len(batch)
            self._recovered()
            return True
        finally:
            self._writing -= 1

    def _snapshot(self, span: Span) -> Span:
        """The span as stored: content and attributes cleaned (a new `Span`, built
        positionally: `dataclasses.replace` costs several times more per span)."""
        policy = self.content
        content: dict[str, Any] = {}
        if policy.capture and span.content:
            raw = span.content
            if span.kind == "llm" and isinstance(raw.get("messages"), list):
                raw = self._new_messages(span, raw)
            content = policy.clean(raw)
        return Span(
            span.run_id,
            span.span_id,
            span.parent_id,
            span.kind,
            span.name,
            span.start,
            span.end,
            span.status,
            span.error_type,
            span.error_message,
            span.attempt,
            policy.clean_attributes(span.attributes) if span.attributes else {},
            content,
        )

    def _new_messages(self, span: Span, content: dict[str, Any]) -> dict[str, Any]:
        """An LLM call's content with only the messages that are new since the previous
        call of its conversation (see `expand_messages`, which rebuilds them)."""
        messages: list[Any] = content["messages"]
        key = (span.run_id, str(span.attributes.get("conversation", "")))
        previous = self._conversations.get(key)
        self._conversations[key] = (span.span_id, messages)
        if len(self._conversations) > 1024:
            self._conversations.pop(next(iter(self._conversations)))
        if previous is None:
            return content
        source, before = previous
        kept = 0
        for old, new in zip(before, messages):
            if old is not new and old != new:
                break
            kept += 1
        if not kept:
            return content
        trimmed = dict(content)
        trimmed["messages"] = messages[kept:]
        trimmed["messages_from"] = source
        trimmed["messages_kept"] = kept
        return trimmed

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            logger.warning(
                "recorder_dropping_spans why=%s (the run goes on; the spans are lost)",
                why,
                extra={"why": why, "dropped": self.dropped},
            )
        self._dropped_in_outage += count

    def _failed(self, count: int, exc: Exception) -> None:
        self._drop(count, f"the store failed: {type(exc).__name__}: {exc}")

    def _recovered(self) -> None:
        if self._failing_since is not None:
            logger.warning(
                "recorder_recovered dropped=%d in %.1fs (total dropped %d)",
                self._dropped_in_outage,
                time.monotonic() - self._failing_since,
                self.dropped,
                extra={"dropped": self._dropped_in_outage, "total_dropped": self.dropped},
            )
            self._failing_since = None
            self._dropped_in_outage = 0

    async def flush(self) -> None:
        """Write everything queued so far.

        When the store fails two writes in a row here (one failure may be a stale
        connection that the next write replaces), what is still queued is dropped
        (counted and logged) rather than tried batch by batch: flushing, and so
        closing, takes at most about two `write_timeout_s` during an outage.
        """
        failed = 0
        while self._queue or self._writing:
            if not self._queue:
                await asyncio.sleep(0.001)
            elif await self._write_batch():
                failed = 0
            else:
                failed += 1
                if failed >= 2:
                    left = len(self._queue)
                    self._queue.clear()
                    self._drop(left, "the store failed while flushing")
                    return
                await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        """Flush, stop the writer and detach from everything attached."""
        await self.flush()
        self._closed = True
        for target in list(self._attached):
            self.detach(target)
        writer = self._writer
        if writer is not None:
            writer.cancel()
            # `wait` neither raises the writer's cancellation nor swallows our own.
            await asyncio.wait([writer])
            self._writer = None
            self._wake = None
        if self._dropped_in_outage:
            logger.warning(
                "recorder_closed dropped=%d spans in total",
                self.dropped,
                extra={"dropped": self.dropped},
            )


def _sinks_of(target: Any) -> list[SpanSink]:
    """The sink list spans of `target` go to (a planner's, or its flow tracer's)."""
    hooks = getattr(target, "hooks", None)
    spans = getattr(hooks, "span", None)
    if isinstance(spans, list):
        return spans
    if hooks is not None and hasattr(hooks, "trace_done"):
        from .flow import FlowTracer

        return FlowTracer.of(target).sinks
    raise InvalidArgumentError(
        f"cannot record {type(target).__name__}: expected a ReactPlanner or a PenguiFlow"
    )
