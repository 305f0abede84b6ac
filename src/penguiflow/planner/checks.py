"""Checks on what a model proposes that a schema cannot express.

* `FinishCheck` catches a finish that is really a tool call the model did not make:
  its `args` are a tool's arguments, or it carries no answer, or (a heuristic) no
  tool was tried while the query looks like it needs one. Instead of ending the run,
  the planner feeds back a short correction. On request (`after_error=True`) it
  also sends back a finish that comes right after a failed tool call, which a small
  model tends to fill with made-up facts; each kind of check intervenes at most
  once per run, so a model that finishes again the same way is taken at its word.
* `repeated_failure` notices the same failing call made again and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from ..catalog import NodeSpec
from .models import PlannerAction, Trajectory
from .prompts import compact_json

__all__ = [
    "FinishCheck",
    "FinishProblem",
    "RepeatedCall",
    "ToolFirst",
    "record",
    "repeated_call",
    "repeated_failure",
]

ToolFirst = Literal["auto", "always", "never"] | Callable[[str], bool]

# Words of tool names too common to say what a query is about.
_GENERIC_WORDS = frozenset(
    {
        "get",
        "set",
        "list",
        "find",
        "search",
        "fetch",
        "lookup",
        "look",
        "up",
        "query",
        "read",
        "write",
        "make",
        "create",
        "run",
        "call",
        "do",
        "the",
        "a",
        "an",
        "of",
        "for",
        "to",
        "by",
        "with",
        "from",
        "tool",
        "info",
        "data",
        "item",
        "items",
        "value",
        "values",
    }
)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class FinishProblem:
    """Why a finish was not accepted: the check (`kind`), the correction sent back to
    the model, and the tool it concerns, if any."""

    kind: Literal["tool_args", "empty_answer", "after_error", "no_tool"]
    message: str
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class FinishCheck:
    """Which premature finishes the planner catches (`ReactPlanner(finish_check=...)`).

    * `tool_args`: the finish's `args` validate as the arguments of a catalog tool
      and carry no `answer`.
    * `empty_answer`: the finish has no payload (`args` null and no observation to
      fall back on) or its `answer` is null or blank.
    * `after_error` (off by default: a finish reporting a failure is a valid reply
      for the reference): the latest tool call of the run failed (the tool raised,
      or its arguments or name were refused) and nothing was called since.
    * `tool_first`: a finish before any tool was tried. `"auto"` (the default) only
      when the thought names a tool or the query shares a distinctive word with a
      tool's name; `"always"`; `"never"`; or a callable given the query.
    """

    tool_args: bool = True
    empty_answer: bool = True
    after_error: bool = False
    tool_first: ToolFirst = "auto"

    @classmethod
    def off(cls) -> FinishCheck:
        """A check that accepts every finish (the reference's behaviour)."""
        return cls(tool_args=False, empty_answer=False, after_error=False, tool_first="never")

    def problem(
        self,
        action: PlannerAction,
        payload: Any,
        trajectory: Trajectory,
        specs: Sequence[NodeSpec],
    ) -> FinishProblem | None:
        """What is wrong with finishing with `payload` now, or `None` to accept it.

        A kind of check that already intervened in this run is not applied again.
        """
        used = _used(trajectory)
        args = action.args
        if self.tool_args and "tool_args" not in used and args and "answer" not in args:
            tool = _unmade_call(args, action.thought, specs, trajectory)
            if tool is not None:
                return FinishProblem(
                    "tool_args",
                    f"Not finished: {compact_json(args)} are the arguments of the tool "
                    f"'{tool}', not an answer. To call it, reply with \"next_node\": "
                    f'"{tool}". To finish, reply with "next_node": null and '
                    '"args": {"answer": "<the final answer>"}.',
                    tool,
                )
        if self.empty_answer and "empty_answer" not in used and _empty(payload):
            return FinishProblem(
                "empty_answer",
                'Not finished: a finish needs the answer. Reply with "next_node": null '
                'and "args": {"answer": "<the final answer>"}, or call a tool to find it.',
            )
        if self.after_error and "after_error" not in used:
            failed = _last_call_failed(trajectory)
            if failed is not None:
                return FinishProblem(
                    "after_error",
                    f"Not finished: the last call of '{failed}' failed, so its result is "
                    "unknown. Call it again (a tool can fail once) or call another tool. "
                    "If it cannot succeed, send the same finish again.",
                    failed,
                )
        if "no_tool" not in used and specs and not _tool_tried(trajectory):
            tool = self._needs_tool(trajectory.query, action.thought, specs)
            if tool is not None:
                return FinishProblem(
                    "no_tool",
                    "Not finished: no tool has been called yet. If a tool can answer this, call it "
                    f"now (for example '{tool}'); if no tool is needed, send the same "
                    "finish again.",
                    tool,
                )
        return None

    def _needs_tool(self, query: str, thought: str, specs: Sequence[NodeSpec]) -> str | None:
        rule = self.tool_first
        if rule == "never":
            return None
        if rule == "always":
            return specs[0].name
        if callable(rule):
            return specs[0].name if rule(query) else None
        lowered = thought.lower()
        for spec in specs:
            if spec.name.lower() in lowered:
                return spec.name
        words = set(_WORD.findall(query.lower()))
        for spec in specs:
            distinctive = set(_WORD.findall(spec.name.lower())) - _GENERIC_WORDS
            if distinctive & words:
                return spec.name
        return None


def record(trajectory: Trajectory, problem: FinishProblem) -> None:
    """Note in the trajectory (kept across pauses) that `problem`'s check intervened."""
    used = trajectory.hint_state.setdefault("finish_checks", [])
    if isinstance(used, list):
        used.append(problem.kind)


def _used(trajectory: Trajectory) -> set[str]:
    used = trajectory.hint_state.get("finish_checks")
    return set(used) if isinstance(used, list) else set()


def _tool_tried(trajectory: Trajectory) -> bool:
    """Whether the run has called (or tried to call) any tool: a model that tried one
    and then finished, say with the failure, did not skip the tools."""
    return any(step.action.next_node or step.action.plan for step in trajectory.steps)


def _last_call_failed(trajectory: Trajectory) -> str | None:
    """The tool of the run's latest call when that call failed, else `None`. Rejected
    finishes in between do not count as calls."""
    for step in reversed(trajectory.steps):
        action = step.action
        if action.plan:
            return None
        if action.next_node:
            return action.next_node if step.error is not None else None
    return None


def _empty(payload: Any) -> bool:
    """No payload at all (`args` null with no observation to fall back on), or an
    `answer` that is null or blank. An explicit `{}` is a payload: a caller may mean
    "done, nothing to report"."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return True
    if isinstance(payload, Mapping) and "answer" in payload:
        answer = payload["answer"]
        return answer is None or (isinstance(answer, str) and not answer.strip())
    return False


def _unmade_call(
    args: Mapping[str, Any], thought: str, specs: Sequence[NodeSpec], trajectory: Trajectory
) -> str | None:
    """The tool whose arguments `args` are (all its keys are the tool's fields and they
    validate) and that was not called with them already; among several, the one the
    thought names. A finish repeating the arguments of a call made is a report."""
    keys = set(args)
    made = {
        step.action.next_node
        for step in trajectory.steps
        if step.action.next_node and step.action.args == args
    }
    matches = []
    for spec in specs:
        if spec.name in made:
            continue
        fields = spec.args_model.model_fields
        if not keys <= set(fields):
            continue
        try:
            spec.args_model.model_validate(dict(args))
        except ValidationError:
            continue
        matches.append(spec.name)
    if not matches:
        return None
    lowered = thought.lower()
    for name in matches:
        if name.lower() in lowered:
            return name
    return matches[0]


@dataclass(frozen=True, slots=True)
class RepeatedCall:
    """The run's last two steps called `tool` and got nowhere: both failed (with any
    arguments), or the same call returned the same result."""

    tool: str
    failed: bool


def repeated_call(trajectory: Trajectory) -> RepeatedCall | None:
    """How the run's last two steps repeated themselves, if they did: a model at
    temperature 0 tends to copy its last action, or to walk through argument values
    of a tool that keeps failing."""
    steps = trajectory.steps
    if len(steps) < 2:
        return None
    last, before = steps[-1], steps[-2]
    name = last.action.next_node
    if (
        name is None
        or last.action.plan is not None
        or before.action.plan is not None
        or before.action.next_node != name
    ):
        return None
    if last.error is not None or before.error is not None:
        both = last.error is not None and before.error is not None
        return RepeatedCall(name, failed=True) if both else None
    if (before.action.args or {}) != (last.action.args or {}):
        return None
    if last.observation is None or last.observation != before.observation:
        return None
    return RepeatedCall(name, failed=False)


def repeated_failure(trajectory: Trajectory, action: PlannerAction, error: str) -> str:
    """`error`, with a note when the same call (tool and arguments) already failed in
    this run: a model shown the same error again tends to send the same call again."""
    for index, step in enumerate(trajectory.steps):
        previous = step.action
        if (
            step.error is not None
            and previous.next_node == action.next_node
            and previous.plan is None
            and (previous.args or {}) == (action.args or {})
        ):
            return (
                f"{error}\nThis exact call already failed at step {index}. Do not repeat "
                "it: change the arguments, call another tool, or finish with what you know."
            )
    return error
