"""Prompt texts of the ReactPlanner: system/user prompts, notices and error templates."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from .._jsontext import encoder_of

__all__ = [
    "build_system_prompt",
    "compact_json",
    "build_user_prompt",
    "build_summarizer_messages",
    "render_tool",
    "render_action",
    "render_json_action",
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


# Encoders built once (`json.dumps` with these options builds one per call). The fast
# ones skip the circular-reference bookkeeping, a quarter of the cost on small nested
# data; a cycle then exhausts the recursion limit instead, and the checking encoder
# re-runs to raise the `ValueError` `json.dumps` raises (a deep acyclic value fails in
# both alike).
_COMPACT = encoder_of(json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False))
_COMPACT_CHECKED = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def compact_json(data: Any) -> str:
    """Compact JSON: the text of `json.dumps(data, ensure_ascii=False, sort_keys=True)`.

    Raises what `json.dumps` raises: `TypeError` for a value JSON cannot hold,
    `ValueError` for a circular reference.
    """
    try:
        return _COMPACT(data)
    except RecursionError:
        return _COMPACT_CHECKED.encode(data)


_IN_ORDER = encoder_of(json.JSONEncoder(ensure_ascii=False, check_circular=False))


def render_action(action: Mapping[str, Any]) -> str:
    """A past action (its JSON-mode dump) as the conversation shows it: `thought`,
    `next_node`, `args` in that order, then `plan` and `join` only when set.

    Written in the order the model is asked to reply in, not with sorted keys
    (which put `args` first): a model imitates the history it is shown.
    """
    get = action.get
    shown = _shown_action(get("thought"), get("next_node"), get("args"), get("plan"), get("join"))
    try:
        return _IN_ORDER(shown)
    except (TypeError, ValueError, RecursionError):
        return compact_json(shown)  # raises what json.dumps raises


# `render_action`'s encoder refusing NaN and infinities as well, which a JSON-mode
# dump would have turned into null.
_JSON_VALUES_ONLY = encoder_of(
    json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=False)
)


def render_json_action(
    thought: Any, next_node: Any, args: Any, plan: Any = None, join: Any = None
) -> str | None:
    """`render_action` of an action with these fields, when they hold JSON values only
    (as those of an action parsed from a reply do); `None` when they hold anything
    else (a model, a date, NaN, a cycle), for the caller to dump the action first."""
    try:
        return _JSON_VALUES_ONLY(_shown_action(thought, next_node, args, plan, join))
    except (TypeError, ValueError, RecursionError):
        return None


def _shown_action(thought: Any, next_node: Any, args: Any, plan: Any, join: Any) -> dict[str, Any]:
    shown = {"thought": thought, "next_node": next_node, "args": args}
    if plan is not None:
        shown["plan"] = plan
    if join is not None:
        shown["join"] = join
    return shown


# The reference implementation's name for `compact_json`.
_compact_json = compact_json


def safe_error_json(exc: ValidationError) -> str:
    """The "error JSON" of a pydantic error, never raising.

    Equal to `json.dumps(exc.errors(), ensure_ascii=False)` whenever that works.
    Otherwise (a custom validator's exception kept in `ctx`, an unserialisable
    `input`, non-string keys, cycles) each offending value is replaced by its
    `repr()`. Use it wherever an error message embeds `exc.errors()`.
    """
    try:
        errors: Any = exc.errors()
    except Exception as inner:  # a broken custom error type must not crash the run
        errors = [{"type": "unknown", "msg": _safe_repr(exc), "error": _safe_repr(inner)}]
    try:
        return json.dumps(errors, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        safe = _json_safe(errors, set())
    try:
        return json.dumps(safe, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps([{"type": "unknown", "msg": _safe_repr(exc)}], ensure_ascii=False)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _json_safe(value: Any, seen: set[int]) -> Any:
    """A copy of `value` that `json.dumps` accepts; anything else becomes its `repr()`."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dict | list | tuple):
        marker = id(value)
        if marker in seen:
            return _safe_repr(value)
        seen.add(marker)
        try:
            if isinstance(value, dict):
                return {
                    (key if isinstance(key, _JSON_SCALARS) else _safe_repr(key)): _json_safe(
                        item, seen
                    )
                    for key, item in value.items()
                }
            return [_json_safe(item, seen) for item in value]
        finally:
            seen.discard(marker)
    return _safe_repr(value)


