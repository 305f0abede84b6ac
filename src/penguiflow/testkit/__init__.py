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

__all__ = [
    "run_one",
    "assert_node_sequence",
    "get_recorded_events",
    "simulate_error",
    "assert_preserves_message_envelope",
]
# Beyond the reference API (kept out of `__all__`, which matches the spec):
# ScriptedLLMClient / ScriptExhaustedError for testing planners offline.
