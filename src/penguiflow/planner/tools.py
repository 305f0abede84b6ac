"""Calling tools: the context a tool receives, and the one path every tool call takes.

A sequential step, each branch of a parallel plan and a plan's join all go through
`ToolRunner.invoke` (call, catch the pause signal, turn an exception into a failure
payload, validate the output) and then `ToolRunner.settle` (count the hop, advance
the ordering hints); branches are settled in plan order once all have run.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ..catalog import NodeSpec
from ..errors import exception_text
from ..tracing.emitter import current_span
from . import prompts
from .constraints import ConstraintTracker
from .errors import PAUSE_DISABLED_MESSAGE
from .models import PlannerPause, PlannerPauseReason, Trajectory
from .observe import RunState, RunTrace
from .pause import PauseSignal, new_pause
from .rules import ActionRules
from .validation import dump_json, validate

__all__ = ["PauseGate", "PlannerContext", "ToolOutcome", "ToolRunner", "failure_payload"]


class PauseGate(Protocol):
    """What a tool's context needs of its planner (a `ReactPlanner` is one)."""

    @property
    def pause_enabled(self) -> bool: ...


class PlannerContext:
    """What a tool receives as its second argument: `meta` and `pause()`.

    `meta` is a fresh shallow copy of the run's `context_meta`: changes a tool makes
    are its own (the branches of one parallel plan share one context). `run` is the
    run the tool is called in (its id, usage and spans), `None` outside a run.
    """

    __slots__ = ("_planner", "_trajectory", "meta", "run")

    def __init__(
        self, planner: PauseGate, trajectory: Trajectory, run: RunState | None = None
    ) -> None:
        self.meta: dict[str, Any] = dict(trajectory.context_meta or {})
        self._planner = planner
        self._trajectory = trajectory
        self.run = run

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> PlannerPause:
        """Suspend the run until `ReactPlanner.resume()`; never returns normally.

        Raises `RuntimeError` when the planner has `pause_enabled=False`, and
        pydantic's `ValidationError` for an unknown reason.
        """
        if not self._planner.pause_enabled:
            # The builtin on purpose: a tool that lets it escape becomes an error step
            # naming the class ("tool '<name>' raised RuntimeError: ..."), the text the
            # LLM is specified to read.
            raise RuntimeError(PAUSE_DISABLED_MESSAGE)
        raise PauseSignal(new_pause(reason, payload))


@dataclass(slots=True)
class ToolOutcome:
    """What came of one tool call: an observation, an error (with a failure payload
    when the tool raised), or a pause."""

    observation: BaseModel | None = None
    error: str | None = None
    failure: dict[str, Any] | None = None
    pause: PlannerPause | None = None


def failure_payload(spec: NodeSpec, args: BaseModel, exc: Exception) -> dict[str, Any]:
    """What the LLM learns about a tool that raised: node, args, error code, message.

    `suggestion` is added from the exception's `suggestion` (or else `remedy`)
    attribute when it is truthy.
    """
    payload: dict[str, Any] = {
        "node": spec.name,
        "args": dump_json(args),
        "error_code": type(exc).__name__,
        "message": exception_text(exc),
    }
    try:
        suggestion = getattr(exc, "suggestion", None)
        if suggestion is None:
            suggestion = getattr(exc, "remedy", None)
        if suggestion:
            payload["suggestion"] = str(suggestion)
    except Exception as broken:  # a user's property or __str__ may raise anything
        payload["suggestion_error"] = type(broken).__name__
    return payload


