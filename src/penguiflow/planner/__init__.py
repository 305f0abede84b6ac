"""The ReAct planner: an LLM picks typed tools from a catalog until it can answer.

LiteLLM, DSPy and httpx are imported only by the clients that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import (
    ParallelCall,
    ParallelJoin,
    PlannerAction,
    PlannerEvent,
    PlannerEventCallback,
    PlannerFinish,
    PlannerPause,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
)
from .react import ReactPlanner

if TYPE_CHECKING:
    from .clients import OpenAICompatibleClient as OpenAICompatibleClient
    from .dspy_client import DSPyLLMClient

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name == "DSPyLLMClient":
        from .dspy_client import DSPyLLMClient

        return DSPyLLMClient
    # Beyond the specified __all__: where a user of ReactPlanner looks for it first.
    if name == "OpenAICompatibleClient":  # needs httpx: pip install 'penguiflow[openai]'
        from .clients import OpenAICompatibleClient

        return OpenAICompatibleClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
