"""Parallel plans: validate every branch, run them together, then the optional join."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..catalog import NodeSpec
from . import prompts
from .models import PlannerAction, PlannerPause, Trajectory, TrajectoryStep
from .pause import _PlannerPauseSignal

if TYPE_CHECKING:
    from .constraints import _ConstraintTracker
    from .react import ReactPlanner, _BranchExecutionResult, _PlannerContext

__all__ = ["execute_parallel_plan", "run_branch"]

_JOIN_FIELDS = ("expect", "results", "branches", "failures", "success_count", "failure_count")


async def run_branch(
    spec: NodeSpec, args: BaseModel, ctx: _PlannerContext
) -> _BranchExecutionResult:
    """Run one branch; every outcome (pause, error, bad output) becomes a result."""
    from .react import _BranchExecutionResult

    try:
        raw = await spec.node.func(args, ctx)
    except _PlannerPauseSignal as signal:
        return _BranchExecutionResult(pause=signal.pause)
    except Exception as exc:
        planner = ctx._planner
        return _BranchExecutionResult(
            error=f"tool '{spec.name}' raised {type(exc).__name__}: {exc}",
            failure=planner._build_failure_payload(spec, args, exc),
        )
    try:
        return _BranchExecutionResult(observation=spec.out_model.model_validate(raw))
    except ValidationError as exc:
        return _BranchExecutionResult(
            error=prompts.render_output_validation_error(spec.name, prompts.safe_error_json(exc))
        )


async def _gather_branches(
    calls: list[tuple[NodeSpec, BaseModel]], ctx: _PlannerContext
) -> list[_BranchExecutionResult]:
    tasks = [asyncio.ensure_future(run_branch(spec, args, ctx)) for spec, args in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # Cancelled from outside: take every branch down with us (no orphan tasks).
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def execute_parallel_plan(
    planner: ReactPlanner,
    action: PlannerAction,
    trajectory: Trajectory,
    tracker: _ConstraintTracker,
) -> tuple[Any, PlannerPause | None]:
    """Run `action.plan` (and its join); returns (observation, pause)."""
    from .react import _PlannerContext

    def reject(error: str) -> tuple[None, None]:
        planner._append(trajectory, TrajectoryStep(action, error=error))
        return None, None

    if action.next_node is not None:
        return reject(prompts.render_parallel_with_next_node(action.next_node))
    plan = action.plan or []
    if not plan:
        return reject(prompts.render_empty_parallel_plan())
    specs = planner._spec_by_name
    errors: list[str] = []
    calls: list[tuple[NodeSpec, BaseModel]] = []
    for item in plan:
        spec = specs.get(item.node)
        if spec is None:
            errors.append(prompts.render_invalid_node(item.node, list(specs)))
            continue
        try:
            calls.append((spec, spec.args_model.model_validate(item.args or {})))
        except ValidationError as exc:
            errors.append(prompts.render_validation_error(spec.name, prompts.safe_error_json(exc)))
    if errors:
        return reject(prompts.render_parallel_setup_error(errors))

    ctx = _PlannerContext(planner, trajectory)
    results = await _gather_branches(calls, ctx)
    branches: list[dict[str, Any]] = []
    successes: list[Any] = []
    failures: list[dict[str, Any]] = []
    pause: PlannerPause | None = None
    for (spec, args), result in zip(calls, results, strict=True):
        tracker.record_hop()
        entry: dict[str, Any] = {"node": spec.name, "args": args.model_dump(mode="json")}
        if result.pause is not None and pause is None:
            pause = result.pause
            entry["pause"] = {"reason": pause.reason, "payload": dict(pause.payload)}
        elif result.observation is not None:
            dumped = result.observation.model_dump(mode="json")
            entry["observation"] = dumped
            successes.append(dumped)
            planner._record_hint_progress(spec.name, trajectory)
        else:
            error = result.error or prompts.render_parallel_unknown_failure(spec.name)
            entry["error"] = error
            failure_entry: dict[str, Any] = {"node": spec.name, "error": error}
            if result.failure:
                entry["failure"] = result.failure
                failure_entry["failure"] = result.failure
            failures.append(failure_entry)
        branches.append(entry)
    observation: dict[str, Any] = {
        "branches": branches,
        "stats": {"success": len(successes), "failed": len(failures)},
    }
    if pause is not None:
        observation["join"] = {"status": "skipped", "reason": "pause"}
        planner._append(trajectory, TrajectoryStep(action, observation=observation))
        await planner._record_pause(pause, trajectory, tracker)
        return observation, pause

    join = action.join
    if join is not None:
        join_payload, join_pause = await _run_join(
            planner, join.node, join.args, trajectory, tracker, branches, successes, failures
        )
        observation["join"] = join_payload
        if join_pause is not None:
            planner._append(trajectory, TrajectoryStep(action, observation=observation))
            await planner._record_pause(join_pause, trajectory, tracker)
            return observation, join_pause
    planner._append(trajectory, TrajectoryStep(action, observation=observation))
    return observation, None


async def _run_join(
    planner: ReactPlanner,
    name: str,
    args: dict[str, Any] | None,
    trajectory: Trajectory,
    tracker: _ConstraintTracker,
    branches: list[dict[str, Any]],
    successes: list[Any],
    failures: list[dict[str, Any]],
) -> tuple[dict[str, Any], PlannerPause | None]:
    from .react import _PlannerContext

    spec = planner._spec_by_name.get(name)
    if spec is None:
        return {
            "node": name,
            "error": prompts.render_invalid_node(name, list(planner._spec_by_name)),
        }, None
    if failures:
        payload = {
            "node": name,
            "status": "skipped",
            "reason": "branch_failures",
            "failures": failures,
        }
        return payload, None
    template = dict(args or {})
    auto = {
        "expect": len(branches),
        "results": successes,
        "branches": branches,
        "failures": [],
        "success_count": len(successes),
        "failure_count": 0,
    }
    fields = spec.args_model.model_fields
    for key in _JOIN_FIELDS:
        if key in fields and key not in template:
            template[key] = auto[key]
    try:
        join_args = spec.args_model.model_validate(template)
    except ValidationError as exc:
        error = prompts.render_validation_error(spec.name, prompts.safe_error_json(exc))
        return {"node": spec.name, "error": error}, None
    ctx = _PlannerContext(planner, trajectory)
    ctx.meta.update(
        {
            "parallel_results": branches,
            "parallel_success_count": len(successes),
            "parallel_failure_count": len(failures),
            "parallel_input": dict(template),
        }
    )
    try:
        raw = await spec.node.func(join_args, ctx)
    except _PlannerPauseSignal as signal:
        tracker.record_hop()
        pause = signal.pause
        return {
            "node": spec.name,
            "pause": {"reason": pause.reason, "payload": dict(pause.payload)},
        }, pause
    except Exception as exc:
        tracker.record_hop()
        return {
            "node": spec.name,
            "error": f"tool '{spec.name}' raised {type(exc).__name__}: {exc}",
            "failure": planner._build_failure_payload(spec, join_args, exc),
        }, None
    tracker.record_hop()
    try:
        out = spec.out_model.model_validate(raw)
    except ValidationError as exc:
        error = prompts.render_output_validation_error(spec.name, prompts.safe_error_json(exc))
        return {"node": spec.name, "error": error}, None
    planner._record_hint_progress(spec.name, trajectory)
    return {"node": spec.name, "observation": out.model_dump(mode="json")}, None
