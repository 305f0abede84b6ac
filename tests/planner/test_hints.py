"""Planning hints: normalising `planning_hints` and the payload shown in the prompt."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguiflow.planner.hints import PlanningHints
from penguiflow.planner.prompts import render_planning_hints


def test_every_hint_is_normalised() -> None:
    hints = PlanningHints.from_mapping(
        {
            "ordering_hints": ["triage", "retrieve"],
            "parallel_groups": [["fetch", "fetch"], ("a",)],
            "sequential_only": ["write", "write"],
            "disallow_nodes": ("rm",),
            "prefer_nodes": [1],
            "max_parallel": 4,
            "budget_hints": {"max_parallel": 9, "tokens": 100},
            "unknown": "ignored",
        }
    )

    assert hints == PlanningHints(
        ordering_hints=("triage", "retrieve"),
        parallel_groups=(("fetch", "fetch"), ("a",)),
        sequential_only={"write"},
        disallow_nodes={"rm"},
        prefer_nodes=("1",),
        max_parallel=4,
        budget_hints={"max_parallel": 9, "tokens": 100},
    )
    assert not hints.empty()


@pytest.mark.parametrize("payload", [None, {}, {"unknown": 1}])
def test_missing_or_empty_hints_are_empty(payload: dict[str, Any] | None) -> None:
    hints = PlanningHints.from_mapping(payload)

    assert hints == PlanningHints()
    assert hints.empty()
    assert hints.is_empty()
    assert hints.to_prompt_payload() == {}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"max_parallel": 2, "budget_hints": {"max_parallel": 5}}, 2),
        ({"max_parallel": "2", "budget_hints": {"max_parallel": 5}}, 5),
        ({"budget_hints": {"max_parallel": 5.0}}, None),
        ({"max_parallel": True}, True),  # bool is an int (observed behaviour)
    ],
)
def test_max_parallel_falls_back_to_budget_hints(payload: dict[str, Any], expected: Any) -> None:
    assert PlanningHints.from_mapping(payload).max_parallel == expected


def test_budget_hints_alone_make_hints_non_empty() -> None:
    assert not PlanningHints.from_mapping({"budget_hints": {"tokens": 1}}).empty()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"budget_hints": None}, "budget_hints"),
        ({"ordering_hints": None}, "ordering_hints"),
        ({"disallow_nodes": "rm"}, "disallow_nodes"),
        ({"parallel_groups": ["ab"]}, "parallel_groups"),
        ({"parallel_groups": 3}, "parallel_groups"),
    ],
)
def test_malformed_hints_raise_type_error(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        PlanningHints.from_mapping(payload)


def test_prompt_payload_and_its_rendering() -> None:
    hints = PlanningHints.from_mapping(
        {
            "ordering_hints": ["triage", "retrieve"],
            "parallel_groups": [["a", "b"]],
            "sequential_only": ["z", "y"],
            "disallow_nodes": ["rm", "dd"],
            "prefer_nodes": ["retrieve"],
            "max_parallel": 3,
            "budget_hints": {"tokens": 100},
        }
    )

    payload = hints.to_prompt_payload()

    assert payload == {
        "constraints": "max_parallel=3; sequential_only=y,z",
        "preferred_order": ["triage", "retrieve"],
        "parallel_groups": [["a", "b"]],
        "disallow_nodes": ["dd", "rm"],
        "preferred_nodes": ["retrieve"],
        "budget": {"tokens": 100},
    }
    assert render_planning_hints(payload) == (
        "Respect the following constraints: max_parallel=3; sequential_only=y,z\n"
        "Preferred order (if feasible): ['triage', 'retrieve']\n"
        "Allowed parallel groups: [['a', 'b']]\n"
        "Disallowed tools: ['dd', 'rm']\n"
        "Preferred tools: ['retrieve']\n"
        "Budget hints: {'tokens': 100}"
    )


def test_prompt_payload_only_has_set_keys() -> None:
    assert PlanningHints.from_mapping({"sequential_only": ["b", "a"]}).to_prompt_payload() == {
        "constraints": "sequential_only=a,b"
    }
    assert PlanningHints.from_mapping({"max_parallel": 0}).to_prompt_payload() == {
        "constraints": "max_parallel=0"
    }


@given(
    st.lists(st.text(max_size=5), max_size=4),
    st.lists(st.text(max_size=5), max_size=4),
    st.none() | st.integers(0, 10),
)
def test_prompt_payload_is_empty_exactly_when_hints_are(
    ordering: list[str], disallow: list[str], max_parallel: int | None
) -> None:
    hints = PlanningHints.from_mapping(
        {"ordering_hints": ordering, "disallow_nodes": disallow, "max_parallel": max_parallel}
    )

    assert hints.empty() == (hints.to_prompt_payload() == {})
    assert hints.ordering_hints == tuple(ordering)
    assert hints.disallow_nodes == set(disallow)
