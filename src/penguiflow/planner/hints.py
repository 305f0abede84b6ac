"""Planning hints: the normalised form of `ReactPlanner(planning_hints=...)`.

Recognised keys: `ordering_hints`, `parallel_groups`, `sequential_only`,
`disallow_nodes`, `prefer_nodes`, `max_parallel`, `budget_hints`; others are ignored.
The loop enforces ordering, disallowed tools, `sequential_only` and `max_parallel`;
the rest is only rendered into the system prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PlanningHints"]


def _names(key: str, value: Any) -> list[str]:
    """`str()` of every item of a sequence of node names, rejecting non-sequences."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"planning_hints[{key!r}] must be a sequence of node names, "
            f"got {type(value).__name__}: {value!r}"
        )
    return [str(item) for item in value]


@dataclass(slots=True)
class PlanningHints:
    """Structured hints: ordering, parallel limits, disallowed and preferred tools."""

    ordering_hints: tuple[str, ...] = ()
    parallel_groups: tuple[tuple[str, ...], ...] = ()
    sequential_only: set[str] = field(default_factory=set)
    disallow_nodes: set[str] = field(default_factory=set)
    prefer_nodes: tuple[str, ...] = ()
    max_parallel: int | None = None
    budget_hints: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, payload: Mapping[str, Any] | None) -> PlanningHints:
        """Normalise a `planning_hints` mapping; `None` or `{}` gives empty hints.

        `max_parallel` is the top-level value when it is an `int` (a `bool` counts),
        else `budget_hints["max_parallel"]` when that is an `int`, else `None`.
        Raises `TypeError` when `payload` is not a mapping, a name list is not a
        sequence (a bare string is rejected) or `budget_hints` cannot be turned
        into a dict (including `None`).
        """
        if not payload:
            return cls()
        if not isinstance(payload, Mapping):
            raise TypeError(f"planning_hints must be a mapping, got {type(payload).__name__}")
        raw_budget = payload.get("budget_hints", {})
        try:
            budget = dict(raw_budget)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "planning_hints['budget_hints'] must be a mapping, "
                f"got {type(raw_budget).__name__}: {raw_budget!r}"
            ) from exc
        max_parallel = payload.get("max_parallel")
        if not isinstance(max_parallel, int):
            fallback = budget.get("max_parallel")
            max_parallel = fallback if isinstance(fallback, int) else None
        groups = payload.get("parallel_groups", ())
        return cls(
            ordering_hints=tuple(_names("ordering_hints", payload.get("ordering_hints", ()))),
            parallel_groups=tuple(
                tuple(_names("parallel_groups", group))
                for group in _iterable("parallel_groups", groups)
            ),
            sequential_only=set(_names("sequential_only", payload.get("sequential_only", ()))),
            disallow_nodes=set(_names("disallow_nodes", payload.get("disallow_nodes", ()))),
            prefer_nodes=tuple(_names("prefer_nodes", payload.get("prefer_nodes", ()))),
            max_parallel=max_parallel,
            budget_hints=budget,
        )

    def empty(self) -> bool:
        """`True` when no hint is set (then no hints section is added to the prompt)."""
        return not (
            self.ordering_hints
            or self.parallel_groups
            or self.sequential_only
            or self.disallow_nodes
            or self.prefer_nodes
            or self.max_parallel is not None
            or self.budget_hints
        )

    def is_empty(self) -> bool:
        """Alias of `empty()`."""
        return self.empty()

    def to_prompt_payload(self) -> dict[str, Any]:
        """The hints as `render_planning_hints` expects them (keys only when set).

        Keys: `constraints` (`max_parallel=<n>; sequential_only=<sorted,names>`),
        `preferred_order`, `parallel_groups`, `disallow_nodes` (sorted),
        `preferred_nodes`, `budget`.
        """
        payload: dict[str, Any] = {}
        constraints: list[str] = []
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


def _iterable(key: str, value: Any) -> Iterable[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"planning_hints[{key!r}] must be a sequence of sequences of node names, "
            f"got {type(value).__name__}: {value!r}"
        )
    return value
