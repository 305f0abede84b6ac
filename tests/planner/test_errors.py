"""The planner's errors join penguiflow's root and keep their builtin bases and messages."""

from __future__ import annotations

from typing import Any

import pytest

from penguiflow.errors import InvalidArgumentError, MissingExtraError, PenguiflowError
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner import clients as llm_clients
from penguiflow.planner.dspy_client import DSPyLLMClient
from penguiflow.planner.errors import (
    ActionRepairError,
    NoActiveRunError,
    PauseDisabledError,
    PlannerError,
    ResumeError,
    ResumeLoadError,
)
from penguiflow.testkit import ScriptedLLMClient, ScriptExhaustedError

from .conftest import act


def test_every_error_class_has_the_root_and_its_builtin_base() -> None:
    bases = {
        PlannerError: RuntimeError,
        ActionRepairError: RuntimeError,
        NoActiveRunError: RuntimeError,
        PauseDisabledError: RuntimeError,
        InvalidArgumentError: ValueError,
        MissingExtraError: RuntimeError,
        ResumeError: KeyError,
        ResumeLoadError: KeyError,
        ScriptExhaustedError: RuntimeError,
        llm_clients.LLMError: RuntimeError,
    }
    for name in llm_clients.__all__:
        if name.endswith("Error"):
            bases.setdefault(getattr(llm_clients, name), RuntimeError)
    for error, builtin in bases.items():
        assert issubclass(error, PenguiflowError), error
        assert issubclass(error, builtin), error
    for error in (ActionRepairError, NoActiveRunError, PauseDisabledError):
        assert issubclass(error, PlannerError)
    for name in llm_clients.__all__:
        if name.endswith("Error"):
            assert issubclass(getattr(llm_clients, name), llm_clients.LLMError)


async def test_the_specified_messages(catalog: list[Any]) -> None:
    with pytest.raises(InvalidArgumentError) as no_catalog:
        ReactPlanner(llm_client=ScriptedLLMClient())
    assert str(no_catalog.value) == "Either catalog or (nodes and registry) must be provided"
    with pytest.raises(InvalidArgumentError) as no_llm:
        ReactPlanner(catalog=catalog)
    assert str(no_llm.value) == "llm or llm_client must be provided"

    planner = ReactPlanner(llm_client=ScriptedLLMClient(["no", "json", "here"]), catalog=catalog)
    with pytest.raises(ActionRepairError) as repair:
        await planner.step(planner_trajectory())
    assert str(repair.value) == "Planner failed to produce valid JSON after repair attempts"
    assert repair.value.attempts == 3
    assert repair.value.last_error is not None

    with pytest.raises(NoActiveRunError) as no_run:
        await planner.pause("await_input")
    assert str(no_run.value) == "pause() requires an active planner run"

    with pytest.raises(ResumeError) as unknown:
        await planner.resume("f" * 32)
    assert unknown.value.args == ("f" * 32,)  # as `KeyError(token)`
    assert unknown.value.token == "f" * 32


async def test_planner_pause_with_pausing_disabled_is_a_typed_error(catalog: list[Any]) -> None:
    raised: list[BaseException] = []

    async def asks(args: Any, ctx: Any) -> Any:
        try:
            await planner.pause("await_input")
        except PauseDisabledError as exc:
            raised.append(exc)
        return {"intent": "x"}

    from penguiflow import ModelRegistry, Node, build_catalog

    from .conftest import Intent, Question

    registry = ModelRegistry()
    registry.register("asks", Question, Intent)
    tools = build_catalog([Node(asks, name="asks")], registry)
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [act(next_node="asks", args={"text": "x"}), act(next_node=None)]
        ),
        catalog=tools,
        pause_enabled=False,
    )
    assert isinstance(await planner.run("q"), PlannerFinish)
    assert [str(e) for e in raised] == ["Pause/resume is disabled for this planner"]


class BrokenStore:
    def load_planner_state(self, token: str) -> dict[str, Any]:
        raise OSError("disk gone")


async def test_a_store_that_fails_to_load_is_a_resume_error_caused_by_it(
    catalog: list[Any],
) -> None:
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient(), catalog=catalog, state_store=BrokenStore()
    )
    with pytest.raises(ResumeError) as failed:
        await planner.resume("a" * 32)
    assert failed.value.args == ("Failed to load pause record: disk gone",)
    assert isinstance(failed.value.__cause__, OSError)
    # Still a KeyError, but told apart from an unknown token: worth trying again.
    assert isinstance(failed.value, ResumeLoadError)
    assert isinstance(failed.value, KeyError)


async def test_an_unknown_token_is_not_a_load_error(catalog: list[Any], tmp_path: Any) -> None:
    from penguiflow.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(tmp_path / "state.db")
    planner = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog, state_store=store)
    try:
        with pytest.raises(ResumeError) as unknown:
            await planner.resume("b" * 32)
    finally:
        await store.close()
    assert not isinstance(unknown.value, ResumeLoadError)
    assert unknown.value.args == ("b" * 32,)
    assert unknown.value.token == "b" * 32


async def test_missing_provider_libraries_are_typed_llm_errors() -> None:
    try:
        import dspy  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="DSPy is not installed"):
            await DSPyLLMClient("openai/x").complete(messages=[])
    else:
        pytest.skip("dspy is installed here; the missing-dependency path cannot be exercised")


def planner_trajectory() -> Any:
    from penguiflow.planner import Trajectory

    return Trajectory(query="q")
