"""The planner's data: actions the LLM proposes, pauses, finishes, events, trajectories.

Everything here is plain data plus serialisation. `react.py` re-exports these names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field

from .prompts import build_user_prompt, render_action, render_json_action, render_observation
from .validation import dump_json

__all__ = [
    "ParallelCall",
    "ParallelJoin",
    "PlannerAction",
    "PlannerEvent",
    "PlannerEventCallback",
    "PlannerFinish",
    "PlannerPause",
    "PlannerPauseReason",
    "Trajectory",
    "TrajectoryStep",
    "TrajectorySummary",
    "action_json_schema",
    "action_schema",
    "summary_schema",
]


class ParallelCall(BaseModel):
    """One branch of a parallel plan: a tool name and its arguments."""

    node: str
    args: dict[str, Any] = Field(default_factory=dict)


class ParallelJoin(BaseModel):
    """The tool that receives the results of a parallel plan."""

    node: str
    args: dict[str, Any] = Field(default_factory=dict)


class PlannerAction(BaseModel):
    """The JSON object the LLM must produce on every turn.

    Three shapes are meaningful: a sequential call (`next_node` + `args`), a parallel
    fan-out (`plan`, optional `join`, `next_node` null) and a finish (`next_node`
    null, the final payload in `args`).
    """

    thought: str
    next_node: str | None = None
    args: dict[str, Any] | None = None
    plan: list[ParallelCall] | None = None
    join: ParallelJoin | None = None


PlannerPauseReason = Literal[
    "approval_required", "await_input", "external_event", "constraints_conflict"
]
"""Why a run paused. The planner never produces `"constraints_conflict"` itself."""


class PlannerPause(BaseModel):
    """A run suspended until `ReactPlanner.resume(resume_token, ...)` is called."""

    reason: PlannerPauseReason
    payload: dict[str, Any] = Field(default_factory=dict)
    resume_token: str


class PlannerFinish(BaseModel):
    """The end of a run: why, the final payload and the run's metadata."""

    reason: Literal["answer_complete", "no_path", "budget_exhausted"]
    payload: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


_EVENT_OPTIONAL_FIELDS = ("thought", "node_name", "latency_ms", "token_estimate", "error")


