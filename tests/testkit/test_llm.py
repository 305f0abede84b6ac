"""ScriptedLLMClient: an in-process LLM that answers from a script."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from penguiflow.testkit import ScriptedLLMClient, ScriptExhaustedError


class Answer(BaseModel):
    thought: str


async def test_replies_come_back_in_order_as_text() -> None:
    client = ScriptedLLMClient(['{"a": 1}', {"b": "ü"}, Answer(thought="done")])
    messages = [{"role": "user", "content": "hi"}]
    assert await client.complete(messages=messages) == '{"a": 1}'
    assert json.loads(await client.complete(messages=messages)) == {"b": "ü"}
    assert json.loads(await client.complete(messages=messages)) == {"thought": "done"}
    assert client.remaining == 0


async def test_calls_are_recorded_for_assertions() -> None:
    client = ScriptedLLMClient(["x"])
    schema = {"type": "json_schema"}
    await client.complete(messages=[{"role": "system", "content": "s"}], response_format=schema)
    assert client.calls == [
        {"messages": [{"role": "system", "content": "s"}], "response_format": schema}
    ]


async def test_exceptions_are_raised_and_callables_see_the_messages() -> None:
    client = ScriptedLLMClient(
        [TimeoutError("slow"), lambda messages: messages[-1]["content"].upper()]
    )
    with pytest.raises(TimeoutError, match="slow"):
        await client.complete(messages=[])
    assert await client.complete(messages=[{"role": "user", "content": "echo"}]) == "ECHO"


async def test_running_out_of_script_is_a_typed_error_unless_there_is_a_default() -> None:
    with pytest.raises(ScriptExhaustedError, match="no reply left for call #1"):
        await ScriptedLLMClient().complete(messages=[])
    fallback = ScriptedLLMClient(default="{}")
    assert [await fallback.complete(messages=[]) for _ in range(3)] == ["{}"] * 3


async def test_a_bad_script_item_names_its_type() -> None:
    client = ScriptedLLMClient([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got int"):
        await client.complete(messages=[])


def test_expects_json_schema_is_configurable() -> None:
    assert ScriptedLLMClient().expects_json_schema is False
    assert ScriptedLLMClient(expects_json_schema=True).expects_json_schema is True
