"""Run one task with one planner and measure it: success, steps, calls, tokens, time.

Everything is read through the planner's public surface: the `PlannerFinish`
metadata (`usage`, `steps`, `step_count`), the `event_callback` (`llm_call`
events: attempt, purpose, tokens) and a span sink on `planner.hooks.span` (the
raw text of each reply, from the `llm` spans).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError
from tasks import Outcome, Task, World

from penguiflow.planner import PlannerAction, PlannerEvent, PlannerFinish, PlannerPause

__all__ = ["Recorder", "TaskResult", "run_task"]

MAX_RESUMES = 3
REPLY_CHARS = 1500


@dataclass(slots=True)
class TaskResult:
    """One task's figures (JSON data via `asdict`)."""

    task: str
    covers: list[str]
    success: bool
    failure: str | None
    finish_reason: str | None
    answer: str | None
    steps: int
    llm_calls: int
    invalid_replies: int
    repairs: int
    error_steps: int
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_per_step: float
    prompt_tokens_per_call: float
    pauses: int
    wall_s: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    step_errors: list[str] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Collects a run's `llm_call` events and the reply text of its `llm` spans."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []

    # event_callback
    def __call__(self, event: PlannerEvent) -> None:
        if event.event_type == "llm_call":
            extra = dict(event.extra)
            self.calls.append(
                {
                    "step": event.trajectory_step,
                    "attempt": extra.get("attempt", 1),
                    "purpose": extra.get("purpose", "action"),
                    "prompt_tokens": extra.get("prompt_tokens"),
                    "completion_tokens": extra.get("completion_tokens"),
                    "latency_ms": event.latency_ms,
                    "error": event.error,
                }
            )

    # SpanSink
    def span_started(self, span: Any) -> None:
        return None

    def span_ended(self, span: Any) -> None:
        if getattr(span, "kind", None) != "llm":
            return
        attributes = getattr(span, "attributes", {}) or {}
        reply = (getattr(span, "content", {}) or {}).get("reply")
        text = None if reply is None else str(reply)
        self.replies.append(
            {
                "purpose": attributes.get("purpose", "action"),
                "attempt": getattr(span, "attempt", 1),
                "valid": text is not None and _valid_action(text),
                "text": None if text is None else text[:REPLY_CHARS],
                "chars": None if text is None else len(text),
            }
        )


def _valid_action(text: str) -> bool:
    """Whether a reply is a `PlannerAction` as it stands (no repair needed)."""
    try:
        PlannerAction.model_validate_json(text)
    except ValidationError:
        return False
    return True


async def _drive(planner: Any, task: Task) -> tuple[PlannerFinish | PlannerPause, int]:
    result = await planner.run(task.query)
    pauses = 0
    while isinstance(result, PlannerPause) and pauses < MAX_RESUMES:
        pauses += 1
        result = await planner.resume(result.resume_token, user_input=task.resume_input)
    return result, pauses


async def run_task(
    planner: Any, task: Task, world: World, recorder: Recorder, timeout_s: float
) -> TaskResult:
    """Run `task` to its end (resuming pauses with the task's input) and check it."""
    planner.hooks.span.append(recorder)
    started = time.perf_counter()
    result: PlannerFinish | PlannerPause | None = None
    pauses = 0
    failure: str | None = None
    try:
        result, pauses = await asyncio.wait_for(_drive(planner, task), timeout_s)
    except TimeoutError:
        failure = f"timed out after {timeout_s:.0f}s"
    except Exception as exc:
        failure = f"raised {type(exc).__name__}: {str(exc)[:300]}"
    wall_s = time.perf_counter() - started
    planner.hooks.span.remove(recorder)

    actions = [c for c in recorder.calls if c["purpose"] == "action"]
    invalid = sum(
        1
        for r in recorder.replies
        if r["purpose"] == "action" and r["text"] is not None and not r["valid"]
    )
    repairs = sum(1 for c in actions if (c["attempt"] or 1) > 1)
    prompt = sum(c["prompt_tokens"] or 0 for c in recorder.calls)
    completion = sum(c["completion_tokens"] or 0 for c in recorder.calls)
    llm_calls = len(recorder.calls)
    steps = 0
    step_errors: list[str] = []
    finish_reason = answer = None
    if isinstance(result, PlannerFinish):
        metadata = result.metadata
        usage = metadata.get("usage") or {}
        llm_calls = int(usage.get("llm_calls", llm_calls))
        prompt = int(usage.get("prompt_tokens", prompt))
        completion = int(usage.get("completion_tokens", completion))
        history = metadata.get("steps") or []
        steps = int(metadata.get("step_count", len(history)))
        step_errors = [str(s["error"])[:300] for s in history if s.get("error")]
        finish_reason = result.reason
        outcome = Outcome(result.reason, result.payload, list(world.calls), pauses)
        answer = outcome.answer[:500]
        if failure is None:
            failure = task.check(outcome)
    elif isinstance(result, PlannerPause) and failure is None:
        failure = f"still paused after {MAX_RESUMES} resumes"
    return TaskResult(
        task=task.name,
        covers=list(task.covers),
        success=failure is None,
        failure=failure,
        finish_reason=finish_reason,
        answer=answer,
        steps=steps,
        llm_calls=llm_calls,
        invalid_replies=invalid,
        repairs=repairs,
        error_steps=len(step_errors),
        prompt_tokens=prompt,
        completion_tokens=completion,
        # A turn is each step plus the final answer: one LLM decision each.
        prompt_tokens_per_step=round(prompt / (steps + 1), 1),
        prompt_tokens_per_call=round(prompt / llm_calls, 1) if llm_calls else 0.0,
        pauses=pauses,
        wall_s=round(wall_s, 2),
        tool_calls=[{"tool": c.tool, "args": c.args, "failed": c.failed} for c in world.calls],
        step_errors=step_errors,
        replies=recorder.replies,
    )
