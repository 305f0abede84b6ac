"""Pause and resume: in memory, through a state store, once per token."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner.errors import ResumeLoadError
from penguiflow.planner.pause import DEFAULT_STORE_TIMEOUT_S, PlannerStateMethods
from penguiflow.testkit import ScriptedLLMClient

from .conftest import Calls, act


class DictStore:
    """A planner state store kept in a dict (sync methods are allowed)."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.saves = 0

    def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        self.saves += 1
        self.saved[token] = payload

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        return self.saved.get(token)


def approval_script() -> list[str]:
    return [
        act("needs approval", next_node="approve", args={"text": "ship it"}),
        act("approved", next_node=None, args={"shipped": True}),
    ]


async def test_a_tool_pauses_and_resume_continues_without_rerunning_it(
    catalog: list[Any], calls: Calls
) -> None:
    events: list[PlannerEvent] = []
    llm = ScriptedLLMClient(approval_script())
    p = ReactPlanner(llm_client=llm, catalog=catalog, event_callback=events.append)
    paused = await p.run("ship")
    assert isinstance(paused, PlannerPause)
    assert paused.reason == "approval_required"
    assert paused.payload == {"text": "ship it"}
    assert re.fullmatch(r"[0-9a-f]{32}", paused.resume_token)
    assert [e.event_type for e in events][-1] == "pause"

    result = await p.resume(paused.resume_token, user_input="approved")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"shipped": True}
    assert calls.names() == ["approve"]  # not re-executed
    assert llm.calls[1]["messages"][-1] == {"role": "user", "content": "Resume input: approved"}
    assert result.metadata["steps"][0]["observation"] == {
        "pause": "approval_required",
        "payload": {"text": "ship it"},
    }
    with pytest.raises(KeyError):
        await p.resume(paused.resume_token)  # single use in memory


async def test_a_state_store_gets_one_complete_record_and_another_planner_resumes(
    catalog: list[Any], calls: Calls
) -> None:
    store = DictStore()
    first = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()[:1]), catalog=catalog, state_store=store
    )
    paused = await first.run("ship")
    assert isinstance(paused, PlannerPause)
    assert store.saves == 1
    record = store.saved[paused.resume_token]
    assert record["reason"] == "approval_required"
    assert len(record["trajectory"]["steps"]) == 1  # the pausing step is included

    second = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()[1:]), catalog=catalog, state_store=store
    )
    result = await second.resume(paused.resume_token, user_input="ok")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"shipped": True}
    assert calls.names() == ["approve"]


async def test_store_failures_are_logged_and_the_pause_still_works(
    catalog: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
            raise OSError("disk full")

    events: list[PlannerEvent] = []
    p = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()),
        catalog=catalog,
        state_store=Broken(),
        event_callback=events.append,
    )
    paused = await p.run("ship")
    assert isinstance(paused, PlannerPause)
    pause_event = events[-1]
    assert pause_event.event_type == "pause"
    assert pause_event.extra["persisted"] is False
    assert pause_event.error == "state store save failed: OSError: disk full"
    failure = [r for r in caplog.records if r.message == "state_store_save_failed"]
    assert failure
    assert failure[0].error_type == "OSError"  # type: ignore[attr-defined]
    assert isinstance(await p.resume(paused.resume_token), PlannerFinish)


async def test_pause_disabled_turns_the_pause_into_an_error_step(catalog: list[Any]) -> None:
    p = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()), catalog=catalog, pause_enabled=False
    )
    result = await p.run("ship")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][0]["error"] == (
        "tool 'approve' raised RuntimeError: Pause/resume is disabled for this planner"
    )


async def test_unknown_tokens_and_pause_outside_a_run(catalog: list[Any]) -> None:
    p = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog)
    with pytest.raises(KeyError):
        await p.resume("0" * 32)
    with pytest.raises(RuntimeError, match="requires an active planner run"):
        await p.pause("await_input")
    assert p._pause_records == {}


async def test_a_store_with_only_some_planner_state_methods_is_used_for_those(
    catalog: list[Any], calls: Calls
) -> None:
    class SaveOnly:
        def __init__(self) -> None:
            self.saved: dict[str, dict[str, Any]] = {}

        async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
            self.saved[token] = payload

    class LoadOnly:
        def __init__(self, saved: dict[str, dict[str, Any]]) -> None:
            self.saved = saved

        def load_planner_state(self, token: str) -> dict[str, Any] | None:
            return self.saved.get(token)

    events: list[PlannerEvent] = []
    saving = SaveOnly()
    first = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()[:1]),
        catalog=catalog,
        state_store=saving,
        event_callback=events.append,
    )
    paused = await first.run("ship")
    assert isinstance(paused, PlannerPause)
    assert list(saving.saved) == [paused.resume_token]
    assert events[-1].extra == {"reason": "approval_required", "persisted": True}

    second = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()[1:]),
        catalog=catalog,
        state_store=LoadOnly(saving.saved),
    )
    assert isinstance(await second.resume(paused.resume_token), PlannerFinish)

    events.clear()
    nothing = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()),
        catalog=catalog,
        state_store=object(),
        event_callback=events.append,
    )
    paused = await nothing.run("ship")
    assert isinstance(paused, PlannerPause)
    assert events[-1].extra == {"reason": "approval_required"}  # nothing to persist to
    assert isinstance(await nothing.resume(paused.resume_token), PlannerFinish)  # from memory
    with pytest.raises(KeyError):
        await nothing.resume(paused.resume_token)


class HangingStore:
    """A planner-state store whose calls never answer, with a short `timeout_s`."""

    timeout_s = 0.2

    async def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    async def load_planner_state(self, token: str) -> dict[str, Any] | None:
        await asyncio.Event().wait()
        return None

    async def discard_planner_state(self, token: str) -> None:
        await asyncio.Event().wait()


async def test_a_save_that_never_returns_gives_an_unpersisted_pause(catalog: list[Any]) -> None:
    events: list[PlannerEvent] = []
    p = ReactPlanner(
        llm_client=ScriptedLLMClient(approval_script()),
        catalog=catalog,
        state_store=HangingStore(),
        event_callback=events.append,
    )
    started = time.monotonic()
    paused = await asyncio.wait_for(p.run("ship"), timeout=10)
    assert time.monotonic() - started < 2
    assert isinstance(paused, PlannerPause)
    (event,) = [e for e in events if e.event_type == "pause"]
    assert event.extra["persisted"] is False
    assert event.error is not None
    assert "save_planner_state did not answer within 0.2s" in event.error
    # The record is still held in memory: this planner can resume it.
    assert isinstance(await p.resume(paused.resume_token), PlannerFinish)


async def test_a_load_that_never_returns_is_a_load_error(catalog: list[Any]) -> None:
    p = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog, state_store=HangingStore())
    with pytest.raises(ResumeLoadError, match=r"did not answer within 0\.2s"):
        await asyncio.wait_for(p.resume("c" * 32), timeout=10)


def test_a_store_names_its_call_timeout_or_gets_the_default(catalog: list[Any]) -> None:
    class Plain:
        async def load_planner_state(self, token: str) -> None:
            return None

    class Unlimited(Plain):
        timeout_s = None

    class Broken(Plain):
        timeout_s = "soon"

    assert PlannerStateMethods.of(Plain()).timeout_s == DEFAULT_STORE_TIMEOUT_S == 30.0
    assert PlannerStateMethods.of(HangingStore()).timeout_s == 0.2
    assert PlannerStateMethods.of(Unlimited()).timeout_s is None
    with pytest.raises(InvalidArgumentError, match="timeout_s must be a positive number"):
        ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog, state_store=Broken())
