"""Code written against the reference's internals: every private name still works."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import penguiflow.planner.react as react
from penguiflow.planner import (
    PlannerAction,
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
)
from penguiflow.testkit import ScriptedLLMClient

from .conftest import Question, act

ATTRIBUTES = [
    "_specs",
    "_spec_by_name",
    "_catalog_records",
    "_planning_hints",
    "_system_prompt",
    "_max_iters",
    "_repair_attempts",
    "_json_schema_mode",
    "_token_budget",
    "_pause_enabled",
    "_state_store",
    "_pause_records",
    "_active_trajectory",
    "_active_tracker",
    "_deadline_s",
    "_hop_budget",
    "_time_source",
    "_event_callback",
    "_absolute_max_parallel",
    "_action_schema",
    "_response_format",
    "_summarizer_client",
    "_client",
]


def test_the_private_attributes_read_as_the_reference_set_them(catalog: list[Any]) -> None:
    client = ScriptedLLMClient()
    store = object()
    clock = time.perf_counter
    planner = ReactPlanner(
        llm_client=client,
        catalog=catalog,
        max_iters=5,
        repair_attempts=2,
        json_schema_mode=False,
        token_budget=900,
        pause_enabled=False,
        state_store=store,
        planning_hints={"max_parallel": 3},
        deadline_s=9.0,
        hop_budget=4,
        time_source=clock,
        absolute_max_parallel=7,
    )
    values = {name: getattr(planner, name) for name in ATTRIBUTES}
    assert values["_specs"] == catalog
    assert values["_spec_by_name"] == {spec.name: spec for spec in catalog}
    assert values["_catalog_records"] == [spec.to_tool_record() for spec in catalog]
    assert values["_planning_hints"] == react._PlanningHints.from_mapping({"max_parallel": 3})
    assert values["_system_prompt"].startswith("You are the PenguiFlow ReactPlanner")
    assert values["_action_schema"] == {
        "type": "json_schema",
        "json_schema": {"name": "planner_action", "schema": PlannerAction.model_json_schema()},
    }
    rest = {k: v for k, v in values.items() if k not in {"_specs", "_spec_by_name"}}
    for shown in ("_catalog_records", "_planning_hints", "_system_prompt", "_action_schema"):
        del rest[shown]
    assert rest == {
        "_max_iters": 5,
        "_repair_attempts": 2,
        "_json_schema_mode": False,
        "_token_budget": 900,
        "_pause_enabled": False,
        "_state_store": store,
        "_pause_records": {},
        "_active_trajectory": None,
        "_active_tracker": None,
        "_deadline_s": 9.0,
        "_hop_budget": 4,
        "_time_source": clock,
        "_event_callback": None,
        "_absolute_max_parallel": 7,
        "_response_format": None,
        "_summarizer_client": None,
        "_client": client,
    }


async def test_assigning_a_private_attribute_changes_what_the_planner_does(
    catalog: list[Any],
) -> None:
    events: list[PlannerEvent] = []
    main = ScriptedLLMClient([act(next_node=None, args={"ok": 1})])
    planner = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog)
    planner._client = main
    planner._system_prompt = "custom prompt"
    planner._event_callback = events.append
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish)
    assert main.calls[0]["messages"][0] == {"role": "system", "content": "custom prompt"}
    assert [e.event_type for e in events] == ["step_start", "llm_call", "finish"]

    # The project's own example swaps the summariser in by assignment.
    summary = TrajectorySummary(goals=["q"], note="llm")
    summarizer = ScriptedLLMClient([summary.model_dump_json()])
    planner._summarizer_client = summarizer
    planner._token_budget = 1
    trajectory = Trajectory(query="q", steps=[TrajectoryStep(act_model(), observation={"a": 1})])
    assert await planner._summarise_trajectory(trajectory) == summary
    assert summarizer.calls[0]["response_format"]["json_schema"]["name"] == "trajectory_summary"


class Store:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}

    def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        self.saved[token] = payload

    def load_planner_state(self, token: str) -> dict[str, Any] | None:
        return self.saved.get(token)


async def test_a_state_store_assigned_later_is_used(catalog: list[Any]) -> None:
    store = Store()
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient([act(next_node="approve", args={"text": "x"})]),
        catalog=catalog,
    )
    planner._state_store = store
    pause = await planner.run("q")
    assert isinstance(pause, PlannerPause)
    assert list(store.saved) == [pause.resume_token]


async def test_the_private_methods_still_work(catalog: list[Any]) -> None:
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient([act(next_node=None, args={"a": 1})]),
        catalog=catalog,
        planning_hints={"ordering_hints": ["triage", "retrieve"]},
    )
    spec = planner._spec_by_name["fetch"]
    args = spec.args_model(shard=-1)
    trajectory = Trajectory(query="q")
    tracker = react._ConstraintTracker(deadline_s=None, hop_budget=None, time_source=time.time)

    assert planner._build_failure_payload(spec, args, ValueError("boom")) == {
        "node": "fetch",
        "args": {"shard": -1},
        "error_code": "ValueError",
        "message": "boom",
    }
    ctx = react._PlannerContext(planner, trajectory)
    branch = await planner._run_parallel_branch(spec, args, ctx)
    assert isinstance(branch, react._BranchExecutionResult)
    assert branch.error == "tool 'fetch' raised ValueError: negative shard"
    out_of_order = PlannerAction(thought="t", next_node="retrieve", args={})
    assert planner._check_action_constraints(out_of_order, trajectory, tracker) == (
        "Ordering hint reminder: follow the preferred sequence [triage, retrieve]. "
        "Proposed: retrieve. Revise the plan."
    )
    planner._record_hint_progress("triage", trajectory)
    assert trajectory.hint_state["ordering_state"]["completed"] == ["triage"]
    messages = await planner._build_messages(trajectory)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert planner._estimate_size(messages) == int(
        sum(len(m["content"]) + len(m["role"]) + 20 for m in messages) / 3.5
    )
    assert planner._serialise_pause_record(
        react._PauseRecord(trajectory=trajectory, reason="await_input", payload={"k": 1})
    ) == {
        "trajectory": trajectory.serialise(),
        "reason": "await_input",
        "payload": {"k": 1},
        "constraints": None,
    }
    with pytest.raises(react._PlannerPauseSignal) as signal:
        await planner._pause_from_context("await_input", {"k": 1}, trajectory)
    pause = signal.value.pause
    await planner._record_pause(pause, trajectory, tracker)
    loaded = await planner._load_pause_record(pause.resume_token)
    assert (loaded.reason, loaded.payload) == ("await_input", {"k": 1})
    record = react._PauseRecord(trajectory=trajectory, reason="external_event", payload={})
    await planner._store_pause_record("t" * 32, record)
    assert planner._pause_records["t" * 32] is record
    finished = planner._finish(trajectory, reason="no_path", payload=None, thought="x")
    assert finished.metadata == {"reason": "no_path", "thought": "x", "steps": [], "step_count": 0}
    observation, paused = await planner._execute_parallel_plan(
        PlannerAction(thought="t", plan=[{"node": "fetch", "args": {"shard": 2}}]),
        trajectory,
        tracker,
    )
    assert (observation["stats"], paused) == ({"success": 1, "failed": 0}, None)
    result = await planner._run_loop(Trajectory(query="q"), tracker=None)
    assert isinstance(result, PlannerFinish)


def test_the_emitted_event_goes_to_the_log_and_the_callback(
    catalog: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    events: list[PlannerEvent] = []
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient(), catalog=catalog, event_callback=events.append
    )
    event = PlannerEvent("custom", ts=1.0, trajectory_step=0, extra={"k": "v"})
    with caplog.at_level(logging.INFO, logger="penguiflow.planner"):
        planner._emit_event(event)
    assert events == [event]
    assert [(r.message, r.k) for r in caplog.records] == [("custom", "v")]  # type: ignore[attr-defined]


async def test_the_context_pause_of_the_reference(catalog: list[Any]) -> None:
    planner = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog)
    ctx = react._PlannerContext(planner, Trajectory(query="q", context_meta={"a": 1}))
    assert ctx.meta == {"a": 1}
    with pytest.raises(react._PlannerPauseSignal) as signal:
        await ctx.pause("approval_required", {"x": 1})
    assert signal.value.pause.payload == {"x": 1}
    assert str(signal.value) == "approval_required"
    off = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog, pause_enabled=False)
    with pytest.raises(RuntimeError, match="Pause/resume is disabled for this planner"):
        await react._PlannerContext(off, Trajectory(query="q")).pause("await_input")


def act_model() -> PlannerAction:
    return PlannerAction(thought="t", next_node="triage", args=Question(text="x").model_dump())