_RULES = (
    "You are the PenguiFlow ReactPlanner, a JSON-only planner: you answer the user's "
    "query one step at a time, calling the tools listed below when the query needs them.",
    "Follow these strict rules:",
    "1. Reply with one JSON object matching the PlannerAction schema: 'thought', then "
    "'next_node', then 'args'.",
    "2. To call a tool, set 'next_node' to its exact name from the list below and 'args' "
    "to its arguments (its args_schema). Never invent tool names.",
    "3. Keep 'thought' to one short, factual sentence.",
    "4. Only when you have the final answer, finish: set 'next_node' to null and put the "
    'final answer in \'args\', as {"answer": "..."}.',
    "5. Never write any text outside the JSON object.",
)

# How a reply looks and what a result looks like: a small model follows an example
# more readily than a description.
_EXAMPLES = (
    "A tool call looks like:",
    '{"thought": "I need the weather in Paris.", "next_node": "<tool name>", '
    '"args": {"city": "Paris"}}',
    "A finish looks like:",
    '{"thought": "The tool result answers the query.", "next_node": null, '
    '"args": {"answer": "It is 18 C and sunny in Paris."}}',
    'Each tool result comes back as {"observation": ...}, a failure as {"error": ...}. '
    "After an error, fix the arguments, call the tool again if the error is temporary, "
    "or choose another tool. Do not finish until the tool results contain what the "
    "answer needs.",
    "A query that needs no tool, such as a general-knowledge question, is finished at once.",
)