class ToolRunner:
    """The catalog, by name, and the one way the planner calls a tool.

    For duplicate names the last spec wins (all of them appear in the prompt).
    """

    __slots__ = ("by_name", "rules", "specs")

    def __init__(self, specs: Sequence[NodeSpec], rules: ActionRules) -> None:
        self.specs: list[NodeSpec] = list(specs)
        self.by_name: dict[str, NodeSpec] = {spec.name: spec for spec in self.specs}
        self.rules = rules

    def unknown_tool(self, name: str) -> str:
        """The error for a tool name that is not in the catalog."""
        return prompts.render_invalid_node(name, list(self.by_name))

    @staticmethod
    def validate_args(spec: NodeSpec, args: Mapping[str, Any]) -> BaseModel | str:
        """The tool's validated arguments, or the error message the LLM gets back."""
        try:
            return validate(spec.args_model, args)
        except ValidationError as exc:
            return prompts.render_validation_error(spec.name, prompts.safe_error_json(exc))

    @staticmethod
    def invoke(
        spec: NodeSpec,
        args: BaseModel,
        ctx: PlannerContext,
        *,
        branch: int | None = None,
        kind: str = "tool",
    ) -> Coroutine[Any, Any, ToolOutcome]:
        """Call the tool (a coroutine to await); every outcome (pause, exception,
        invalid output) is returned.

        The call is counted in the run's usage and, when the run is traced, recorded
        as a `tool` span (`kind="join"` for a plan's join; `branch` is the index of a
        parallel branch) that is the current span while the tool runs. Only
        `BaseException`s that are not `Exception`s (cancellation) propagate.
        """
        run = ctx.run
        if run is None:
            return ToolRunner.call(spec, args, ctx)
        run.ledger.add_tool_call()
        trace = run.trace
        if trace is None:
            return ToolRunner.call(spec, args, ctx)
        return ToolRunner._traced(spec, args, ctx, trace, branch, kind)

    @staticmethod
    async def _traced(
        spec: NodeSpec,
        args: BaseModel,
        ctx: PlannerContext,
        trace: RunTrace,
        branch: int | None,
        kind: str,
    ) -> ToolOutcome:
        span = trace.open_tool(kind, spec.name, args, branch=branch)
        token = current_span.set(span)
        try:
            outcome = await ToolRunner.call(spec, args, ctx)
        except BaseException as exc:
            status = "error" if isinstance(exc, Exception) else "cancelled"
            trace.emitter.close(span, status, error=exc)
            raise
        finally:
            current_span.reset(token)
        span.attributes["latency_ms"] = (time.time() - span.start) * 1000
        if outcome.observation is not None:
            span.content["result"] = outcome.observation
            trace.emitter.close(span, "ok")
        elif outcome.pause is not None:
            trace.emitter.close(span, "paused")
        else:
            failure = outcome.failure or {}
            trace.emitter.close(
                span,
                "error",
                error_type=str(failure.get("error_code") or "InvalidOutput"),
                error_message=outcome.error,
            )
        return outcome

    @staticmethod
    async def call(spec: NodeSpec, args: BaseModel, ctx: PlannerContext) -> ToolOutcome:
        """The tool call itself, nothing counted or recorded (`invoke` wraps it)."""
        try:
            raw = await spec.node.func(args, ctx)
        except PauseSignal as signal:
            return ToolOutcome(pause=signal.pause)
        except Exception as exc:
            return ToolOutcome(
                error=f"tool '{spec.name}' raised {type(exc).__name__}: {exception_text(exc)}",
                failure=failure_payload(spec, args, exc),
            )
        try:
            return ToolOutcome(observation=validate(spec.out_model, raw))
        except ValidationError as exc:
            return ToolOutcome(
                error=prompts.render_output_validation_error(
                    spec.name, prompts.safe_error_json(exc)
                )
            )

    def settle(
        self,
        spec: NodeSpec,
        outcome: ToolOutcome,
        trajectory: Trajectory,
        tracker: ConstraintTracker,
    ) -> None:
        """Book a call that ran: one hop whatever came of it, ordering progress on success."""
        tracker.record_hop()
        if outcome.observation is not None and self.rules.hints.ordering_hints:
            self.rules.record_progress(spec.name, trajectory)

    def settle_all(
        self,
        calls: Sequence[tuple[NodeSpec, BaseModel]],
        outcomes: Sequence[ToolOutcome],
        trajectory: Trajectory,
        tracker: ConstraintTracker,
    ) -> None:
        """`settle` each call of a plan with its outcome, in plan order."""
        tracker.record_hops(len(outcomes))
        if self.rules.hints.ordering_hints:
            for (spec, _), outcome in zip(calls, outcomes, strict=True):
                if outcome.observation is not None:
                    self.rules.record_progress(spec.name, trajectory)
