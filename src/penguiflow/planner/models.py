"""The planner's data: actions the LLM proposes, pauses, finishes, events, trajectories."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ParallelCall",
    "ParallelJoin",
    "PlannerAction",
    "PlannerPauseReason",
    "PlannerPause",
    "PlannerFinish",
    "PlannerEvent",
    "PlannerEventCallback",
    "TrajectorySummary",
    "TrajectoryStep",
    "Trajectory",
    "action_schema",
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
    """The JSON object the LLM must produce on every turn."""

    thought: str
    next_node: str | None = None
    args: dict[str, Any] | None = None
    plan: list[ParallelCall] | None = None
    join: ParallelJoin | None = None


PlannerPauseReason = Literal[
    "approval_required", "await_input", "external_event", "constraints_conflict"
]


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
        """The event as a flat dict (`event`, `ts`, `step`, set fields, then `extra`)."""
        payload: dict[str, Any] = {
            "event": self.event_type,
            "ts": self.ts,
            "step": self.trajectory_step,
        }
        for key in ("thought", "node_name", "latency_ms", "token_estimate", "error"):
            value = getattr(self, key)
            if value is not None:
                payload[key] = value
        if self.extra:
            payload.update(self.extra)
        return payload


PlannerEventCallback = Callable[[PlannerEvent], None]


class TrajectorySummary(BaseModel):
    """A condensed view of a trajectory, used when the history exceeds the token budget."""

    goals: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    pending: list[str] = Field(default_factory=list)
    last_output_digest: str | None = None
    note: str | None = None

    def compact(self) -> dict[str, Any]:
        """The summary as a plain dict (`note` only when set)."""
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
        return observation.model_dump(mode="json")
    return observation


@dataclass(slots=True)
class TrajectoryStep:
    """One planner turn: the action and what came of it."""

    action: PlannerAction
    observation: Any | None = None
    error: str | None = None
    failure: Mapping[str, Any] | None = None
    # The two conversation messages of this step, built once (steps are append-only),
    # so building the prompt costs O(new steps), not O(history), per turn.
    _messages: tuple[dict[str, str], dict[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _serialise_observation(self) -> Any:
        return _serialise(self.observation)

    def dump(self) -> dict[str, Any]:
        """The step as JSON-friendly data."""
        return {
            "action": self.action.model_dump(mode="json"),
            "observation": self._serialise_observation(),
            "error": self.error,
            "failure": dict(self.failure) if self.failure else None,
        }


@dataclass(slots=True)
class Trajectory:
    """Everything a run has done so far; serialisable for pauses."""

    query: str
    context_meta: Mapping[str, Any] | None = None
    steps: list[TrajectoryStep] = field(default_factory=list)
    summary: TrajectorySummary | None = None
    hint_state: dict[str, Any] = field(default_factory=dict)
    resume_user_input: str | None = None

    def to_history(self) -> list[dict[str, Any]]:
        """Every step, dumped."""
        return [step.dump() for step in self.steps]

    def serialise(self) -> dict[str, Any]:
        """The trajectory as data (`from_serialised` reads it back)."""
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
        """Rebuild a trajectory from `serialise()` output (observations stay plain data)."""
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
        """The rule-based summary (also stored in `summary`)."""
        facts: dict[str, Any] = {}
        pending: list[str] = []
        last_observation: Any = None
        captured = False
        if self.steps:
            last = self.steps[-1]
            if last.observation is not None:
                last_observation = last._serialise_observation()
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
def action_schema() -> dict[str, Any]:
    """The `response_format` sent to the LLM (computed once per process)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "planner_action", "schema": PlannerAction.model_json_schema()},
    }


@cache
def summary_schema() -> dict[str, Any]:
    """The `response_format` of the summariser call (computed once per process)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "trajectory_summary",
            "schema": TrajectorySummary.model_json_schema(),
        },
    }
