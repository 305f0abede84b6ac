"""The planner's public surface is where the spec puts it, and imports stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import penguiflow
import penguiflow.planner
import penguiflow.planner.react as react
from penguiflow.planner.dspy_client import DSPyLLMClient


def test_planner_all_and_react_names() -> None:
    assert penguiflow.planner.__all__ == [
        "DSPyLLMClient",
        "ParallelCall",
        "ParallelJoin",
        "PlannerAction",
        "PlannerEvent",
        "PlannerEventCallback",
        "PlannerFinish",
        "PlannerPause",
        "ReactPlanner",
        "Trajectory",
        "TrajectoryStep",
        "TrajectorySummary",
    ]
    for name in penguiflow.planner.__all__:
        assert getattr(penguiflow.planner, name) is not None
    for name in (
        "JSONLLMClient",
        "PlannerPauseReason",
        "_PauseRecord",
        "_PlanningHints",
        "_ConstraintTracker",
        "_PlannerPauseSignal",
        "_BranchExecutionResult",
        "_LiteLLMJSONClient",
        "_PlannerContext",
        "logger",
    ):
        assert hasattr(react, name), name
    assert react.logger.name == "penguiflow.planner"
    for name in ("ReactPlanner", "PlannerAction", "PlannerFinish", "Trajectory", "TrajectoryStep"):
        assert getattr(penguiflow, name) is getattr(penguiflow.planner, name)


def test_star_import_works_and_planner_import_loads_no_provider_library() -> None:
    code = (
        "import sys\n"
        "from penguiflow import *\n"
        "import penguiflow.planner\n"
        "assert ReactPlanner\n"
        "heavy = {'litellm', 'dspy', 'httpx'} & {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_dspy_client_helpers_work_without_dspy() -> None:
    assert DSPyLLMClient.expects_json_schema is True
    normalise = DSPyLLMClient._normalise_json
    assert normalise('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert normalise("Here: {'a': True, 'b': (1,2),} thanks") == '{"a": true, "b": [1, 2]}'
    assert normalise("[1, 2]") == "[1, 2]"
    assert normalise("nonsense") is None
    assert normalise("   ") is None
    text = DSPyLLMClient._messages_to_text(
        [{"role": "system", "content": "s"}, {"content": "u"}, {"role": "tool", "content": "t"}]
    )
    assert text == "System: s\n\nUser: u\n\nt"


async def test_dspy_client_without_dspy_says_how_to_install_it() -> None:
    try:
        import dspy  # noqa: F401
    except ImportError:
        client = DSPyLLMClient("openai/x")
        with pytest.raises(
            RuntimeError, match=r"DSPy is not installed. Install penguiflow\[planner\]"
        ):
            await client.complete(messages=[{"role": "user", "content": "hi"}])
    else:
        pytest.skip("dspy is installed here; the missing-dependency path cannot be exercised")
