"""The planner's data models: actions, pauses, finishes, events and trajectories."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from penguiflow.planner.models import (
    ParallelCall,
    ParallelJoin,
    PlannerAction,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
    action_json_schema,
    action_schema,
    summary_schema,
)
from penguiflow.planner.prompts import render_action, render_observation


class Intent(BaseModel):
    intent: str


# -- actions -------------------------------------------------------------------------


def test_sequential_parallel_and_finish_actions_parse_from_llm_json() -> None:
    call = PlannerAction.model_validate_json(
        '{"thought": "triage", "next_node": "triage", "args": {"text": "How?"}}'
    )
    fan_out = PlannerAction.model_validate_json(
        '{"thought": "fan", "plan": [{"node": "fetch", "args": {"shard": 0}}, {"node": "fetch"}],'
        ' "join": {"node": "merge"}}'
    )
    finish = PlannerAction.model_validate_json(
        '{"thought": "done", "next_node": null, "args": {"answer": 42}, "unknown": 1}'
    )

    assert call.next_node == "triage"
    assert call.args == {"text": "How?"}
    assert fan_out.plan == [
        ParallelCall(node="fetch", args={"shard": 0}),
        ParallelCall(node="fetch", args={}),
    ]
    assert fan_out.join == ParallelJoin(node="merge", args={})
    assert finish.next_node is None
    assert finish.args == {"answer": 42}


def test_action_requires_a_thought() -> None:
    with pytest.raises(ValidationError) as info:
        PlannerAction.model_validate_json('{"next_node": "triage"}')
    assert info.value.errors()[0]["loc"] == ("thought",)


def test_action_dump_always_has_all_five_keys() -> None:
    action = PlannerAction(thought="fan", plan=[ParallelCall(node="fetch", args={"shard": 1})])

    assert action.model_dump(mode="json") == {
        "thought": "fan",
        "next_node": None,
        "args": None,
        "plan": [{"node": "fetch", "args": {"shard": 1}}],
        "join": None,
    }


def test_action_schema_is_the_response_format_and_is_computed_once() -> None:
    schema = action_json_schema()

    assert schema == PlannerAction.model_json_schema()
    assert schema["required"] == ["thought"]
    assert set(schema["$defs"]) == {"ParallelCall", "ParallelJoin"}
    assert action_schema() == {
        "type": "json_schema",
        "json_schema": {"name": "planner_action", "schema": schema},
    }
    assert action_json_schema() is schema
    assert action_schema() is action_schema()
    assert summary_schema() == {
        "type": "json_schema",
        "json_schema": {
            "name": "trajectory_summary",
            "schema": TrajectorySummary.model_json_schema(),
        },
    }


# -- pause, finish, events -----------------------------------------------------------


def test_pause_accepts_only_known_reasons() -> None:
    pause = PlannerPause(reason="approval_required", resume_token="ab" * 16)

    assert pause.payload == {}
    with pytest.raises(ValidationError):
        PlannerPause(reason="coffee_break", resume_token="t")  # type: ignore[arg-type]


def test_finish_defaults_and_reasons() -> None:
    finish = PlannerFinish(reason="no_path")

    assert (finish.payload, finish.metadata) == (None, {})
    with pytest.raises(ValidationError):
        PlannerFinish(reason="gave_up")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (
            PlannerEvent("step_start", ts=3.0, trajectory_step=0),
            {"event": "step_start", "ts": 3.0, "step": 0},
        ),
        (
            PlannerEvent(
                "step_complete",
                ts=5.0,
                trajectory_step=0,
                thought="a",
                node_name="triage",
                latency_ms=1000.0,
            ),
            {
                "event": "step_complete",
                "ts": 5.0,
                "step": 0,
                "thought": "a",
                "node_name": "triage",
                "latency_ms": 1000.0,
            },
        ),
        (
            PlannerEvent("resume", ts=12.0, trajectory_step=2, extra={"user_input": "ok"}),
            {"event": "resume", "ts": 12.0, "step": 2, "user_input": "ok"},
        ),
        (
            PlannerEvent(
                "finish",
                ts=16.0,
                trajectory_step=2,
                thought="done",
                extra={"reason": "answer_complete"},
            ),
            {
                "event": "finish",
                "ts": 16.0,
                "step": 2,
                "thought": "done",
                "reason": "answer_complete",
            },
        ),
    ],
)
def test_event_payloads(event: PlannerEvent, payload: dict[str, Any]) -> None:
    assert event.to_payload() == payload
    assert list(event.to_payload()) == list(payload)


def test_event_extra_overrides_earlier_keys_and_events_are_frozen() -> None:
    event = PlannerEvent("x", ts=1.0, trajectory_step=0, error="boom", extra={"step": 9})

    assert event.to_payload() == {"event": "x", "ts": 1.0, "step": 9, "error": "boom"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.ts = 2.0  # type: ignore[misc]


# -- summary -------------------------------------------------------------------------


def test_summary_compact_adds_note_only_when_set() -> None:
    plain = TrajectorySummary(goals=["q"], facts={"a": 1})
    noted = TrajectorySummary(pending=["retry x"], note="llm")

    assert plain.compact() == {
        "goals": ["q"],
        "facts": {"a": 1},
        "pending": [],
        "last_output_digest": None,
    }
    assert noted.compact()["note"] == "llm"


# -- steps and trajectories ----------------------------------------------------------


def test_step_dump_serialises_model_observations_and_drops_empty_failures() -> None:
    ok = TrajectoryStep(
        PlannerAction(thought="t", next_node="triage"), observation=Intent(intent="docs")
    )
    failed = TrajectoryStep(PlannerAction(thought="t", next_node="x"), error="bad", failure={})

    assert ok.dump() == {
        "action": {"thought": "t", "next_node": "triage", "args": None, "plan": None, "join": None},
        "observation": {"intent": "docs"},
        "error": None,
        "failure": None,
    }
    assert failed.dump()["failure"] is None
    assert [f.name for f in dataclasses.fields(TrajectoryStep) if f.init] == [
        "action",
        "observation",
        "error",
        "failure",
    ]


def test_step_prompt_messages_are_the_conversation_pair() -> None:
    step = TrajectoryStep(
        PlannerAction(thought="triage", next_node="triage", args={"text": "How?"}),
        observation=Intent(intent="docs"),
    )

    assistant, user = step.prompt_messages()

    assert assistant == {
        "role": "assistant",
        # In the order a reply is asked for (not sorted, which put args first).
        "content": '{"thought": "triage", "next_node": "triage", "args": {"text": "How?"}}',
    }
    assert user == {"role": "user", "content": '{"observation": {"intent": "docs"}}'}
    assert step.prompt_messages() is step.prompt_messages()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)
_args = st.none() | st.dictionaries(st.text(), _json_values, max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    thought=st.text(),
    next_node=st.none() | st.text(),
    args=_args,
    plan=st.none() | st.lists(st.tuples(st.text(), _args), max_size=4),
    join=st.none() | st.tuples(st.text(), _args),
)
def test_step_assistant_message_is_the_rendered_json_mode_dump(
    thought: str,
    next_node: str | None,
    args: dict[str, Any] | None,
    plan: list[tuple[str, dict[str, Any] | None]] | None,
    join: tuple[str, dict[str, Any] | None] | None,
) -> None:
    action = PlannerAction(
        thought=thought,
        next_node=next_node,
        args=args,
        plan=None if plan is None else [{"node": n, "args": a or {}} for n, a in plan],
        join=None if join is None else {"node": join[0], "args": join[1] or {}},
    )

    assistant, _ = TrajectoryStep(action).prompt_messages()

    assert assistant["content"] == render_action(action.model_dump(mode="json"))


@pytest.mark.parametrize(
    "args",
    [
        {"when": datetime.date(2026, 12, 4)},
        {"amount": float("nan")},
        {"ids": {1, 2}},
        {"nested": Intent(intent="docs")},
    ],
)
def test_step_assistant_message_dumps_values_json_cannot_hold_as_they_are(
    args: dict[str, Any],
) -> None:
    action = PlannerAction(thought="t", next_node="x", args=args)

    assistant, _ = TrajectoryStep(action).prompt_messages()

    assert assistant["content"] == render_action(action.model_dump(mode="json"))


def test_step_prompt_messages_follow_reassigned_fields() -> None:
    step = TrajectoryStep(PlannerAction(thought="t", next_node="x"))
    assert step.prompt_messages()[1]["content"] == '{"observation": null}'

    step.error = "tool 'x' raised ValueError: nope"
    step.failure = {"node": "x"}

    assert json.loads(step.prompt_messages()[1]["content"]) == {
        "error": "tool 'x' raised ValueError: nope",
        "failure": {"node": "x"},
    }


def test_serialise_and_from_serialised_round_trip() -> None:
    trajectory = Trajectory(query="How?", context_meta={"tenant": "acme"})
    trajectory.steps.append(
        TrajectoryStep(
            PlannerAction(thought="triage", next_node="triage", args={"text": "How?"}),
            observation=Intent(intent="docs"),
        )
    )
    trajectory.steps.append(
        TrajectoryStep(
            PlannerAction(thought="again", next_node="fetch"),
            error="tool 'fetch' raised ValueError: negative shard",
            failure={"node": "fetch", "error_code": "ValueError"},
        )
    )
    trajectory.hint_state["ordering_state"] = {"completed": ["triage"], "warned": False}
    trajectory.resume_user_input = "approved"
    trajectory.compress()

    data = trajectory.serialise()
    restored = Trajectory.from_serialised(json.loads(json.dumps(data)))

    assert data["steps"][0]["observation"] == {"intent": "docs"}
    assert data["summary"]["note"] == "rule_based"
    assert restored.steps[0].observation == {"intent": "docs"}  # models come back as dicts
    assert restored.steps[1].failure == {"node": "fetch", "error_code": "ValueError"}
    assert restored.summary == trajectory.summary
    assert restored.serialise() == data


def test_from_serialised_defaults_and_errors() -> None:
    restored = Trajectory.from_serialised({"query": "q"})

    assert (restored.context_meta, restored.steps, restored.summary) == (None, [], None)
    assert (restored.hint_state, restored.resume_user_input) == ({}, None)
    assert Trajectory(query="q").serialise() == {
        "query": "q",
        "context_meta": {},
        "steps": [],
        "summary": None,
        "hint_state": {},
        "resume_user_input": None,
    }
    with pytest.raises(KeyError):
        Trajectory.from_serialised({"steps": []})
    with pytest.raises(TypeError, match="expects a mapping"):
        Trajectory.from_serialised(["query"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Trajectory.from_serialised({"query": "q", "steps": [{"action": {"next_node": "x"}}]})


def test_compress_builds_the_rule_based_summary() -> None:
    trajectory = Trajectory(query="How?")
    trajectory.steps.append(
        TrajectoryStep(PlannerAction(thought="a", next_node="fetch"), error="e1")
    )
    trajectory.steps.append(TrajectoryStep(PlannerAction(thought="b", plan=[]), error="e2"))
    trajectory.steps.append(
        TrajectoryStep(
            PlannerAction(thought="c", next_node="retrieve"),
            observation={"documents": ["é" * 200]},
            error="e3",
        )
    )

    summary = trajectory.compress()

    assert trajectory.summary is summary
    assert summary.goals == ["How?"]
    assert summary.pending == ["retry fetch", "retry finish", "retry retrieve"]
    assert summary.facts == {"last_observation": {"documents": ["é" * 200]}, "last_error": "e3"}
    assert summary.last_output_digest == ('{"documents": ["' + "é" * 200)[:117] + "..."
    assert summary.note == "rule_based"


def test_compress_without_observation_has_no_digest() -> None:
    trajectory = Trajectory(query="q")
    assert trajectory.compress() == TrajectorySummary(goals=["q"], note="rule_based")

    trajectory.steps.append(
        TrajectoryStep(PlannerAction(thought="a", next_node="x"), observation=[1])
    )
    assert trajectory.compress().last_output_digest == "[1]"


# -- properties ----------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_names = st.text(min_size=1, max_size=8)
_actions = st.builds(
    PlannerAction,
    thought=st.text(max_size=20),
    next_node=st.none() | _names,
    args=st.none() | st.dictionaries(st.text(max_size=5), _json, max_size=3),
    plan=st.none()
    | st.lists(
        st.builds(
            ParallelCall, node=_names, args=st.dictionaries(st.text(max_size=4), _json, max_size=2)
        ),
        max_size=3,
    ),
    join=st.none() | st.builds(ParallelJoin, node=_names),
)
_steps = st.builds(
    TrajectoryStep,
    action=_actions,
    observation=_json | st.builds(Intent, intent=st.text(max_size=8)),
    error=st.none() | st.text(max_size=10),
    failure=st.none() | st.dictionaries(st.text(max_size=5), _json, max_size=2),
)
_trajectories = st.builds(
    Trajectory,
    query=st.text(max_size=20),
    context_meta=st.none() | st.dictionaries(st.text(max_size=5), _json, max_size=2),
    steps=st.lists(_steps, max_size=5),
    summary=st.none()
    | st.builds(
        TrajectorySummary,
        goals=st.lists(st.text(max_size=5), max_size=2),
        note=st.none() | st.text(max_size=5),
    ),
    hint_state=st.dictionaries(st.text(max_size=5), _json, max_size=2),
    resume_user_input=st.none() | st.text(max_size=10),
)


@settings(max_examples=60, deadline=None)
@given(_trajectories)
def test_serialise_round_trip_is_stable(trajectory: Trajectory) -> None:
    data = trajectory.serialise()
    restored = Trajectory.from_serialised(json.loads(json.dumps(data)))

    assert restored.serialise() == data
    assert [step.action for step in restored.steps] == [step.action for step in trajectory.steps]


@settings(max_examples=60, deadline=None)
@given(_trajectories, st.lists(_steps, max_size=4))
def test_incremental_prompt_messages_equal_a_full_reserialisation(
    trajectory: Trajectory, later: list[TrajectoryStep]
) -> None:
    trajectory.prompt_messages()  # warm the per-step caches
    for step in later:
        trajectory.steps.append(step)
        trajectory.prompt_messages()

    fresh: list[dict[str, str]] = []
    for entry in trajectory.serialise()["steps"]:
        fresh.append(
            {
                "role": "assistant",
                "content": render_action(entry["action"]),
            }
        )
        fresh.append(
            {
                "role": "user",
                "content": render_observation(
                    observation=entry["observation"], error=entry["error"], failure=entry["failure"]
                ),
            }
        )
    assert trajectory.prompt_messages() == fresh


def test_prompt_messages_reuse_earlier_steps() -> None:
    trajectory = Trajectory(query="q")
    for index in range(20):
        trajectory.steps.append(
            TrajectoryStep(
                PlannerAction(thought=str(index), next_node="x"), observation={"i": index}
            )
        )
        trajectory.prompt_messages()
    first_pair = trajectory.steps[0].prompt_messages()

    messages = trajectory.prompt_messages()

    assert messages[0] is first_pair[0]
    assert messages[1] is first_pair[1]
    assert len(messages) == 40