def render_tool(record: Mapping[str, Any]) -> str:
    """One tool record (`NodeSpec.to_tool_record()`) as prompt lines.

    Always: name, desc, side_effects, args_schema, out_schema (compact JSON); then
    tags, auth_scopes, cost_hint, safety_notes and extra when truthy, and
    latency_hint_ms when not `None`.
    """
    lines = [
        f"- name: {record['name']}",
        f"  desc: {record['desc']}",
        f"  side_effects: {record['side_effects']}",
        f"  args_schema: {compact_json(record['args_schema'])}",
        f"  out_schema: {compact_json(record['out_schema'])}",
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
        lines.append(f"  extra: {compact_json(record['extra'])}")
    return "\n".join(lines)


_HINT_LINES = (
    ("constraints", "Respect the following constraints: "),
    ("preferred_order", "Preferred order (if feasible): "),
    ("parallel_groups", "Allowed parallel groups: "),
    ("disallow_nodes", "Disallowed tools: "),
    ("preferred_nodes", "Preferred tools: "),
    ("budget", "Budget hints: "),
)


def render_planning_hints(hints: Mapping[str, Any]) -> str:
    """A hints prompt payload (`PlanningHints.to_prompt_payload()`) as prompt lines.

    One line per truthy key, values rendered with `str()` (Python repr style for
    lists and dicts); `""` when no key is set.
    """
    return "\n".join(prefix + str(hints[key]) for key, prefix in _HINT_LINES if hints.get(key))


def build_system_prompt(
    catalog: Sequence[Mapping[str, Any]],
    *,
    extra: str | None = None,
    planning_hints: Mapping[str, Any] | None = None,
) -> str:
    """The system prompt: identity and rules, the tools, extra guidance, hints.

    `catalog` holds tool records (`NodeSpec.to_tool_record()`); `planning_hints` is
    a hints prompt payload. Built once per planner.
    """
    lines = [*_RULES, "", *_EXAMPLES, "", "Available tools:"]
    lines.append("\n".join(render_tool(record) for record in catalog) if catalog else "(none)")
    if extra:
        lines.extend(["", "Additional guidance:", extra])
    if planning_hints:
        rendered = render_planning_hints(planning_hints)
        if rendered:
            lines.extend(["", rendered])
    return "\n".join(lines)


def build_user_prompt(query: str, context_meta: Mapping[str, Any] | None = None) -> str:
    """The first user message: compact JSON of the query and, when truthy, the context.

    `context_meta` values must be JSON-serialisable (else `TypeError`).
    """
    if context_meta:
        return compact_json({"query": query, "context": dict(context_meta)})
    return compact_json({"query": query})


def render_observation(
    *, observation: Any | None, error: str | None, failure: Mapping[str, Any] | None = None
) -> str:
    """A step's outcome as the user message that follows its action.

    Compact JSON with `observation` (when not `None`), `error` and `failure` (when
    truthy); `{"observation": null}` when all are absent.
    """
    data: dict[str, Any] = {}
    if observation is not None:
        data["observation"] = observation
    if error:
        data["error"] = error
    if failure:
        data["failure"] = dict(failure)
    if not data:
        data = {"observation": None}
    return compact_json(data)


def render_resume_user_input(user_input: str) -> str:
    """The user message carrying the human's input after a resume."""
    return f"Resume input: {user_input}"


def render_summary(summary: Mapping[str, Any]) -> str:
    """A compact summary (`TrajectorySummary.compact()`) as a system message."""
    return f"Trajectory summary: {compact_json(summary)}"


def render_repair_message(error: str) -> str:
    """The system message sent after an invalid reply (`error` is error JSON)."""
    return (
        f"Previous response was invalid JSON or schema mismatch: {error}. "
        "Reply with corrected JSON only."
    )


def build_summarizer_messages(
    query: str, history: Sequence[Mapping[str, Any]], base_summary: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The system and user messages of an LLM summariser call."""
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
            "content": compact_json(
                {"query": query, "history": list(history), "current_summary": dict(base_summary)}
            ),
        },
    ]


def render_invalid_node(node_name: str, available: Iterable[str]) -> str:
    """The error for a tool name that is not in the catalog (names listed sorted)."""
    return (
        f"tool '{node_name}' is not in the catalog. Choose one of: {', '.join(sorted(available))}."
    )


def render_validation_error(node_name: str, error: str) -> str:
    """The error for tool arguments that failed validation (`error` is error JSON)."""
    return f"args for tool '{node_name}' did not validate: {error}. Return corrected JSON."


def render_output_validation_error(node_name: str, error: str) -> str:
    """The error for a tool output that failed its `out_model`."""
    return (
        f"tool '{node_name}' returned data that did not validate: {error}. "
        "Ensure the tool output matches the declared schema."
    )


def render_disallowed_node(node_name: str) -> str:
    """The error for a tool listed in `disallow_nodes`."""
    return (
        f"tool '{node_name}' is not permitted by constraints. "
        "Choose an allowed tool or revise the plan."
    )


def render_ordering_hint_violation(expected: Iterable[str], proposed: str) -> str:
    """The one-time reminder when a tool is proposed out of the preferred order."""
    return (
        f"Ordering hint reminder: follow the preferred sequence [{', '.join(expected)}]. "
        f"Proposed: {proposed}. Revise the plan."
    )


def render_parallel_limit(max_parallel: int) -> str:
    """The error for a parallel plan with more branches than allowed."""
    return f"Parallel action exceeds max_parallel={max_parallel}. Reduce parallel fan-out."


def render_sequential_only(node_name: str) -> str:
    """The error for a `sequential_only` tool inside a parallel plan."""
    return f"tool '{node_name}' must run sequentially. Do not include it in a parallel plan."


def render_parallel_setup_error(errors: Iterable[str]) -> str:
    """The error for a parallel plan whose entries failed checks (joined by `; `)."""
    return f"Parallel plan invalid: {'; '.join(errors)}. Revise the plan and retry."


def render_empty_parallel_plan() -> str:
    """The error for a parallel plan without branches."""
    return "Parallel plan must include at least one branch in 'plan'."


def render_parallel_with_next_node(next_node: str) -> str:
    """The error for a parallel plan that also sets `next_node`."""
    return (
        f"Parallel plan cannot set next_node='{next_node}'. "
        "Use 'join' to continue or finish the run explicitly."
    )


def render_parallel_unknown_failure(node_name: str) -> str:
    """The error for a branch that failed without an error message."""
    return (
        f"tool '{node_name}' failed during parallel execution. "
        "Investigate the tool and adjust the plan."
    )


def render_hop_budget_violation(limit: int) -> str:
    """The error (and finish thought) once the hop budget is used up."""
    return (
        "Hop budget exhausted; you have used all available tool calls. "
        f"Finish with the best answer so far or reply with no_path. (limit={limit})"
    )


def render_deadline_exhausted() -> str:
    """The finish thought once the run's deadline has passed."""
    return "Deadline reached. Provide the best available conclusion or return no_path."
