"""Which actions a run allows: the hop budget, disallowed tools, parallel limits, ordering."""

from __future__ import annotations

import logging
from typing import Any

from . import prompts
from .constraints import ConstraintTracker
from .hints import PlanningHints
from .models import PlannerAction, Trajectory

__all__ = ["ActionRules"]

logger = logging.getLogger("penguiflow.planner")


class ActionRules:
    """Checks each proposed action before anything runs, and tracks ordering progress.

    `hop_budget` is the planner's (shown in the hop-budget message);
    `absolute_max_parallel` caps every plan whatever the hints say.
    """

    __slots__ = ("absolute_max_parallel", "hints", "hop_budget")

    def __init__(
        self, hints: PlanningHints, *, hop_budget: int | None, absolute_max_parallel: int
    ) -> None:
        self.hints = hints
        self.hop_budget = hop_budget
        self.absolute_max_parallel = absolute_max_parallel

    def check(
        self, action: PlannerAction, trajectory: Trajectory, tracker: ConstraintTracker
    ) -> str | None:
        """The error message for an action the run must refuse, else `None`.

        In order: the hop budget, a disallowed tool, the parallel limits, a
        sequential-only tool in a plan, then the one-time ordering reminder (which
        records in `trajectory.hint_state` that it was given).
        """
        hints = self.hints
        next_node = action.next_node
        if next_node and not tracker.has_budget_for_next_tool():
            return prompts.render_hop_budget_violation(self.hop_budget or 0)
        if next_node and next_node in hints.disallow_nodes:
            return prompts.render_disallowed_node(next_node)
        plan = action.plan
        if plan:
            error = self._check_plan(action, plan, tracker)
            if error is not None:
                return error
        ordering = hints.ordering_hints
        if ordering and next_node is not None:
            state = _ordering_state(trajectory)
            expected_index = len(state["completed"])
            if (
                expected_index < len(ordering)
                and next_node != ordering[expected_index]
                and next_node in ordering
                and not state["warned"]
            ):
                state["warned"] = True
                return prompts.render_ordering_hint_violation(list(ordering), next_node)
        return None

    def _check_plan(
        self, action: PlannerAction, plan: list[Any], tracker: ConstraintTracker
    ) -> str | None:
        hints = self.hints
        limit = self.absolute_max_parallel
        if len(plan) > limit:
            logger.warning(
                "parallel_limit_absolute", extra={"requested": len(plan), "limit": limit}
            )
            return prompts.render_parallel_limit(limit)
        if hints.max_parallel is not None and len(plan) > hints.max_parallel:
            return prompts.render_parallel_limit(hints.max_parallel)
        # Parallel plans (and their join) count against the hop budget and the
        # disallowed tools too (the reference checked neither).
        join = action.join
        budget = tracker.hop_budget
        if budget is not None:
            needed = len(plan) + (1 if join is not None else 0)
            if tracker.hops_used + needed > budget:
                return prompts.render_hop_budget_violation(self.hop_budget or 0)
        disallowed = hints.disallow_nodes
        if disallowed:
            for entry in plan:
                if entry.node in disallowed:
                    return prompts.render_disallowed_node(entry.node)
            if join is not None and join.node in disallowed:
                return prompts.render_disallowed_node(join.node)
        sequential_only = hints.sequential_only
        if sequential_only:
            for entry in plan:
                if entry.node in sequential_only:
                    return prompts.render_sequential_only(entry.node)
        return None

    def record_progress(self, node_name: str, trajectory: Trajectory) -> None:
        """After a successful tool call: advance the ordering hints when it was the next one."""
        ordering = self.hints.ordering_hints
        if not ordering:
            return
        state = _ordering_state(trajectory)
        completed = state["completed"]
        if len(completed) < len(ordering) and ordering[len(completed)] == node_name:
            completed.append(node_name)
            state["warned"] = False


def _ordering_state(trajectory: Trajectory) -> dict[str, Any]:
    state = trajectory.hint_state.setdefault("ordering_state", {"completed": [], "warned": False})
    state.setdefault("completed", [])
    state.setdefault("warned", False)
    return state  # type: ignore[no-any-return]
