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
from .validation import dump_json

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

    outcomes = await _run_branches(calls, new_context(trajectory))
    branches: list[dict[str, Any]] = []
    successes: list[Any] = []
    failures: list[dict[str, Any]] = []
    pause: PlannerPause | None = None
    for (spec, args), outcome in zip(calls, outcomes, strict=True):
        tools.settle(spec, outcome, trajectory, tracker)
        entry: dict[str, Any] = {"node": spec.name, "args": dump_json(args)}
        if outcome.observation is not None:
            dumped = dump_json(outcome.observation)
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
    outcome = await tools.invoke(spec, join_args, ctx)
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


async def _run_branches(
    calls: list[tuple[NodeSpec, BaseModel]], ctx: PlannerContext
) -> list[ToolOutcome]:
    """Every branch's outcome, in plan order; all run concurrently.

    Leading branches whose tool cannot suspend run to completion right here, each in
    a copy of the current context as a task would: a task buys them nothing. The
    rest run as tasks, started in plan order. If the run is cancelled, every branch
    task is cancelled and awaited: no task outlives its plan.
    """
    invoke = ToolRunner.invoke
    outcomes: list[ToolOutcome] = []
    tasks: list[asyncio.Task[ToolOutcome]] = []
    try:
        for spec, args in calls:
            call = invoke(spec, args, ctx)
            if tasks or not _never_suspends(spec.node.func):
                tasks.append(asyncio.get_running_loop().create_task(call))
                continue
            context = contextvars.copy_context()
            try:
                suspended_on = context.run(call.send, None)
            except StopIteration as done:
                outcomes.append(done.value)
                continue
            # It suspended after all: a task carries it on from there.
            resumed = _Resumed(call, suspended_on)
            tasks.append(asyncio.get_running_loop().create_task(resumed, context=context))
        if tasks:
            await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcomes.extend(task.result() for task in tasks)
    return outcomes


class _Resumed(Coroutine[Any, Any, ToolOutcome]):
    """A started call, handed to a task: its first step gives back what the call yielded.

    A generator could not do this: a task cancelled before its first step throws into
    a generator that never started, so the call itself would never see it.
    """

    __slots__ = ("_call", "_suspended_on")

    def __init__(self, call: Coroutine[Any, Any, ToolOutcome], suspended_on: Any) -> None:
        self._call = call
        self._suspended_on = suspended_on

    def send(self, value: Any) -> Any:
        suspended_on = self._suspended_on
        if suspended_on is not _NOTHING:
            self._suspended_on = _NOTHING
            return suspended_on
        return self._call.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._suspended_on = _NOTHING
        if val is None and tb is None:
            return self._call.throw(typ)
        return self._call.throw(typ, val, tb)

    def close(self) -> None:
        self._call.close()

    def __await__(self) -> Generator[Any, Any, ToolOutcome]:
        # Awaited directly, it is stepped the way a task steps it.
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = self.send(value) if error is None else self.throw(error)
            except StopIteration as done:
                result: ToolOutcome = done.value
                return result
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as exc:  # delivered to the call, not swallowed
                error = exc


_NOTHING: Any = object()


# Whether each tool function can suspend, by function (tools live as long as their
# catalog; the table is cleared if it ever grows large).
_NEVER_SUSPENDS: dict[Callable[..., Any], bool] = {}
# Without this opcode (another interpreter) every tool is assumed to suspend.
_YIELD_VALUE = opcode.opmap.get("YIELD_VALUE")


def _never_suspends(func: Callable[..., Any]) -> bool:
    """Whether `func` is an `async def` whose body has no `await`, `async for/with`.

    Such a coroutine runs to completion at its first step. This reads the bytecode
    (interpreter internals): a coroutine frame can only suspend at a `YIELD_VALUE`
    instruction, and in wordcode every instruction's opcode sits at an even offset.
    Anything else (a callable object, a partial, a decorated function) is assumed
    to suspend.
    """
    known = _NEVER_SUSPENDS.get(func)
    if known is None:
        code = getattr(func, "__code__", None) if isinstance(func, types.FunctionType) else None
        known = (
            code is not None
            and _YIELD_VALUE is not None
            and bool(code.co_flags & inspect.CO_COROUTINE)
            and _YIELD_VALUE not in code.co_code[::2]
        )
        if len(_NEVER_SUSPENDS) >= 4096:
            _NEVER_SUSPENDS.clear()
        _NEVER_SUSPENDS[func] = known
    return known
