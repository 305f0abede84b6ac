"""The conversation sent to the LLM: full history, or condensed with a summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from . import prompts
from .models import Trajectory, TrajectoryStep, TrajectorySummary, summary_schema

if TYPE_CHECKING:
    from .react import ReactPlanner

__all__ = ["build_messages", "estimate_size", "step_messages", "summarise_trajectory"]

logger = logging.getLogger("penguiflow.planner")


async def build_messages(planner: ReactPlanner, trajectory: Trajectory) -> list[dict[str, str]]:
    """System prompt, query, every step (cached), resume input; condensed over budget."""
    messages = [
        {"role": "system", "content": planner._system_prompt},
        {
            "role": "user",
            "content": prompts.build_user_prompt(trajectory.query, trajectory.context_meta),
        },
    ]
    for step in trajectory.steps:
        messages.extend(step_messages(step))
    if trajectory.resume_user_input:
        messages.append(
            {
                "role": "user",
                "content": prompts.render_resume_user_input(trajectory.resume_user_input),
            }
        )
    if planner._token_budget is None:
        return messages
    if estimate_size(messages) <= planner._token_budget:
        return messages
    summary = await summarise_trajectory(planner, trajectory)
    condensed = [
        messages[0],
        messages[1],
        {"role": "system", "content": prompts.render_summary(summary.compact())},
    ]
    if trajectory.steps:
        condensed.extend(step_messages(trajectory.steps[-1]))
    if trajectory.resume_user_input:
        condensed.append(messages[-1])
    return condensed


def estimate_size(messages: Sequence[Mapping[str, str]]) -> int:
    """Rough token count of the messages (characters / 3.5)."""
    chars = sum(len(m.get("content", "")) + len(m.get("role", "")) + 20 for m in messages)
    estimated = int(chars / 3.5)
    logger.debug("token_estimate", extra={"chars": chars, "estimated_tokens": estimated})
    return estimated


async def summarise_trajectory(planner: ReactPlanner, trajectory: Trajectory) -> TrajectorySummary:
    """The trajectory's summary: cached, by the LLM when long, else rule-based."""
    if trajectory.summary is not None:
        return trajectory.summary
    base = trajectory.compress()
    # Without a dedicated summariser the main LLM summarises (the reference did not).
    summarizer = planner._summarizer_client or planner._client
    budget = planner._token_budget
    if budget is not None and len(prompts.render_summary(base.compact())) > budget:
        try:
            messages = prompts.build_summarizer_messages(
                trajectory.query, trajectory.to_history(), base.compact()
            )
            raw = await planner._complete(
                summarizer, messages, summary_schema(), trajectory, 1, purpose="summary"
            )
            summary = TrajectorySummary.model_validate_json(raw)
        except Exception as exc:
            logger.warning(
                "summarizer_failed_fallback",
                extra={"error": str(exc), "error_type": type(exc).__name__},
            )
            base.note = "rule_based_fallback"
        else:
            summary.note = summary.note or "llm"
            trajectory.summary = summary
            logger.debug("trajectory_summarized", extra={"method": "llm"})
            return summary
    trajectory.summary = base
    logger.debug("trajectory_summarized", extra={"method": "rule_based"})
    return base


def step_messages(step: TrajectoryStep) -> tuple[dict[str, str], dict[str, str]]:
    """The assistant/user message pair of one step, built once per step."""
    cached = step._messages
    if cached is None:
        cached = (
            {
                "role": "assistant",
                "content": json.dumps(
                    step.action.model_dump(mode="json"), ensure_ascii=False, sort_keys=True
                ),
            },
            {
                "role": "user",
                "content": prompts.render_observation(
                    observation=step._serialise_observation(),
                    error=step.error,
                    failure=step.failure,
                ),
            },
        )
        step._messages = cached
    return cached
