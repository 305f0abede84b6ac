"""Parallel plans: validate every branch, run them together, then the optional join."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ..catalog import NodeSpec
from . import prompts
from .branches import run_branches
from .constraints import ConstraintTracker
from .models import ParallelJoin, PlannerAction, PlannerPause, Trajectory, TrajectoryStep
from .tools import PlannerContext, ToolRunner
from .validation import dump_json

__all__ = ["run_parallel_plan"]

_JOIN_FIELDS = ("expect", "results", "branches", "failures", "success_count", "failure_count")

_NewContext = Callable[[Trajectory], PlannerContext]


async def run_parallel_plan(
    tools: ToolRunner,
    action: PlannerAction,
    trajectory: Trajectory,
    tracker: ConstraintTracker,
    new_context: _NewContext,
) -> tuple[dict[str, Any] | None, PlannerPause | None]:
    """Run `action.plan` (and its join) and append the step; returns (observation, pause).

    A plan refused before anything runs is appended as an error step and gives
    `(None, None)`. A pause (of a branch or of the join) is returned, not recorded:
    the caller records it.
    """
    if action.next_node is not None:
        return _reject(action, trajectory, prompts.render_parallel_with_next_node(action.next_node))
    plan = action.plan or []
    if not plan:
        return _reject(action, trajectory, prompts.render_empty_parallel_plan())
    by_name = tools.by_name
    errors: list[str] = []
    calls: list[tuple[NodeSpec, BaseModel]] = []
    for item in plan:
        spec = by_name.get(item.node)
        if spec is None:
            errors.append(tools.unknown_tool(item.node))
            continue
        args = tools.validate_args(spec, item.args or {})
        if isinstance(args, str):
            errors.append(args)
        else:
            calls.append((spec, args))
    if errors:
        return _reject(action, trajectory, prompts.render_parallel_setup_error(errors))
    budget = tracker.hop_budget
    if budget is not None:
        # Every branch and the join is a hop: a plan that does not fit in what is
        # left of the budget is refused before anything runs.
        needed = len(calls) + (1 if action.join is not None else 0)
        if tracker.hops_used + needed > budget:
            return _reject(action, trajectory, prompts.render_hop_budget_violation(budget))

    outcomes = await run_branches(calls, new_context(trajectory))
    tools.settle_all(calls, outcomes, trajectory, tracker)
    branches: list[dict[str, Any]] = []
    successes: list[Any] = []
    failures: list[dict[str, Any]] = []
    pause: PlannerPause | None = None
    for (spec, args), outcome in zip(calls, outcomes, strict=True):
        entry: dict[str, Any] = {"node": spec.name, "args": dump_json(args)}
        result = outcome.observation
        if result is not None:
            dumped = dump_json(result)
            entry["observation"] = dumped
            successes.append(dumped)
        elif outcome.pause is not None and pause is None:
            pause = outcome.pause
            entry["pause"] = {"reason": pause.reason, "payload": dict(pause.payload)}
        else:
            # A second paused branch lands here too, without an error of its own.
            error = outcome.error or prompts.render_parallel_unknown_failure(spec.name)
            entry["error"] = error
            failure_entry: dict[str, Any] = {"node": spec.name, "error": error}
            if outcome.failure:
                entry["failure"] = outcome.failure
                failure_entry["failure"] = outcome.failure
            failures.append(failure_entry)
        branches.append(entry)
    observation: dict[str, Any] = {
        "branches": branches,
        "stats": {"success": len(successes), "failed": len(failures)},
    }
    if pause is not None:
        observation["join"] = {"status": "skipped", "reason": "pause"}
    elif action.join is not None:
        observation["join"], pause = await _run_join(
            tools, action.join, trajectory, tracker, new_context, branches, successes, failures
        )
    trajectory.append(TrajectoryStep(action, observation=observation))
    return observation, pause


def _reject(action: PlannerAction, trajectory: Trajectory, error: str) -> tuple[None, None]:
    """A plan refused before anything ran: one error step."""
    trajectory.append(TrajectoryStep(action, error=error))
    return None, None


async def _run_join(
    tools: ToolRunner,
    join: ParallelJoin,
    trajectory: Trajectory,
    tracker: ConstraintTracker,
    new_context: _NewContext,
    branches: list[dict[str, Any]],
    successes: list[Any],
    failures: list[dict[str, Any]],
) -> tuple[dict[str, Any], PlannerPause | None]:
    """The join's entry in the observation, and its pause if it paused."""
    name = join.node
    spec = tools.by_name.get(name)
    if spec is None:
        return {"node": name, "error": tools.unknown_tool(name)}, None
    if failures:
        return {
            "node": name,
            "status": "skipped",
            "reason": "branch_failures",
            "failures": failures,
        }, None
    template = dict(join.args or {})
    fields = spec.args_model.__pydantic_fields__
    for key in _JOIN_FIELDS:
        if key in fields and key not in template:
            template[key] = _join_value(key, branches, successes)
    join_args = tools.validate_args(spec, template)
    if isinstance(join_args, str):
        return {"node": spec.name, "error": join_args}, None
    ctx = new_context(trajectory)
    meta = ctx.meta
    meta["parallel_results"] = branches
    meta["parallel_success_count"] = len(successes)
    meta["parallel_failure_count"] = len(failures)
    meta["parallel_input"] = dict(template)
    outcome = await tools.invoke(spec, join_args, ctx, kind="join")
    tools.settle(spec, outcome, trajectory, tracker)
    if outcome.pause is not None:
        pause = outcome.pause
        return {
            "node": spec.name,
            "pause": {"reason": pause.reason, "payload": dict(pause.payload)},
        }, pause
    if outcome.observation is None:
        payload: dict[str, Any] = {"node": spec.name, "error": outcome.error}
        if outcome.failure:
            payload["failure"] = outcome.failure
        return payload, None
    return {"node": spec.name, "observation": dump_json(outcome.observation)}, None


def _join_value(field: str, branches: list[dict[str, Any]], successes: list[Any]) -> Any:
    """What a join's `field` is filled with when the LLM left it out (no branch failed)."""
    if field == "expect":
        return len(branches)
    if field == "results":
        return successes
    if field == "branches":
        return branches
    if field == "failures":
        return []
    if field == "success_count":
        return len(successes)
    return 0  # failure_count
