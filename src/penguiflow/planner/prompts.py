"""Prompt texts of the ReactPlanner: system/user prompts, notices and error templates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = [
    "build_system_prompt",
    "build_user_prompt",
    "build_summarizer_messages",
    "render_tool",
    "render_planning_hints",
    "render_observation",
    "render_resume_user_input",
    "render_summary",
    "render_repair_message",
    "render_invalid_node",
    "render_validation_error",
    "render_output_validation_error",
    "render_disallowed_node",
    "render_ordering_hint_violation",
    "render_parallel_limit",
    "render_sequential_only",
    "render_parallel_setup_error",
    "render_empty_parallel_plan",
    "render_parallel_with_next_node",
    "render_parallel_unknown_failure",
    "render_hop_budget_violation",
    "render_deadline_exhausted",
    "safe_error_json",
]


def _compact_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def safe_error_json(exc: ValidationError) -> str:
    """pydantic's error list as JSON, never raising.

    A custom validator's exception (kept in `ctx`) or an unserialisable input is
    rendered with `str()`/`repr()` instead of crashing the run.
    """
    errors = exc.errors()
    try:
        return json.dumps(errors, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(errors, ensure_ascii=False, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


_RULES = (
    "You are the PenguiFlow ReactPlanner, a JSON-only planner that picks tools to "
    "answer the user's query.",
    "Follow these strict rules:",
    "1. Reply with valid JSON that matches the PlannerAction schema.",
    "2. Use the provided tools when needed; never invent tool names.",
    "3. Keep 'thought' short and factual.",
    "4. When the task is complete, set 'next_node' to null and put the final payload in 'args'.",
    "5. Never emit text outside JSON.",
)


def render_tool(record: Mapping[str, Any]) -> str:
    """One tool of the catalog as prompt lines."""
    lines = [
        f"- name: {record['name']}",
        f"  desc: {record['desc']}",
        f"  side_effects: {record['side_effects']}",
        f"  args_schema: {_compact_json(record['args_schema'])}",
        f"  out_schema: {_compact_json(record['out_schema'])}",
    ]
    if record.get("tags"):
        lines.append(f"  tags: {', '.join(record['tags'])}")
    if record.get("auth_scopes"):
        lines.append(f"  auth_scopes: {', '.join(record['auth_scopes'])}")
    if record.get("cost_hint"):
        lines.append(f"  cost_hint: {record['cost_hint']}")
    if record.get("latency_hint_ms") is not None:
        lines.append(f"  latency_hint_ms: {record['latency_hint_ms']}")
    if record.get("safety_notes"):
        lines.append(f"  safety_notes: {record['safety_notes']}")
    if record.get("extra"):
        lines.append(f"  extra: {_compact_json(record['extra'])}")
    return "\n".join(lines)


_HINT_LINES = (
    ("constraints", "Respect the following constraints: {}"),
    ("preferred_order", "Preferred order (if feasible): {}"),
    ("parallel_groups", "Allowed parallel groups: {}"),
    ("disallow_nodes", "Disallowed tools: {}"),
    ("preferred_nodes", "Preferred tools: {}"),
    ("budget", "Budget hints: {}"),
)


def render_planning_hints(hints: Mapping[str, Any]) -> str:
    """The planning hints payload as prompt lines ("" when none is set)."""
    return "\n".join(template.format(hints[key]) for key, template in _HINT_LINES if hints.get(key))


def build_system_prompt(
    catalog: Sequence[Mapping[str, Any]],
    *,
    extra: str | None = None,
    planning_hints: Mapping[str, Any] | None = None,
) -> str:
    """The system prompt: rules, the tool catalog, extra guidance and hints."""
    lines = [*_RULES, "", "Available tools:"]
    lines.append("\n".join(render_tool(record) for record in catalog) if catalog else "(none)")
    if extra:
        lines.extend(["", "Additional guidance:", extra])
    if planning_hints:
        rendered = render_planning_hints(planning_hints)
        if rendered:
            lines.extend(["", rendered])
    return "\n".join(lines)


def build_user_prompt(query: str, context_meta: Mapping[str, Any] | None = None) -> str:
    """The first user message: the query and, when given, the context."""
    if context_meta:
        return _compact_json({"query": query, "context": dict(context_meta)})
    return _compact_json({"query": query})


def render_observation(
    *, observation: Any | None, error: str | None, failure: Mapping[str, Any] | None = None
) -> str:
    """What a step produced, as the user message that follows the action."""
    data: dict[str, Any] = {}
    if observation is not None:
        data["observation"] = observation
    if error:
        data["error"] = error
    if failure:
        data["failure"] = dict(failure)
    if not data:
        data = {"observation": None}
    return _compact_json(data)


def render_resume_user_input(user_input: str) -> str:
    """The message carrying a human's answer after a pause."""
    return f"Resume input: {user_input}"


