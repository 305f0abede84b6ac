import time

import pytest
from pydantic import ValidationError

from penguiflow.types import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought


def test_message_requires_headers() -> None:
    with pytest.raises(ValidationError):
        Message(payload="hello")  # type: ignore[call-arg]


def test_message_defaults_are_fresh_per_instance() -> None:
    before = time.time()
    first = Message(payload=1, headers=Headers(tenant="acme"))
    second = Message(payload=2, headers=Headers(tenant="acme"))
    assert len(first.trace_id) == 32
    assert int(first.trace_id, 16) >= 0
    assert first.trace_id != second.trace_id
    assert before <= first.ts <= time.time()
    assert first.deadline_s is None
    first.meta["k"] = "v"
    assert second.meta == {}


def test_headers_defaults() -> None:
    headers = Headers(tenant="acme")
    assert (headers.topic, headers.priority) == (None, 0)


def test_stream_chunk_and_controller_models() -> None:
    chunk = StreamChunk(stream_id="s", seq=0, text="hi")
    assert (chunk.done, chunk.meta) == (False, {})
    wm = WM(query="q")
    assert (wm.hops, wm.budget_hops, wm.tokens_used, wm.budget_tokens, wm.confidence) == (
        0,
        8,
        0,
        None,
        0.0,
    )
    assert FinalAnswer(text="done").citations == []
    thought = Thought(steps=[PlanStep(kind="retrieve")], rationale="why")
    assert thought.steps[0].args == {}
    assert thought.steps[0].max_concurrency == 1
    assert thought.done is False
    with pytest.raises(ValidationError):
        PlanStep(kind="teleport")  # type: ignore[arg-type]


def test_extra_keys_are_ignored_and_input_is_coerced() -> None:
    headers = Headers.model_validate({"tenant": "acme", "priority": "3", "unknown": 1})
    assert headers.priority == 3
    assert not hasattr(headers, "unknown")
