"""Parallel plans: validate every branch, run them together, then the optional join."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import opcode
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from pydantic import BaseModel

from ..catalog import NodeSpec
from . import prompts
from .constraints import ConstraintTracker
from .models import ParallelJoin, PlannerAction, PlannerPause, Trajectory, TrajectoryStep
from .tools import PlannerContext, ToolOutcome, ToolRunner

__all__ = ["run_parallel_plan"]

_JOIN_FIELDS = ("expect", "results", "branches", "failures", "success_count", "failure_count")

NewContext = Callable[[Trajectory], PlannerContext]


async def run_parallel_plan(
    tools: ToolRunner,
    action: PlannerAction,
    trajectory: Trajectory,
    tracker: ConstraintTracker,
    new_context: NewContext,
) -> tuple[dict[str, Any] | None, PlannerPause | None]:
    """Run `action.plan` (and its join) and append the step; returns (observation, pause).

    A plan refused before anything runs is appended as an error step and gives
    `(None, None)`. A pause (of a branch or of the join) is returned, not recorded:
    the caller records it.
    """

    def reject(error: str) -> tuple[None, None]:
        trajectory.append(TrajectoryStep(action, error=error))
        return None, None

    if action.next_node is not None:
        return reject(prompts.render_parallel_with_next_node(action.next_node))
    plan = action.plan or []
    if not plan:
        return reject(prompts.render_empty_parallel_plan())
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
        return reject(prompts.render_parallel_setup_error(errors))

    outcomes = await _run_branches(calls, new_context(trajectory))
    branches: list[dict[str, Any]] = []
    successes: list[Any] = []
    failures: list[dict[str, Any]] = []
    pause: PlannerPause | None = None
    for (spec, args), outcome in zip(calls, outcomes, strict=True):
        tools.settle(spec, outcome, trajectory, tracker)
        entry: dict[str, Any] = {"node": spec.name, "args": args.model_dump(mode="json")}
        if outcome.pause is not None and pause is None:
            pause = outcome.pause
            entry["pause"] = {"reason": pause.reason, "payload": dict(pause.payload)}
        elif outcome.observation is not None:
            dumped = outcome.observation.model_dump(mode="json")
            entry["observation"] = dumped
            successes.append(dumped)
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


async def _run_join(
    tools: ToolRunner,
    join: ParallelJoin,
    trajectory: Trajectory,
    tracker: ConstraintTracker,
    new_context: NewContext,
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
    join_args = tools.validate_args(spec, template)
    if isinstance(join_args, str):
        return {"node": spec.name, "error": join_args}, None
    ctx = new_context(trajectory)
    ctx.meta.update(
        {
            "parallel_results": branches,
            "parallel_success_count": len(successes),
            "parallel_failure_count": len(failures),
            "parallel_input": dict(template),
        }
    )
    outcome = await tools.run(spec, join_args, ctx, trajectory, tracker)
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
    return {"node": spec.name, "observation": outcome.observation.model_dump(mode="json")}, None


async def _run_branches(
    calls: list[tuple[NodeSpec, BaseModel]], ctx: PlannerContext
) -> list[ToolOutcome]:
    """Every branch's outcome, in plan order; all run concurrently.

    Leading branches whose tool cannot suspend run to completion right here, each in
    a copy of the current context as a task would: a task buys them nothing. The
    rest run as tasks, started in plan order. If the run is cancelled, every branch
    task is cancelled and awaited: no task outlives its plan.
    """
    results: list[ToolOutcome | asyncio.Task[ToolOutcome]] = []
    tasks: list[asyncio.Task[ToolOutcome]] = []
    loop = asyncio.get_running_loop()
    try:
        for spec, args in calls:
            call = ToolRunner.invoke(spec, args, ctx)
            if not tasks and _never_suspends(spec.node.func):
                result = _run_to_completion(call, loop)
            else:
                result = loop.create_task(call)
            if isinstance(result, asyncio.Task):
                tasks.append(result)
            results.append(result)
        if tasks:
            await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [r.result() if isinstance(r, asyncio.Task) else r for r in results]


def _run_to_completion(
    call: Coroutine[Any, Any, ToolOutcome], loop: asyncio.AbstractEventLoop
) -> ToolOutcome | asyncio.Task[ToolOutcome]:
    """Run a call that cannot suspend; should it suspend anyway, a task carries it on."""
    context = contextvars.copy_context()
    try:
        suspended_on = context.run(call.send, None)
    except StopIteration as done:
        result: ToolOutcome = done.value
        return result
    return loop.create_task(_carry_on(call, suspended_on), context=context)


@types.coroutine
def _carry_on(
    call: Coroutine[Any, Any, ToolOutcome], suspended_on: Any
) -> Generator[Any, Any, ToolOutcome]:
    """Drive a started coroutine from where it suspended, as the task running us would."""
    while True:
        try:
            value = yield suspended_on
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:  # cancellation: delivered to the call, not swallowed
            try:
                suspended_on = call.throw(exc)
            except StopIteration as done:
                result: ToolOutcome = done.value
                return result
        else:
            try:
                suspended_on = call.send(value)
            except StopIteration as done:
                result = done.value
                return result


# Whether each tool's code can suspend, by code object (closures share theirs).
_NEVER_SUSPENDS: dict[types.CodeType, bool] = {}
_YIELD_VALUE = opcode.opmap["YIELD_VALUE"]


def _never_suspends(func: Callable[..., Any]) -> bool:
    """Whether `func` is an `async def` whose body has no `await`, `async for/with`.

    Such a coroutine runs to completion at its first step. This reads the bytecode
    (interpreter internals): a coroutine frame can only suspend at a `YIELD_VALUE`
    instruction, and in wordcode every instruction's opcode sits at an even offset.
    Anything else (a callable object, a partial, a decorated function) is assumed
    to suspend.
    """
    if not isinstance(func, types.FunctionType):
        return False
    code = func.__code__
    known = _NEVER_SUSPENDS.get(code)
    if known is None:
        known = bool(code.co_flags & inspect.CO_COROUTINE) and _YIELD_VALUE not in code.co_code[::2]
        if len(_NEVER_SUSPENDS) >= 4096:
            _NEVER_SUSPENDS.clear()
        _NEVER_SUSPENDS[code] = known
    return known
