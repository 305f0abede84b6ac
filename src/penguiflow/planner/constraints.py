"""Planning hints and the run's budgets (deadline, hops)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .prompts import render_deadline_exhausted

__all__ = ["_ConstraintTracker", "_PlanningHints"]


@dataclass(slots=True)
class _PlanningHints:
    """Structured hints: ordering, parallel limits, disallowed and preferred tools."""

    ordering_hints: tuple[str, ...] = ()
    parallel_groups: tuple[tuple[str, ...], ...] = ()
    sequential_only: set[str] = field(default_factory=set)
    disallow_nodes: set[str] = field(default_factory=set)
    prefer_nodes: tuple[str, ...] = ()
    max_parallel: int | None = None
    budget_hints: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, payload: Mapping[str, Any] | None) -> _PlanningHints:
        """Normalise the `planning_hints` mapping (unknown keys are ignored)."""
        if not payload:
            return cls.empty()
        budget = dict(payload.get("budget_hints", {}))
        max_parallel = payload.get("max_parallel")
        if not isinstance(max_parallel, int):
            fallback = budget.get("max_parallel")
            max_parallel = fallback if isinstance(fallback, int) else None
        return cls(
            ordering_hints=tuple(str(item) for item in payload.get("ordering_hints", ())),
            parallel_groups=tuple(
                tuple(str(item) for item in group) for group in payload.get("parallel_groups", ())
            ),
            sequential_only={str(item) for item in payload.get("sequential_only", ())},
            disallow_nodes={str(item) for item in payload.get("disallow_nodes", ())},
            prefer_nodes=tuple(str(item) for item in payload.get("prefer_nodes", ())),
            max_parallel=max_parallel,
            budget_hints=budget,
        )

    @classmethod
    def empty(cls) -> _PlanningHints:
        """Hints with nothing set."""
        return cls()

    def is_empty(self) -> bool:
        return not (
            self.ordering_hints
            or self.parallel_groups
            or self.sequential_only
            or self.disallow_nodes
            or self.prefer_nodes
            or self.max_parallel is not None
            or self.budget_hints
        )

    def to_prompt_payload(self) -> dict[str, Any]:
        """The hints as the system prompt renders them."""
        payload: dict[str, Any] = {}
        constraints = []
        if self.max_parallel is not None:
            constraints.append(f"max_parallel={self.max_parallel}")
        if self.sequential_only:
            constraints.append(f"sequential_only={','.join(sorted(self.sequential_only))}")
        if constraints:
            payload["constraints"] = "; ".join(constraints)
        if self.ordering_hints:
            payload["preferred_order"] = list(self.ordering_hints)
        if self.parallel_groups:
            payload["parallel_groups"] = [list(group) for group in self.parallel_groups]
        if self.disallow_nodes:
            payload["disallow_nodes"] = sorted(self.disallow_nodes)
        if self.prefer_nodes:
            payload["preferred_nodes"] = list(self.prefer_nodes)
        if self.budget_hints:
            payload["budget"] = dict(self.budget_hints)
        return payload


class _ConstraintTracker:
    """Tracks a run's deadline and hop budget."""

    __slots__ = (
        "_time_source",
        "deadline_at",
        "deadline_triggered",
        "hop_budget",
        "hop_exhausted",
        "hops_used",
    )

    def __init__(
        self,
        *,
        deadline_s: float | None,
        hop_budget: int | None,
        time_source: Callable[[], float],
    ) -> None:
        self._time_source = time_source
        now = time_source()
        self.deadline_at = now + deadline_s if deadline_s is not None else None
        self.hop_budget = hop_budget
        self.hops_used = 0
        self.deadline_triggered = False
        self.hop_exhausted = hop_budget == 0

    def check_deadline(self) -> str | None:
        """The deadline message once the deadline has passed, else `None`."""
        if self.deadline_at is None:
            return None
        if self._time_source() >= self.deadline_at:
            self.deadline_triggered = True
            return render_deadline_exhausted()
        return None

    def has_budget_for_next_tool(self) -> bool:
        return self.hop_budget is None or self.hops_used < self.hop_budget

    def record_hop(self) -> None:
        """Count one tool invocation (only when a hop budget is set)."""
        if self.hop_budget is None:
            return
        self.hops_used += 1
        if self.hops_used >= self.hop_budget:
            self.hop_exhausted = True

    def snapshot(self) -> dict[str, Any]:
        """The tracker's state as a dict (stored with pauses, shown in finish metadata)."""
        remaining = None
        if self.deadline_at is not None:
            remaining = max(self.deadline_at - self._time_source(), 0.0)
        return {
            "deadline_at": self.deadline_at,
            "deadline_remaining_s": remaining,
            "hop_budget": self.hop_budget,
            "hops_used": self.hops_used,
            "deadline_triggered": self.deadline_triggered,
            "hop_exhausted": self.hop_exhausted,
        }

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[str, Any], *, time_source: Callable[[], float]
    ) -> _ConstraintTracker:
        """Rebuild a tracker; time spent paused does not count against the deadline."""
        remaining = snapshot.get("deadline_remaining_s")
        tracker = cls(
            deadline_s=remaining, hop_budget=snapshot.get("hop_budget"), time_source=time_source
        )
        tracker.hops_used = int(snapshot.get("hops_used", 0))
        deadline_at = snapshot.get("deadline_at")
        if remaining is None and deadline_at is None:
            tracker.deadline_at = None
        elif remaining is not None:
            tracker.deadline_at = time_source() + max(float(remaining), 0.0)
        else:
            tracker.deadline_at = deadline_at
        tracker.deadline_triggered = bool(snapshot.get("deadline_triggered", False))
        tracker.hop_exhausted = bool(snapshot.get("hop_exhausted", False))
        if tracker.hop_budget is not None and tracker.hops_used >= tracker.hop_budget:
            tracker.hop_exhausted = True
        return tracker
