"""Running a plan's tool calls at once: inline when a call cannot suspend, else as tasks.

A task per call costs about as much as a small tool itself. A plain `async def`
whose body never awaits cannot suspend, so it gains nothing from one: it is run to
completion on the spot, in its own copy of the context as a task would be. Telling
the two apart reads the bytecode (interpreter internals), in `never_suspends` only.
"""

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
from .tools import PlannerContext, ToolOutcome, ToolRunner

__all__ = ["never_suspends", "run_branches"]


async def run_branches(
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
        for index, (spec, args) in enumerate(calls):
            call = invoke(spec, args, ctx, branch=index)
            if tasks or not never_suspends(spec.node.func):
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


def never_suspends(func: Callable[..., Any]) -> bool:
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
