"""The constraint tracker: relative deadlines, hop budgets and pause snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguiflow.planner.constraints import ConstraintTracker


class Clock:
    """A fake `time_source` that counts its reads."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


DEADLINE = "Deadline reached. Provide the best available conclusion or return no_path."


def test_unbounded_tracker_never_reads_the_clock_after_creation() -> None:
    clock = Clock()
    tracker = ConstraintTracker(deadline_s=None, hop_budget=None, time_source=clock)
    tracker.record_hop()
    tracker.record_hop()

    assert tracker.check_deadline() is None
    assert tracker.has_budget_for_next_tool()
    assert tracker.snapshot() == {
        "deadline_at": None,
        "deadline_remaining_s": None,
        "hop_budget": None,
        "hops_used": 0,
        "deadline_triggered": False,
        "hop_exhausted": False,
    }
    assert clock.reads == 1


def test_deadline_is_relative_to_creation() -> None:
    clock = Clock(100.0)
    tracker = ConstraintTracker(deadline_s=5.0, hop_budget=None, time_source=clock)

    clock.now = 104.0
    assert tracker.check_deadline() is None
    assert tracker.snapshot()["deadline_remaining_s"] == pytest.approx(1.0)
    clock.now = 105.0
    assert tracker.check_deadline() == DEADLINE
    assert tracker.deadline_triggered
    clock.now = 200.0
    assert tracker.snapshot()["deadline_remaining_s"] == 0.0
    assert tracker.snapshot()["deadline_at"] == 105.0


def test_zero_deadline_triggers_at_the_first_check() -> None:
    tracker = ConstraintTracker(deadline_s=0, hop_budget=None, time_source=Clock())

    assert tracker.check_deadline() == DEADLINE


def test_hop_budget_is_counted_and_exhausted() -> None:
    tracker = ConstraintTracker(deadline_s=None, hop_budget=2, time_source=Clock())

    tracker.record_hop()
    assert (tracker.hops_used, tracker.hop_exhausted) == (1, False)
    assert tracker.has_budget_for_next_tool()
    tracker.record_hop()
    assert (tracker.hops_used, tracker.hop_exhausted) == (2, True)
    assert not tracker.has_budget_for_next_tool()
    tracker.record_hop()  # parallel branches may overshoot the budget
    assert tracker.hops_used == 3


def test_zero_hop_budget_starts_exhausted() -> None:
    tracker = ConstraintTracker(deadline_s=None, hop_budget=0, time_source=Clock())

    assert tracker.hop_exhausted
    assert not tracker.has_budget_for_next_tool()


def test_time_spent_paused_does_not_count() -> None:
    clock = Clock(0.0)
    tracker = ConstraintTracker(deadline_s=10.0, hop_budget=3, time_source=clock)
    tracker.record_hop()
    clock.now = 4.0
    snapshot = tracker.snapshot()

    clock.now = 1000.0  # an hour-long approval
    clock.reads = 0
    resumed = ConstraintTracker.from_snapshot(snapshot, time_source=clock)

    assert clock.reads == 2
    assert resumed.deadline_at == pytest.approx(1006.0)
    assert resumed.hops_used == 1
    assert resumed.check_deadline() is None
    clock.now = 1006.0
    assert resumed.check_deadline() == DEADLINE


@pytest.mark.parametrize(
    ("snapshot", "deadline_at", "reads"),
    [
        ({}, None, 1),
        ({"deadline_at": 50.0}, 50.0, 1),
        ({"deadline_at": 50.0, "deadline_remaining_s": -3}, 7.0, 2),
    ],
)
def test_from_snapshot_deadline_sources(
    snapshot: dict[str, Any], deadline_at: float | None, reads: int
) -> None:
    clock = Clock(7.0)

    tracker = ConstraintTracker.from_snapshot(snapshot, time_source=clock)

    assert tracker.deadline_at == deadline_at
    assert clock.reads == reads
    assert (tracker.hop_budget, tracker.hops_used) == (None, 0)


def test_from_snapshot_restores_flags_and_forces_hop_exhaustion() -> None:
    restored = ConstraintTracker.from_snapshot(
        {"hop_budget": 2, "hops_used": "2", "deadline_triggered": 1}, time_source=Clock()
    )

    assert restored.hops_used == 2
    assert restored.hop_exhausted
    assert restored.deadline_triggered is True


def test_bad_inputs_raise_type_errors() -> None:
    with pytest.raises(TypeError, match="snapshot must be a mapping"):
        ConstraintTracker.from_snapshot([("hops_used", 1)], time_source=Clock())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="time_source must be callable"):
        ConstraintTracker(deadline_s=None, hop_budget=None, time_source=1.0)  # type: ignore[arg-type]


@given(
    deadline_s=st.none() | st.floats(0, 1000),
    hop_budget=st.none() | st.integers(0, 5),
    hops=st.integers(0, 7),
    elapsed=st.floats(0, 2000),
    paused=st.floats(0, 10_000),
)
def test_snapshot_then_from_snapshot_is_equivalent(
    deadline_s: float | None, hop_budget: int | None, hops: int, elapsed: float, paused: float
) -> None:
    clock = Clock(0.0)
    tracker = ConstraintTracker(deadline_s=deadline_s, hop_budget=hop_budget, time_source=clock)
    for _ in range(hops):
        tracker.record_hop()
    clock.now = elapsed
    tracker.check_deadline()
    snapshot = tracker.snapshot()

    clock.now = elapsed + paused
    resumed = ConstraintTracker.from_snapshot(snapshot, time_source=clock)
    again = resumed.snapshot()

    for key in ("hop_budget", "hops_used", "deadline_triggered", "hop_exhausted"):
        assert again[key] == snapshot[key]
    if deadline_s is None:
        assert again["deadline_at"] is None
    else:
        assert again["deadline_remaining_s"] == pytest.approx(snapshot["deadline_remaining_s"])
    assert resumed.has_budget_for_next_tool() == tracker.has_budget_for_next_tool()
