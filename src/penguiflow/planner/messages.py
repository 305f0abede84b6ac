"""The conversation sent to the LLM: full history, or condensed with a summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..catalog import NodeSpec
from . import prompts
from .llm import LLMChannel
from .models import Trajectory, TrajectorySummary, summary_schema

__all__ = ["Conversation", "catalog_prompt", "estimate_size"]

logger = logging.getLogger("penguiflow.planner")


class Conversation:
    """Builds each turn's messages from the system prompt and the trajectory.

    Over `token_budget` (estimated tokens), the history is replaced by a summary of
    it plus the last step; the summary is the LLM's (through `llm`) when the
    rule-based one is still too long.
    """

    # One system message dict for every turn, like the steps' cached messages: shared,
    # and not to be mutated by clients.
    __slots__ = ("_system_message", "llm", "token_budget")

    def __init__(self, system_prompt: str, token_budget: int | None, llm: LLMChannel) -> None:
        self._system_message = {"role": "system", "content": system_prompt}
        self.token_budget = token_budget
        self.llm = llm

    @property
    def system_prompt(self) -> str:
        """The system prompt, the first message of every turn."""
        return self._system_message["content"]

    @system_prompt.setter
    def system_prompt(self, prompt: str) -> None:
        self._system_message = {"role": "system", "content": prompt}

    def history(self, trajectory: Trajectory) -> list[dict[str, str]]:
        """The full conversation: system prompt, query, every step (cached per step) and
        the resume input. `fit` condenses it when it exceeds the token budget."""
        messages = [self._system_message, trajectory.user_message()]
        for step in trajectory.steps:
            messages.extend(step.prompt_messages())
        resume_input = trajectory.resume_user_input
        if resume_input:
            messages.append(
                {"role": "user", "content": prompts.render_resume_user_input(resume_input)}
            )
        return messages

    async def fit(
        self, trajectory: Trajectory, messages: list[dict[str, str]]
    ) -> list[dict[str, str]]:
        """`messages` (the `history`) when within the token budget; else condensed to the
        system prompt, the query, a summary, the last step and the resume input."""
        budget = self.token_budget
        if budget is None or estimate_size(messages) <= budget:
            return messages
        summary = await self.summarise(trajectory)
        condensed = [
            messages[0],
            messages[1],
            {"role": "system", "content": prompts.render_summary(summary.compact())},
        ]
        if trajectory.steps:
            condensed.extend(trajectory.steps[-1].prompt_messages())
        if trajectory.resume_user_input:
            condensed.append(messages[-1])
        return condensed

    async def summarise(self, trajectory: Trajectory) -> TrajectorySummary:
        """The trajectory's summary: cached, by the LLM when long, else rule-based."""
        if trajectory.summary is not None:
            return trajectory.summary
        base = trajectory.compress()
        llm = self.llm
        # Without a dedicated summariser the main LLM summarises (the reference did not).
        summarizer = llm.summarizer or llm.client
        budget = self.token_budget
        if budget is not None and len(prompts.render_summary(base.compact())) > budget:
            try:
                messages = prompts.build_summarizer_messages(
                    trajectory.query, trajectory.to_history(), base.compact()
                )
                raw = await llm.complete(
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


def estimate_size(messages: Sequence[Mapping[str, str]]) -> int:
    """Rough token count of the messages (characters / 3.5)."""
    chars = sum(len(m.get("content", "")) + len(m.get("role", "")) + 20 for m in messages)
    estimated = int(chars / 3.5)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("token_estimate", extra={"chars": chars, "estimated_tokens": estimated})
    return estimated


# Tool records and system prompts by catalog identity: a planner per request reuses
# those of the catalog it shares with other planners instead of rebuilding them. Each
# value keeps its specs alive, so their ids cannot be reused while the entry exists.
_PROMPTS: dict[tuple[Any, ...], tuple[tuple[NodeSpec, ...], list[dict[str, Any]], str]] = {}


def catalog_prompt(
    specs: Sequence[NodeSpec], extra: str | None, hints: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], str]:
    """The catalog's tool records and the system prompt built from them, extra
    guidance and hints (a hints prompt payload), built once: do not mutate them."""
    hints_key = json.dumps(hints, sort_keys=True, default=str) if hints else None
    key = (tuple(map(id, specs)), extra, hints_key)
    cached = _PROMPTS.get(key)
    if cached is not None:
        return cached[1], cached[2]
    records = [spec.to_tool_record() for spec in specs]
    prompt = prompts.build_system_prompt(records, extra=extra, planning_hints=hints)
    if len(_PROMPTS) >= 256:
        _PROMPTS.clear()
    _PROMPTS[key] = (tuple(specs), records, prompt)
    return records, prompt
