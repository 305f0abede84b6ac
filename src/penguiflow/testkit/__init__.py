"""FlowTestKit: helpers to run, record and assert on your own flows in tests."""

from __future__ import annotations

from .flowkit import (
    assert_node_sequence,
    assert_preserves_message_envelope,
    get_recorded_events,
    run_one,
    simulate_error,
)
from .llm import ScriptedLLMClient as ScriptedLLMClient
from .llm import ScriptExhaustedError as ScriptExhaustedError
from .llm_server import RecordedRequest as RecordedRequest
from .llm_server import ScriptedLLMServer as ScriptedLLMServer
from .llm_server import ServerReply as ServerReply

__all__ = [
    "run_one",
    "assert_node_sequence",
    "get_recorded_events",
    "simulate_error",
    "assert_preserves_message_envelope",
]
# Beyond the reference API (kept out of `__all__`, which matches the spec):
# ScriptedLLMClient (in process) and ScriptedLLMServer (OpenAI-compatible HTTP on
# 127.0.0.1) for testing planners and LLM clients offline.
