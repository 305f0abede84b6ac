"""Both LLM clients, built against the scripted OpenAI-compatible server."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from penguiflow.planner.clients import OpenAICompatibleClient
from penguiflow.planner.react import _LiteLLMJSONClient
from penguiflow.testkit import ScriptedLLMServer

SECRET = "sk-test-SECRET-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]

ClientFactory = Callable[..., Any]


def native(server: ScriptedLLMServer, **options: Any) -> OpenAICompatibleClient:
    """The native client, with fast backoff."""
    options.setdefault("backoff_base_s", 0.001)
    options.setdefault("max_retries", 3)
    options.setdefault("timeout_s", 5.0)
    return OpenAICompatibleClient(server.base_url, "scripted", api_key=SECRET, **options)


def via_litellm(server: ScriptedLLMServer, **options: Any) -> _LiteLLMJSONClient:
    """The LiteLLM client the planner builds from `llm=`, pointed at the server.

    LiteLLM is imported here, so that its one-time import (seconds on a loaded
    machine) is not counted in what a test times."""
    importlib.import_module("litellm")
    llm = {"model": "openai/scripted", "api_base": server.base_url, "api_key": SECRET}
    return _LiteLLMJSONClient(
        llm,
        temperature=0.0,
        json_schema_mode=options.pop("json_schema_mode", True),
        max_retries=options.pop("max_retries", 3),
        timeout_s=options.pop("timeout_s", 5.0),
        backoff_base_s=0.001,
    )


CLIENTS = [pytest.param(native, id="httpx"), pytest.param(via_litellm, id="litellm")]


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as running:
        yield running
