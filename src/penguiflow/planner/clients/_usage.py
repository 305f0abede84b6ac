"""Reading the usage figures of a completion, shared by our clients."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_COST_KEYS = ("cost", "cost_usd")


def provider_cost(usage: Mapping[str, Any]) -> float | None:
    """The cost in USD the provider reported in a reply's `usage`, or `None`.

    Reads `cost` (OpenRouter's field), else `cost_usd`. A value that is not a finite,
    non-negative number counts as absent, so the planner prices the call itself
    instead of trusting it. A reported 0 is kept: the provider says the call was free.
    """
    for key in _COST_KEYS:
        cost = dollars(usage.get(key))
        if cost is not None:
            return cost
    return None


def dollars(value: object) -> float | None:
    """`value` as a finite, non-negative float, or `None` (bools and strings too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    cost = float(value)
    return cost if math.isfinite(cost) and cost >= 0 else None


def token_count(value: object) -> int | None:
    """A token count as reported, or `None` when it is not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
