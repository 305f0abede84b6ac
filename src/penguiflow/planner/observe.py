"""How code outside the planner observes its runs: hook lists, and each run's spans.

`planner.hooks` holds the hook lists (`PlannerHooks`): `event` (every
`PlannerEvent`, beside the spec'd single `event_callback`) and `span` (every span
of every run, for `SpanSink`s such as the recorder, the OpenTelemetry exporter or
the command line's live display). Subscribers append themselves and remove
themselves again.

`RunTrace` is one run's side of it: the root span and the open step, the spans of
LLM and tool calls, the pause and the resume. It exists only while a sink is
attached; without one the planner skips all of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any

from ..spans import Span, new_id
from ..tracing.emitter import SpanEmitter, SpanSink, current_span
from .models import PlannerEventCallback

if TYPE_CHECKING:
    from .answer_stream import AnswerStream
    from .usage import Ledger

__all__ = ["PlannerHooks", "RunState", "RunTrace"]

_ANSWER_CHARS = 2000


class PlannerHooks:
    """The hook lists of one planner (`planner.hooks`).

    * `event`: `(PlannerEvent) -> None`, for every event the planner emits (after
      the `event_callback`). A hook that raises is logged and skipped.
    * `span`: `SpanSink`s, told when each span of a run starts and ends.

    Usage::

        planner.hooks.span.append(recorder)
        ...
        planner.hooks.span.remove(recorder)
    """

    __slots__ = ("_event", "_span")

    def __init__(self) -> None:
        self._event: list[PlannerEventCallback] = []
        self._span: list[SpanSink] = []

    @property
    def event(self) -> list[PlannerEventCallback]:
        """Called with every `PlannerEvent`."""
        return self._event

    @property
    def span(self) -> list[SpanSink]:
        """Told when each span starts and ends."""
        return self._span

    def __repr__(self) -> str:
        return f"PlannerHooks(event={len(self._event)}, span={len(self._span)})"


class RunTrace:
    """The spans of one run segment (a `run()` or a `resume()`), for the planner loop."""

    __slots__ = ("_step_index", "_token", "emitter", "root", "step", "steps")

    def __init__(self, emitter: SpanEmitter, root: Span, steps: Sequence[Any]) -> None:
        self.emitter = emitter
        self.root = root
        self.steps = steps  # the trajectory's steps: a step span's outcome is read there
        self.step: Span | None = None
        self._step_index = 0
        self._token: Token[Span | None] | None = None

    # -- the run -----------------------------------------------------------------

    @classmethod
    def begin(
        cls,
        emitter: SpanEmitter,
        *,
        run_id: str,
        query: str,
        steps: Sequence[Any],
        attributes: Mapping[str, Any],
        resumed: Mapping[str, Any] | None = None,
        user_input: str | None = None,
    ) -> RunTrace:
        """Open (or, for a resume, reopen) the run's span and make it current.

        A run started inside another span (a tool of another planner, a flow node)
        becomes its child, in its run.
        """
        parent = current_span.get()
        attrs = {"query": query, **attributes}
        if resumed is not None and resumed.get("span_id"):
            previous = dict(resumed.get("attributes") or {})
            previous.update(attrs)
            previous["resumes"] = int(previous.get("resumes", 0) or 0) + 1
            root = Span(
                run_id=str(resumed.get("run_id") or run_id),
                span_id=str(resumed["span_id"]),
                parent_id=resumed.get("parent_id"),
                kind="run",
                name="ReactPlanner",
                start=float(resumed.get("start") or time.time()),
                attributes=previous,
            )
            emitter.started(root)
        elif parent is not None:
            root = emitter.open("run", "ReactPlanner", parent=parent, attributes=attrs)
        else:
            root = emitter.open("run", "ReactPlanner", parent=None, run_id=run_id, attributes=attrs)
        trace = cls(emitter, root, steps)
        trace._token = current_span.set(root)
        if resumed is not None:
            span = emitter.open("resume", "resume", parent=root, content={"user_input": user_input})
            emitter.close(span)
        return trace

    def resume_info(self) -> dict[str, Any]:
        """What a pause record keeps so that a resume continues this run's trace."""
        root = self.root
        return {
            "run_id": root.run_id,
            "span_id": root.span_id,
            "parent_id": root.parent_id,
            "start": root.start,
            "attributes": dict(root.attributes),
        }

    def end(
        self,
        status: str,
        *,
        ledger: Ledger,
        attributes: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Close the open step and the run's span, with the run's totals."""
        self.end_step("error" if status == "error" else None)
        root = self.root
        root.attributes.update(ledger.usage.to_dict())
        if attributes:
            root.attributes.update(attributes)
        self.emitter.close(root, status, error=error)
        if self._token is not None:
            try:
                current_span.reset(self._token)
            except ValueError:  # ended in another context than it began: leave it be
                current_span.set(None)
            self._token = None

    @staticmethod
    def answer_text(payload: Any) -> str | None:
        """The finish payload as short text for the run list."""
        if payload is None:
            return None
        if isinstance(payload, Mapping) and len(payload) == 1:
            (payload,) = payload.values()
        text = payload if isinstance(payload, str) else repr(payload)
        return text[:_ANSWER_CHARS]

    # -- steps -------------------------------------------------------------------

    def begin_step(self, index: int) -> Span:
        """Close the previous step (if open) and open step `index` (the index the
        step it records will have in the trajectory)."""
        self.end_step()
        step = self.emitter.open(
            "step", f"step {index}", parent=self.root, attributes={"step": index}
        )
        self.step = step
        self._step_index = index
        return step

    def describe_step(self, action_kind: str, thought: str | None) -> None:
        """What the step's action was (`tool`, `parallel`, `finish`, `invalid`)."""
        step = self.step
        if step is not None:
            step.attributes["action"] = action_kind
            if thought:
                step.attributes["thought"] = thought[:_ANSWER_CHARS]

    def end_step(self, status: str | None = None) -> None:
        """Close the open step, if any. Without a `status`, the step's outcome decides:
        `error` (with its message) when the trajectory step it recorded failed, else
        `ok` (a finish records none)."""
        step = self.step
        if step is None:
            return
        self.step = None
        error = None
        if status is None:
            index = self._step_index
            if index < len(self.steps):
                error = self.steps[index].error
            status = "error" if error else "ok"
        self.emitter.close(step, status, error_message=error)

    @property
    def parent(self) -> Span:
        """Where a call of the current step hangs (the step, else the run)."""
        return self.step if self.step is not None else self.root

    # -- calls -------------------------------------------------------------------

    def open_llm(
        self, purpose: str, attempt: int, messages: Sequence[Mapping[str, str]], model: str | None
    ) -> Span:
        """Open an LLM call's span (a child of the step)."""
        # `conversation`: the run span whose prompt this call continues (a recorder
        # stores each prompt as what is new since the conversation's previous call).
        attrs: dict[str, Any] = {"purpose": purpose, "conversation": self.root.span_id}
        if model:
            attrs["model"] = model
        return self.emitter.open(
            "llm",
            model or "llm",
            parent=self.parent,
            attempt=attempt,
            attributes=attrs,
            content={"messages": messages},
        )

    def open_tool(self, kind: str, name: str, args: Any, *, branch: int | None = None) -> Span:
        """Open a tool call's span (`kind` "tool" or "join"), a child of the step."""
        attrs: dict[str, Any] = {"tool": name, "call_id": new_id()[:16]}
        if branch is not None:
            attrs["branch"] = branch
        return self.emitter.open(
            kind, name, parent=self.parent, attributes=attrs, content={"args": args}
        )

    def pause(self, reason: str, payload: Mapping[str, Any], ledger: Ledger) -> None:
        """Record the pause and close the run's span as paused (a resume reopens it)."""
        span = self.emitter.open(
            "pause",
            "pause",
            parent=self.parent,
            attributes={"reason": reason},
            content={"payload": dict(payload)},
        )
        self.emitter.close(span, "paused")
        self.end_step("paused")
        self.end("paused", ledger=ledger, attributes={"reason": f"paused: {reason}"})


class RunState:
    """The run a planner is executing: its id, its ledger, and its spans (if traced)."""

    __slots__ = (
        "_answer",
        "answer_streams",
        "ledger",
        "refused_args",
        "run_id",
        "started",
        "trace",
    )

    def __init__(self, run_id: str, ledger: Ledger, trace: RunTrace | None) -> None:
        self.run_id = run_id
        self.ledger = ledger
        self.trace = trace
        self.started = time.perf_counter()
        self.answer_streams = 0
        """How many streamed answers the run began (see `AnswerStream`)."""
        self.refused_args: str | None = None
        """The tool whose arguments the last step gave did not validate, if any: the
        next action request holds that tool to its own arguments."""
        self._answer: AnswerStream | None = None

    def next_answer_stream(self) -> int:
        """The number of a streamed answer that begins now (1, 2, ...)."""
        self.answer_streams += 1
        return self.answer_streams

    def hold_answer(self, answer: AnswerStream) -> None:
        """Keep the streamed answer of the finish just chosen until the loop takes it
        (`end_answer`); one held before is discarded."""
        self.end_answer(taken=False)
        self._answer = answer

    def end_answer(self, *, taken: bool) -> None:
        """Close the held streamed answer (its finish was `taken`) or discard it."""
        answer = self._answer
        if answer is not None:
            self._answer = None
            if taken:
                answer.close()
            else:
                answer.discard()

    def close_segment(self) -> None:
        """Add this segment's wall time to the run's usage (once)."""
        started = self.started
        if started:
            self.ledger.usage.wall_ms += (time.perf_counter() - started) * 1000
            self.started = 0.0
