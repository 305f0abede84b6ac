"""What a run used: LLM calls, tokens, cost, tool calls and time, and the budgets on them.

A run's `Ledger` counts its usage and adds every figure to the ledgers of the
runs it is nested in (a planner called as a tool by another planner), so a
parent's totals include its children's and a parent's cost and hop budgets bound
its children too. Parallel branches share their run's ledger.

Cost comes from the provider when its reply reports one, else from the
`genai-prices` table by model name (extras `planner`, `openai` or `prices`); a
call that neither prices is counted in `unpriced_calls`, never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

__all__ = ["Ledger", "Usage", "current_ledger", "price_of"]

logger = logging.getLogger("penguiflow.planner")


@dataclass(slots=True)
class Usage:
    """Totals of one run (or of one part of it, before a pause)."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    tool_calls: int = 0
    wall_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The totals as JSON data (`PlannerFinish.metadata["usage"]`)."""
        return {
            "llm_calls": self.llm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "unpriced_calls": self.unpriced_calls,
            "tool_calls": self.tool_calls,
            "wall_ms": round(self.wall_ms, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        """Totals saved with `to_dict` (missing or invalid figures count as 0)."""
        usage = cls()
        if not data:
            return usage
        for f in fields(cls):
            value = (data or {}).get(f.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                setattr(usage, f.name, type(getattr(usage, f.name))(value))
        return usage


#: The ledger of the planner run executing in this task (tools inherit it).
current_ledger: ContextVar[Ledger | None] = ContextVar("penguiflow_ledger", default=None)


class Ledger:
    """One run's usage and budgets, linked to the ledger of the run it is nested in."""

    __slots__ = ("cost_budget_usd", "hop_budget", "parent", "usage")

    def __init__(
        self,
        *,
        usage: Usage | None = None,
        parent: Ledger | None = None,
        cost_budget_usd: float | None = None,
        hop_budget: int | None = None,
    ) -> None:
        self.usage = usage if usage is not None else Usage()
        self.parent = parent
        self.cost_budget_usd = cost_budget_usd
        self.hop_budget = hop_budget

    def _chain(self) -> list[Ledger]:
        if self.parent is None:
            return [self]
        chain: list[Ledger] = []
        ledger: Ledger | None = self
        while ledger is not None:
            chain.append(ledger)
            ledger = ledger.parent
        return chain

    def add_llm_call(
        self,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        cost_usd: float | None,
    ) -> None:
        """Count one LLM call (here and in every enclosing run)."""
        prompt = prompt_tokens or 0
        completion = completion_tokens or 0
        total = total_tokens if total_tokens is not None else prompt + completion
        for ledger in self._chain():
            usage = ledger.usage
            usage.llm_calls += 1
            usage.prompt_tokens += prompt
            usage.completion_tokens += completion
            usage.total_tokens += total
            if cost_usd is None:
                usage.unpriced_calls += 1
            else:
                usage.cost_usd += cost_usd

    def add_tool_call(self) -> None:
        """Count one tool call (here and in every enclosing run)."""
        ledger: Ledger | None = self
        while ledger is not None:
            ledger.usage.tool_calls += 1
            ledger = ledger.parent

    def exhausted(self, own_hops: int = 0) -> str | None:
        """Why no more work may be done, or `None`.

        A cost budget of this run or of an enclosing one is used up, or the tool
        calls of runs nested in a run (`own_hops`: this run's own hops, which its
        tracker bounds) have used up that run's hop budget.
        """
        if self.parent is None and self.cost_budget_usd is None and self.hop_budget is None:
            return None  # nothing to exhaust
        for depth, ledger in enumerate(self._chain()):
            usage = ledger.usage
            budget = ledger.cost_budget_usd
            if budget is not None and usage.cost_usd >= budget:
                return _cost_message(budget, usage.cost_usd, depth)
            # This run's own hops are the tracker's; an enclosing run's hop budget
            # also counts the tool calls of the runs nested in it.
            hops = ledger.hop_budget
            nested = depth > 0 or usage.tool_calls > own_hops
            if nested and hops is not None and usage.tool_calls >= hops:
                return (
                    "Hop budget of the enclosing planner run exhausted; finish with the "
                    f"best answer so far. (limit={hops})"
                )
        return None


def _cost_message(budget: float, spent: float, depth: int) -> str:
    whose = "Cost budget" if depth == 0 else "Cost budget of the enclosing planner run"
    return (
        f"{whose} exhausted; finish with the best answer so far. "
        f"(limit=${budget:.6f}, spent=${spent:.6f})"
    )


def price_of(
    model: str | None, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """The price in USD of a call to `model`, from the `genai-prices` table.

    `None` when the model is unknown to the table, when tokens are missing, or when
    `genai-prices` is not installed (logged once per model).
    """
    if not model or prompt_tokens is None or completion_tokens is None:
        return None
    return _price(model, int(prompt_tokens), int(completion_tokens))


@lru_cache(maxsize=4096)
def _price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price
    except ImportError:
        _warn_once(model, "genai-prices is not installed (pip install 'penguiflow[prices]')")
        return None
    usage = PriceUsage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
    candidates: list[tuple[str, str | None]] = [(model, None)]
    provider, _, name = model.partition("/")
    if name:
        candidates += [(name, provider), (name, None)]
    for ref, provider_id in candidates:
        try:
            result = calc_price(usage, model_ref=ref, provider_id=provider_id)
        except LookupError:
            continue
        return float(result.total_price)
    _warn_once(model, "the model is not in the genai-prices table")
    return None


@lru_cache(maxsize=256)
def _warn_once(model: str, why: str) -> None:
    logger.warning("llm_cost_unknown model=%s: %s", model, why, extra={"model": model})