@dataclass(frozen=True, slots=True)
class PlannerEvent:
    """A structured planner event, given to `event_callback` and logged."""

    event_type: str
    ts: float
    trajectory_step: int
    thought: str | None = None
    node_name: str | None = None
    latency_ms: float | None = None
    token_estimate: int | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The event as a flat dict.

        Keys in order: `event`, `ts`, `step`, then each optional field that is not
        `None`, then `extra` merged last (so its keys may overwrite earlier ones).
        """
        payload: dict[str, Any] = {
            "event": self.event_type,
            "ts": self.ts,
            "step": self.trajectory_step,
        }
        for key in _EVENT_OPTIONAL_FIELDS:
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        if self.extra:
            payload.update(self.extra)
        return payload


PlannerEventCallback = Callable[[PlannerEvent], None]
"""A synchronous callable receiving every emitted `PlannerEvent`; its result is ignored."""


class TrajectorySummary(BaseModel):
    """A condensed view of a trajectory, used when the history exceeds the token budget."""

    goals: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    pending: list[str] = Field(default_factory=list)
    last_output_digest: str | None = None
    note: str | None = None

    def compact(self) -> dict[str, Any]:
        """The summary as a plain dict (`note` only when it is truthy)."""
        data: dict[str, Any] = {
            "goals": list(self.goals),
            "facts": dict(self.facts),
            "pending": list(self.pending),
            "last_output_digest": self.last_output_digest,
        }
        if self.note:
            data["note"] = self.note
        return data


def _serialise(observation: Any) -> Any:
    if isinstance(observation, BaseModel):
        return dump_json(observation)
    return observation


@dataclass(slots=True)
class TrajectoryStep:
    """One planner turn: the action and what came of it.

    `observation` is the validated output model of a successful sequential step, a
    plain dict for parallel and pause steps, and `None` for error steps.
    """

    action: PlannerAction
    observation: Any | None = None
    error: str | None = None
    failure: Mapping[str, Any] | None = None
    # The step's prompt messages, built once (steps are append-only) so a turn costs
    # O(new steps) rather than O(history), with the four field values they were built
    # from, compared by identity: re-assigning a field invalidates the cache (mutating
    # an observation in place does not). Separate slots rather than a key tuple: one
    # object fewer per step for the garbage collector to track.
    _messages: tuple[dict[str, str], dict[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _built_action: Any = field(default=None, init=False, repr=False, compare=False)
    _built_observation: Any = field(default=None, init=False, repr=False, compare=False)
    _built_error: Any = field(default=None, init=False, repr=False, compare=False)
    _built_failure: Any = field(default=None, init=False, repr=False, compare=False)

    def serialised_observation(self) -> Any:
        """The observation as JSON-mode data (a model is dumped; other values as is)."""
        return _serialise(self.observation)

    # The reference implementation's private name for `serialised_observation`, kept
    # for code written against its internals (see docs/compatibility.md).
    _serialise_observation = serialised_observation

    def dump(self) -> dict[str, Any]:
        """The step as data: action dump, serialised observation, error, failure.

        An empty `failure` mapping dumps as `None`. Non-model observations are not
        copied.
        """
        return {
            "action": dump_json(self.action),
            "observation": self.serialised_observation(),
            "error": self.error,
            "failure": dict(self.failure) if self.failure else None,
        }

    def prompt_messages(self) -> tuple[dict[str, str], dict[str, str]]:
        """The step's assistant/user message pair for the LLM conversation.

        Built on first use and cached; the returned dicts are shared between calls
        and must not be mutated.
        """
        cached = self._messages
        if (
            cached is not None
            and self._built_action is self.action
            and self._built_observation is self.observation
            and self._built_error is self.error
            and self._built_failure is self.failure
        ):
            return cached
        cached = (
            {"role": "assistant", "content": _action_message(self.action)},
            {
                "role": "user",
                "content": render_observation(
                    observation=self.serialised_observation(),
                    error=self.error,
                    failure=self.failure,
                ),
            },
        )
        self._messages = cached
        self._built_action = self.action
        self._built_observation = self.observation
        self._built_error = self.error
        self._built_failure = self.failure
        return cached


def _action_message(action: PlannerAction) -> str:
    """`render_action(dump_json(action))`, without the dump when it would change nothing.

    An action parsed from a reply holds only JSON values, which its JSON-mode dump
    copies as they are; its fields are written directly. An action built in Python
    with other values (models, dates, sets, NaN) is dumped first. (A `None` key in
    `args` is the one value written differently: `null` instead of `"None"`.)
    """
    plan, join = action.plan, action.join
    text = render_json_action(
        action.thought,
        action.next_node,
        action.args,
        None if plan is None else [{"node": c.node, "args": c.args} for c in plan],
        None if join is None else {"node": join.node, "args": join.args},
    )
    return text if text is not None else render_action(dump_json(action))


@dataclass(slots=True)
class Trajectory:
    """Everything a run has done so far; serialisable for pauses.

    `hint_state` holds ordering-hint progress:
    `{"ordering_state": {"completed": [...], "warned": bool}}`.
    """

    query: str
    context_meta: Mapping[str, Any] | None = None
    steps: list[TrajectoryStep] = field(default_factory=list)
    summary: TrajectorySummary | None = None
    hint_state: dict[str, Any] = field(default_factory=dict)
    resume_user_input: str | None = None
    # The first user message, built once for the query and context it holds (compared
    # by identity: re-assigning either rebuilds it).
    _user_message: dict[str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _user_query: Any = field(default=None, init=False, repr=False, compare=False)
    _user_context: Any = field(default=None, init=False, repr=False, compare=False)

    def user_message(self) -> dict[str, str]:
        """The first user message of the conversation: the query and, when set, the context.

        Built on first use and cached; the returned dict is shared and must not be mutated.
        """
        message = self._user_message
        if (
            message is not None
            and self._user_query is self.query
            and self._user_context is self.context_meta
        ):
            return message
        message = {"role": "user", "content": build_user_prompt(self.query, self.context_meta)}
        self._user_message = message
        self._user_query = self.query
        self._user_context = self.context_meta
        return message

    def append(self, step: TrajectoryStep) -> None:
        """Add a step; the cached summary no longer describes the history, so it is dropped."""
        self.steps.append(step)
        self.summary = None

    def to_history(self) -> list[dict[str, Any]]:
        """Every step, dumped (`TrajectoryStep.dump`)."""
        return [step.dump() for step in self.steps]

    def prompt_messages(self) -> list[dict[str, str]]:
        """The assistant/user message pairs of every step, in order (cached per step)."""
        messages: list[dict[str, str]] = []
        for step in self.steps:
            messages.extend(step.prompt_messages())
        return messages

    def serialise(self) -> dict[str, Any]:
        """The trajectory as data; `from_serialised` reads it back.

        Values are not JSON-encoded: `context_meta` and pause payload values are
        stored as given.
        """
        return {
            "query": self.query,
            "context_meta": dict(self.context_meta or {}),
            "steps": self.to_history(),
            "summary": self.summary.model_dump(mode="json") if self.summary else None,
            "hint_state": dict(self.hint_state),
            "resume_user_input": self.resume_user_input,
        }

    @classmethod
    def from_serialised(cls, payload: Mapping[str, Any]) -> Trajectory:
        """Rebuild a trajectory from `serialise()` output.

        Model observations come back as plain JSON dicts. Raises `KeyError` when
        `query` (or a step's `action`) is missing, `TypeError` when `payload` is not
        a mapping, and pydantic `ValidationError` for an invalid action or summary.
        """
        if not isinstance(payload, Mapping):
            raise TypeError(
                f"Trajectory.from_serialised expects a mapping, got {type(payload).__name__}"
            )
        trajectory = cls(query=payload["query"], context_meta=payload.get("context_meta"))
        for entry in payload.get("steps", []):
            trajectory.steps.append(
                TrajectoryStep(
                    action=PlannerAction.model_validate(entry["action"]),
                    observation=entry.get("observation"),
                    error=entry.get("error"),
                    failure=entry.get("failure"),
                )
            )
        summary = payload.get("summary")
        if summary:
            trajectory.summary = TrajectorySummary.model_validate(summary)
        trajectory.hint_state.update(payload.get("hint_state", {}))
        trajectory.resume_user_input = payload.get("resume_user_input")
        return trajectory

    def compress(self) -> TrajectorySummary:
        """The rule-based summary; also stored in `self.summary`.

        Facts hold the last step's observation and error; `pending` has one
        `retry <node or 'finish'>` per error step; the digest is the last
        observation's JSON cut to 120 characters.
        """
        facts: dict[str, Any] = {}
        pending: list[str] = []
        last_observation: Any = None
        captured = False
        if self.steps:
            last = self.steps[-1]
            if last.observation is not None:
                last_observation = last.serialised_observation()
                facts["last_observation"] = last_observation
                captured = True
            if last.error:
                facts["last_error"] = last.error
        for step in self.steps:
            if step.error:
                pending.append(f"retry {step.action.next_node or 'finish'}")
        digest: str | None = None
        if captured:
            digest = json.dumps(last_observation, ensure_ascii=False)
            if len(digest) > 120:
                digest = digest[:117] + "..."
        summary = TrajectorySummary(
            goals=[self.query],
            facts=facts,
            pending=pending,
            last_output_digest=digest,
            note="rule_based",
        )
        self.summary = summary
        return summary


@cache
def action_json_schema() -> dict[str, Any]:
    """`PlannerAction.model_json_schema()`, computed once per process (do not mutate)."""
    return PlannerAction.model_json_schema()


@cache
def action_schema() -> dict[str, Any]:
    """The planner's `response_format` (the "action schema"), built once (do not mutate)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "planner_action", "schema": action_json_schema()},
    }


@cache
def summary_schema() -> dict[str, Any]:
    """The summariser call's `response_format`, built once (do not mutate)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "trajectory_summary",
            "schema": TrajectorySummary.model_json_schema(),
        },
    }
