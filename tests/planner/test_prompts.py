"""Prompt texts: the system prompt, conversation pieces and the exact error notices."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.planner import prompts
from penguiflow.planner.hints import PlanningHints


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str


class Upper(BaseModel):
    code: str

    @field_validator("code")
    @classmethod
    def upper(cls, value: str) -> str:
        if not value.isupper():
            raise ValueError("code must be upper case")
        return value


@tool(
    desc="Answer a question",
    side_effects="read",
    tags=["qa", "docs"],
    auth_scopes=["docs:read"],
    cost_hint="low",
    latency_hint_ms=0,
    safety_notes="No PII",
    extra={"owner": "team-é"},
)
async def answer(args: Question, ctx: Any) -> Answer:
    return Answer(answer=args.text)


async def plain(args: Question, ctx: Any) -> Answer:
    """Echo the question."""
    return Answer(answer=args.text)


def _records() -> list[dict[str, Any]]:
    registry = ModelRegistry()
    registry.register("answer", Question, Answer)
    registry.register("plain", Question, Answer)
    specs = build_catalog([Node(answer, name="answer"), Node(plain, name="plain")], registry)
    return [spec.to_tool_record() for spec in specs]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- system prompt -------------------------------------------------------------------


def test_render_tool_shows_every_set_field_in_order() -> None:
    full, bare = _records()

    assert prompts.render_tool(full) == "\n".join(
        [
            "- name: answer",
            "  desc: Answer a question",
            "  side_effects: read",
            f"  args_schema: {_compact(Question.model_json_schema())}",
            f"  out_schema: {_compact(Answer.model_json_schema())}",
            "  tags: qa, docs",
            "  auth_scopes: docs:read",
            "  cost_hint: low",
            "  latency_hint_ms: 0",
            "  safety_notes: No PII",
            '  extra: {"owner": "team-é"}',
        ]
    )
    assert prompts.render_tool(bare) == "\n".join(
        [
            "- name: plain",
            "  desc: Echo the question.",
            "  side_effects: pure",
            f"  args_schema: {_compact(Question.model_json_schema())}",
            f"  out_schema: {_compact(Answer.model_json_schema())}",
        ]
    )


def test_render_tool_renders_hand_made_schemas_afresh() -> None:
    schema: dict[str, Any] = {"b": 1, "a": 2}
    record: dict[str, Any] = {"name": "t", "desc": "d", "side_effects": "pure"}
    record |= {"args_schema": schema, "out_schema": schema}

    first = prompts.render_tool(record)
    schema["c"] = 3

    assert '  args_schema: {"a": 2, "b": 1}' in first
    assert '  args_schema: {"a": 2, "b": 1, "c": 3}' in prompts.render_tool(record)


def test_system_prompt_lists_rules_tools_guidance_and_hints() -> None:
    records = _records()
    hints = PlanningHints.from_mapping(
        {"ordering_hints": ["answer", "plain"], "max_parallel": 2, "disallow_nodes": ["x"]}
    ).to_prompt_payload()

    prompt = prompts.build_system_prompt(records, extra="Be brief.", planning_hints=hints)
    lines = prompt.split("\n")

    assert "PenguiFlow ReactPlanner" in lines[0]
    assert "JSON-only planner" in lines[0]
    assert [line[:3] for line in lines[2:7]] == ["1. ", "2. ", "3. ", "4. ", "5. "]
    assert "PlannerAction" in lines[2]
    assert "'next_node' to null" in lines[5]
    # Then (our addition) one example of a tool call and one of a finish, and what a
    # result and an error look like.
    examples = lines[8 : lines.index("Available tools:") - 1]
    assert examples[0] == "A tool call looks like:"
    assert json.loads(examples[1])["next_node"] == "<tool name>"
    assert examples[2] == "A finish looks like:"
    assert json.loads(examples[3])["next_node"] is None
    assert "After an error" in examples[4]
    assert lines[7] == ""
    assert lines[lines.index("Available tools:") - 1] == ""
    tools = "\n".join(prompts.render_tool(record) for record in records)
    assert prompt.endswith(
        "Available tools:\n"
        + tools
        + "\n\nAdditional guidance:\nBe brief.\n\n"
        + "Respect the following constraints: max_parallel=2\n"
        + "Preferred order (if feasible): ['answer', 'plain']\n"
        + "Disallowed tools: ['x']"
    )


def test_system_prompt_without_tools_or_extras() -> None:
    prompt = prompts.build_system_prompt([], extra="", planning_hints={"budget": {}})

    assert prompt.endswith("\n\nAvailable tools:\n(none)")
    assert prompts.build_system_prompt([]) == prompt


def test_render_planning_hints_uses_python_str_in_fixed_order() -> None:
    rendered = prompts.render_planning_hints(
        {
            "budget": {"max_parallel": 3},
            "preferred_nodes": ["b"],
            "disallow_nodes": ["z"],
            "parallel_groups": [["a", "b"]],
            "preferred_order": ["a"],
            "constraints": "sequential_only=a,b",
            "ignored": "x",
        }
    )

    assert rendered == (
        "Respect the following constraints: sequential_only=a,b\n"
        "Preferred order (if feasible): ['a']\n"
        "Allowed parallel groups: [['a', 'b']]\n"
        "Disallowed tools: ['z']\n"
        "Preferred tools: ['b']\n"
        "Budget hints: {'max_parallel': 3}"
    )
    assert prompts.render_planning_hints({"preferred_order": []}) == ""


# -- conversation pieces -------------------------------------------------------------


def test_user_prompt_is_compact_sorted_json() -> None:
    assert prompts.build_user_prompt("How?") == '{"query": "How?"}'
    assert prompts.build_user_prompt("Où?", {}) == '{"query": "Où?"}'
    assert (
        prompts.build_user_prompt("How?", {"tenant": "acme"})
        == '{"context": {"tenant": "acme"}, "query": "How?"}'
    )
    with pytest.raises(TypeError):
        prompts.build_user_prompt("q", {"when": object()})


def test_render_observation_shapes() -> None:
    assert prompts.render_observation(observation={"intent": "docs"}, error=None) == (
        '{"observation": {"intent": "docs"}}'
    )
    assert prompts.render_observation(observation=None, error=None) == '{"observation": null}'
    assert prompts.render_observation(observation=0, error="", failure={}) == '{"observation": 0}'
    assert prompts.render_observation(
        observation=None, error="boom", failure={"node": "x", "error_code": "E"}
    ) == ('{"error": "boom", "failure": {"error_code": "E", "node": "x"}}')


def test_resume_summary_and_repair_messages() -> None:
    assert prompts.render_resume_user_input("approved") == "Resume input: approved"
    assert prompts.render_summary({"goals": ["q"], "facts": {}}) == (
        'Trajectory summary: {"facts": {}, "goals": ["q"]}'
    )
    assert prompts.render_repair_message("[]") == (
        "Previous response was invalid JSON or schema mismatch: []. Reply with corrected JSON only."
    )


def test_summarizer_messages() -> None:
    system, user = prompts.build_summarizer_messages(
        "How?", ({"step": 1},), {"goals": ["How?"], "note": "rule_based"}
    )

    assert system["role"] == "system"
    assert "TrajectorySummary" in system["content"]
    assert user == {
        "role": "user",
        "content": '{"current_summary": {"goals": ["How?"], "note": "rule_based"}, '
        '"history": [{"step": 1}], "query": "How?"}',
    }


# -- exact error and notice templates ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            prompts.render_invalid_node("nope", ["retrieve", "answer"]),
            "tool 'nope' is not in the catalog. Choose one of: answer, retrieve.",
        ),
        (
            prompts.render_validation_error("answer", "[]"),
            "args for tool 'answer' did not validate: []. Return corrected JSON.",
        ),
        (
            prompts.render_output_validation_error("answer", "[]"),
            "tool 'answer' returned data that did not validate: []. "
            "Ensure the tool output matches the declared schema.",
        ),
        (
            prompts.render_disallowed_node("rm"),
            "tool 'rm' is not permitted by constraints. Choose an allowed tool or revise the plan.",
        ),
        (
            prompts.render_ordering_hint_violation(["triage", "retrieve"], "retrieve"),
            "Ordering hint reminder: follow the preferred sequence [triage, retrieve]. "
            "Proposed: retrieve. Revise the plan.",
        ),
        (
            prompts.render_parallel_limit(3),
            "Parallel action exceeds max_parallel=3. Reduce parallel fan-out.",
        ),
        (
            prompts.render_sequential_only("write"),
            "tool 'write' must run sequentially. Do not include it in a parallel plan.",
        ),
        (
            prompts.render_parallel_setup_error(["a", "b"]),
            "Parallel plan invalid: a; b. Revise the plan and retry.",
        ),
        (
            prompts.render_empty_parallel_plan(),
            "Parallel plan must include at least one branch in 'plan'.",
        ),
        (
            prompts.render_parallel_with_next_node("merge"),
            "Parallel plan cannot set next_node='merge'. "
            "Use 'join' to continue or finish the run explicitly.",
        ),
        (
            prompts.render_parallel_unknown_failure("fetch"),
            "tool 'fetch' failed during parallel execution. "
            "Investigate the tool and adjust the plan.",
        ),
        (
            prompts.render_hop_budget_violation(0),
            "Hop budget exhausted; you have used all available tool calls. "
            "Finish with the best answer so far or reply with no_path. (limit=0)",
        ),
        (
            prompts.render_deadline_exhausted(),
            "Deadline reached. Provide the best available conclusion or return no_path.",
        ),
    ],
)
def test_error_templates_are_exact(text: str, expected: str) -> None:
    assert text == expected


def test_validation_error_inside_setup_error_has_a_double_period() -> None:
    inner = prompts.render_validation_error("fetch", "[]")

    assert prompts.render_parallel_setup_error([inner]).endswith(
        "Return corrected JSON.. Revise the plan and retry."
    )


# -- safe error JSON (spec §18.1 fix) ------------------------------------------------


def test_safe_error_json_equals_error_json_for_plain_errors() -> None:
    with pytest.raises(ValidationError) as info:
        Question.model_validate({"text": 1})

    assert prompts.safe_error_json(info.value) == json.dumps(
        info.value.errors(), ensure_ascii=False
    )


def test_safe_error_json_renders_validator_exceptions_with_repr() -> None:
    with pytest.raises(ValidationError) as info:
        Upper(code="lower")
    with pytest.raises(TypeError):
        json.dumps(info.value.errors())

    errors = json.loads(prompts.safe_error_json(info.value))

    assert errors[0]["ctx"] == {"error": "ValueError('code must be upper case')"}
    assert errors[0]["msg"] == "Value error, code must be upper case"
    assert errors[0]["loc"] == ["code"]


def test_safe_error_json_handles_unserialisable_inputs_keys_and_cycles() -> None:
    looped: dict[Any, Any] = {(1, 2): {3}}
    looped["self"] = looped
    with pytest.raises(ValidationError) as info:
        Question.model_validate({"text": looped})

    errors = json.loads(prompts.safe_error_json(info.value))

    assert errors[0]["input"]["(1, 2)"] == "{3}"
    assert isinstance(errors[0]["input"]["self"], str)


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.integers()
        | st.text()
        | st.sets(st.integers(), max_size=2)
        | st.just(object()),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.integers() | st.text() | st.tuples(st.integers()), inner, max_size=3
            )
        ),
        max_leaves=8,
    )
)
def test_safe_error_json_never_raises(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Question.model_validate({"text": value} if not isinstance(value, str) else {})

    assert isinstance(json.loads(prompts.safe_error_json(info.value)), list)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_compact_json_is_the_specified_json_dumps(value: Any) -> None:
    assert prompts.compact_json(value) == json.dumps(value, ensure_ascii=False, sort_keys=True)


def test_compact_json_fails_as_json_dumps_does() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="Circular reference detected"):
        prompts.compact_json(cyclic)
    with pytest.raises(TypeError, match="not JSON serializable"):
        prompts.compact_json({"s": {1}})
