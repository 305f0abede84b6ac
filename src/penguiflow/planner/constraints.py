"""The run's budgets: a wall-clock deadline and a hop (tool invocation) budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .prompts import render_deadline_exhausted

__all__ = ["ConstraintTracker"]


class ConstraintTracker:
    """Tracks one run's deadline and hop budget.

    `deadline_s` is relative: the deadline is `time_source() + deadline_s`, read once
    at construction. `hop_budget=None` disables hop counting entirely (`hops_used`
    stays 0); `hop_budget=0` starts exhausted.
    """

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
        if not callable(time_source):
            raise TypeError(f"time_source must be callable, got {type(time_source).__name__}")
        self._time_source = time_source
        now = time_source()
        self.deadline_at: float | None = now + deadline_s if deadline_s is not None else None
        self.hop_budget = hop_budget
        self.hops_used = 0
        self.deadline_triggered = False
        self.hop_exhausted = hop_budget == 0

    def check_deadline(self) -> str | None:
        """The deadline message once the deadline has passed, else `None`.

        Reads the clock only when a deadline is set; sets `deadline_triggered`.
        """
        if self.deadline_at is None:
            return None
        if self._time_source() >= self.deadline_at:
            self.deadline_triggered = True
            return render_deadline_exhausted()
        return None

    def has_budget_for_next_tool(self) -> bool:
        """`True` unless a hop budget is set and fully used."""
        return self.hop_budget is None or self.hops_used < self.hop_budget

    def record_hop(self) -> None:
        """Count one tool invocation; a no-op when no hop budget is set."""
        self.record_hops(1)

    def record_hops(self, count: int) -> None:
        """Count `count` tool invocations; a no-op when no hop budget is set."""
        if self.hop_budget is None or count <= 0:
            return
        self.hops_used += count
        if self.hops_used >= self.hop_budget:
            self.hop_exhausted = True

    def snapshot(self) -> dict[str, Any]:
        """The tracker's state (stored with pauses, shown in finish metadata).

        Keys: `deadline_at`, `deadline_remaining_s` (never negative), `hop_budget`,
        `hops_used`, `deadline_triggered`, `hop_exhausted`. Reads the clock only when
        a deadline is set.
        """
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
    ) -> ConstraintTracker:
        """Rebuild a tracker from `snapshot()` output.

        The remaining deadline restarts from now, so time spent paused does not
        count; a snapshot with only an absolute `deadline_at` keeps it. Raises
        `TypeError` when `snapshot` is not a mapping.
        """
        if not isinstance(snapshot, Mapping):
            raise TypeError(f"tracker snapshot must be a mapping, got {type(snapshot).__name__}")
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