def render_summary(summary: Mapping[str, Any]) -> str:
    """A trajectory summary as a system message."""
    return f"Trajectory summary: {_compact_json(summary)}"


def render_repair_message(error: str) -> str:
    """The nudge sent after an invalid reply."""
    return (
        f"Previous response was invalid JSON or schema mismatch: {error}. "
        "Reply with corrected JSON only."
    )


def build_summarizer_messages(
    query: str, history: Sequence[Mapping[str, Any]], base_summary: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The two messages of a summariser call."""
    return [
        {
            "role": "system",
            "content": (
                "You are a summariser that produces compact JSON state for a planner. "
                "Answer with valid JSON matching the TrajectorySummary schema."
            ),
        },
        {
            "role": "user",
            "content": _compact_json(
                {"query": query, "history": list(history), "current_summary": dict(base_summary)}
            ),
        },
    ]


def render_invalid_node(node_name: str, available: Sequence[str]) -> str:
    return (
        f"tool '{node_name}' is not in the catalog. Choose one of: {', '.join(sorted(available))}."
    )


def render_validation_error(node_name: str, error: str) -> str:
    return f"args for tool '{node_name}' did not validate: {error}. Return corrected JSON."


def render_output_validation_error(node_name: str, error: str) -> str:
    return (
        f"tool '{node_name}' returned data that did not validate: {error}. "
        "Ensure the tool output matches the declared schema."
    )


def render_disallowed_node(node_name: str) -> str:
    return (
        f"tool '{node_name}' is not permitted by constraints. "
        "Choose an allowed tool or revise the plan."
    )


def render_ordering_hint_violation(expected: Sequence[str], proposed: str) -> str:
    return (
        f"Ordering hint reminder: follow the preferred sequence [{', '.join(expected)}]. "
        f"Proposed: {proposed}. Revise the plan."
    )


def render_parallel_limit(max_parallel: int) -> str:
    return f"Parallel action exceeds max_parallel={max_parallel}. Reduce parallel fan-out."


def render_sequential_only(node_name: str) -> str:
    return f"tool '{node_name}' must run sequentially. Do not include it in a parallel plan."


def render_parallel_setup_error(errors: Sequence[str]) -> str:
    return f"Parallel plan invalid: {'; '.join(errors)}. Revise the plan and retry."


def render_empty_parallel_plan() -> str:
    return "Parallel plan must include at least one branch in 'plan'."


def render_parallel_with_next_node(next_node: str) -> str:
    return (
        f"Parallel plan cannot set next_node='{next_node}'. "
        "Use 'join' to continue or finish the run explicitly."
    )


def render_parallel_unknown_failure(node_name: str) -> str:
    return (
        f"tool '{node_name}' failed during parallel execution. "
        "Investigate the tool and adjust the plan."
    )


def render_hop_budget_violation(limit: int) -> str:
    return (
        "Hop budget exhausted; you have used all available tool calls. "
        f"Finish with the best answer so far or reply with no_path. (limit={limit})"
    )


def render_deadline_exhausted() -> str:
    return "Deadline reached. Provide the best available conclusion or return no_path."
