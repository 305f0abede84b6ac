"""The `penguiflow_a2a` names of distribution.md §1 and §6.2, and its import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

import penguiflow_a2a
import penguiflow_a2a.server as server
from penguiflow_a2a import (
    A2AAgentCard,
    A2AMessagePayload,
    A2AServerAdapter,
    A2ASkill,
    A2ATaskCancelRequest,
)
from penguiflow_a2a.server import A2ARequestError, RookeryResult

from .conftest import CARD_FIELDS, echo_flow


def test_exports_match_the_spec() -> None:
    assert set(penguiflow_a2a.__all__) == {
        "A2AAgentCard",
        "A2ASkill",
        "A2AMessagePayload",
        "A2ATaskCancelRequest",
        "A2AServerAdapter",
        "create_a2a_app",
    }
    assert set(server.__all__) == {
        "A2AAgentCard",
        "A2ASkill",
        "A2AMessagePayload",
        "A2AServerAdapter",
        "create_a2a_app",
        "A2ARequestError",
        "RookeryResult",
    }
    assert server.A2ATaskCancelRequest is A2ATaskCancelRequest  # importable, not listed


def test_importing_the_package_needs_only_pydantic() -> None:
    code = (
        "import sys, penguiflow_a2a, penguiflow_a2a.server;"
        "print(sorted(m for m in ('fastapi','starlette','httpx','uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_create_app_without_fastapi_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    adapter = A2AServerAdapter(
        echo_flow(), agent_card={"name": "a", "description": "b"}, agent_url="http://x"
    )
    with pytest.raises(RuntimeError) as info:
        penguiflow_a2a.create_a2a_app(adapter)
    assert str(info.value) == (
        "FastAPI is required for the A2A server adapter. Install penguiflow[a2a-server]."
    )


def test_card_and_skill_keep_extra_fields_and_dump_in_declaration_order() -> None:
    card = A2AAgentCard(
        name="n", description="d", skills=[A2ASkill(name="s", description="x", cost=3)], team="t"
    )
    payload = card.to_payload()
    assert list(payload) == [*CARD_FIELDS, "team"]
    assert payload["skills"][0]["cost"] == 3
    assert payload["version"] == "1.0.0"
    assert payload["schema_version"] == "1.0"
    assert payload["contact_url"] is None


def test_a_mapping_card_is_validated_by_the_constructor() -> None:
    with pytest.raises(ValidationError):
        A2AServerAdapter(echo_flow(), agent_card={"name": "only"}, agent_url="http://x")


def test_message_payload_accepts_aliases_or_field_names() -> None:
    by_alias = A2AMessagePayload.model_validate(
        {
            "payload": None,
            "traceId": "t",
            "contextId": "c",
            "taskId": "k",
            "deadlineSeconds": 1.5,
            "unknown": 1,
        }
    )
    by_name = A2AMessagePayload.model_validate(
        {"payload": None, "trace_id": "t", "context_id": "c", "task_id": "k", "deadline_s": 1.5}
    )
    assert by_alias == by_name
    assert (by_alias.headers, by_alias.meta) == ({}, {})
    assert A2ATaskCancelRequest.model_validate({"task_id": "x"}).task_id == "x"
    with pytest.raises(ValidationError):
        A2ATaskCancelRequest.model_validate({})


def test_request_error_and_rookery_result() -> None:
    err = A2ARequestError(status_code=409, detail="task 'x' already active")
    assert (err.status_code, err.detail, str(err)) == (
        409,
        "task 'x' already active",
        "task 'x' already active",
    )
    result = RookeryResult("t", {"v": 1})
    assert (result.trace_id, result.value) == ("t", {"v": 1})
    assert not hasattr(result, "__dict__")


async def test_start_on_a_running_flow_raises() -> None:
    flow = echo_flow()
    flow.run()
    adapter = A2AServerAdapter(
        flow, agent_card={"name": "a", "description": "b"}, agent_url="http://x"
    )
    try:
        with pytest.raises(RuntimeError, match="PenguiFlow already running"):
            await adapter.start()
    finally:
        await flow.stop()
