"""No tool ever runs on invalid arguments, whatever the LLM replies.

A corpus of broken replies (truncated JSON, code fences, prose, trailing commas,
wrong types, unknown tools, missing fields), built systematically from templates,
plus hypothesis-generated text. Each reply is followed by a valid finish, so every
run must end with either a repaired action or the documented failure, and every
tool call that happened must have had arguments that validate.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient

from .conftest import Calls, Question, Shard, Strict

VALID_ARGS: dict[str, type[BaseModel]] = {"triage": Question, "fetch": Shard, "strict": Strict}

GOOD = [
    {"thought": "t", "next_node": "triage", "args": {"text": "hello"}},
    {"thought": "t", "next_node": "fetch", "args": {"shard": 2}},
    {"thought": "t", "next_node": "strict", "args": {"code": "OK"}},
    {"thought": "t", "plan": [{"node": "fetch", "args": {"shard": 1}}]},
]

BAD_ARGS = [
    {"thought": "t", "next_node": "triage", "args": {"text": 5}},
    {"thought": "t", "next_node": "triage", "args": {}},
    {"thought": "t", "next_node": "triage", "args": {"txt": "x"}},
    {"thought": "t", "next_node": "triage", "args": None},
    {"thought": "t", "next_node": "fetch", "args": {"shard": "two"}},
    {"thought": "t", "next_node": "fetch", "args": {"shard": [1]}},
    {"thought": "t", "next_node": "fetch", "args": {"shard": None}},
    {"thought": "t", "next_node": "fetch", "args": {"shard": 1.5}},
    {"thought": "t", "next_node": "strict", "args": {"code": "lower"}},
    {"thought": "t", "next_node": "strict", "args": {"code": 1}},
    {"thought": "t", "next_node": "unknown_tool", "args": {"text": "x"}},
    {"thought": "t", "next_node": "", "args": {"text": "x"}},
    {"thought": "t", "plan": [{"node": "fetch", "args": {"shard": "x"}}]},
    {"thought": "t", "plan": [{"node": "nope", "args": {}}]},
    {"thought": "t", "plan": [{"node": "fetch", "args": {"shard": 1}}], "next_node": "triage"},
    {"thought": "t", "plan": [{"node": "fetch"}], "join": {"node": "merge", "args": {}}},
]

BAD_SHAPE = [
    {"next_node": "triage", "args": {"text": "x"}},  # missing thought
    {"thought": 3, "next_node": "triage", "args": {"text": "x"}},
    {"thought": "t", "next_node": 7, "args": {"text": "x"}},
    {"thought": "t", "next_node": "triage", "args": "text=x"},
    {"thought": "t", "next_node": "triage", "args": ["x"]},
    {"thought": "t", "plan": "fetch"},
    {"thought": "t", "plan": [{"args": {"shard": 1}}]},
    {"thought": "t", "join": "merge", "plan": [{"node": "fetch", "args": {"shard": 1}}]},
]


def mangle(action: dict[str, Any]) -> list[str]:
    """Broken renderings of one action."""
    text = json.dumps(action)
    return [
        text[: len(text) // 2],  # truncated
        text[:-1],  # missing closing brace
        "```json\n" + text + "\n```",  # fenced
        "```\n" + text + "\n```",
        "Here is my answer: " + text + " Let me know!",  # prose around
        text[:-1] + ",}",  # trailing comma
        text.replace('"', "'"),  # single quotes
        "",  # empty
        "null",
        text.replace(":", "=", 1),  # not JSON at all
    ]


def corpus() -> list[str]:
    replies: list[str] = []
    for action in GOOD + BAD_ARGS + BAD_SHAPE:
        replies.extend(mangle(action))
    replies.extend(json.dumps(action) for action in BAD_ARGS + BAD_SHAPE)
    replies.extend(["[]", "42", '"thought"', "{}", '{"thought": null}', "{" * 50, "}" * 5])
    return replies


CORPUS = corpus()
FINISH = json.dumps({"thought": "done", "next_node": None, "args": {"answer": "ok"}})


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 200


def assert_every_call_was_valid(calls: Calls) -> None:
    for name, args in calls.log:
        model = VALID_ARGS.get(name)
        assert model is not None, f"unexpected tool {name}"
        assert isinstance(args, model)
        model.model_validate(args.model_dump())  # still valid as received


async def run_reply(catalog: list[Any], reply: str) -> PlannerFinish:
    llm = ScriptedLLMClient([reply, FINISH, FINISH, FINISH])
    planner = ReactPlanner(llm_client=llm, catalog=catalog, repair_attempts=2, max_iters=3)
    result = await planner.run("q")  # the valid finish after the broken reply is accepted
    assert isinstance(result, PlannerFinish)
    return result


@pytest.mark.parametrize("reply", CORPUS, ids=range(len(CORPUS)))
async def test_broken_replies_never_run_tools_on_invalid_arguments(
    catalog: list[Any], calls: Calls, reply: str
) -> None:
    result = await run_reply(catalog, reply)
    assert_every_call_was_valid(calls)
    assert result.reason in {"answer_complete", "no_path"}


async def test_exhausting_repairs_is_the_documented_failure(catalog: list[Any]) -> None:
    llm = ScriptedLLMClient(["nope"] * 3)
    with pytest.raises(RuntimeError, match=r"^Planner failed to produce valid JSON after repair"):
        await ReactPlanner(llm_client=llm, catalog=catalog).run("q")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    reply=st.one_of(
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["thought", "next_node", "args", "plan", "join", "text", "shard"]
                    ),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {
                "thought": st.text(max_size=5),
                "next_node": st.sampled_from(["triage", "fetch", "strict", "x", None]),
                "args": st.dictionaries(
                    st.sampled_from(["text", "shard", "code"]),
                    st.none() | st.integers() | st.text(max_size=5) | st.floats(),
                    max_size=3,
                ),
            }
        ).map(json.dumps),
    )
)
def test_generated_replies_never_run_tools_on_invalid_arguments(
    catalog: list[Any], calls: Calls, reply: str
) -> None:
    calls.log.clear()
    asyncio.run(run_reply(catalog, reply))
    assert_every_call_was_valid(calls)
