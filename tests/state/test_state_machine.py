"""Each store behaves like a dict model under any sequence of operations (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from penguiflow.state import RemoteBinding, ResumeTokenError, StoredEvent

TRACES = st.sampled_from(["a", "b", "c:d", "' OR 1=1"])
TOKENS = st.sampled_from(["t1", "t2", "t3"])
VALUES = st.none() | st.integers(-5, 5) | st.text(max_size=5) | st.lists(st.integers(), max_size=3)


def run_machine(store: Any) -> None:
    loop = asyncio.new_event_loop()

    class StoreMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.events: dict[str, list[StoredEvent]] = {}
            self.bindings: dict[str, dict[str, RemoteBinding]] = {}
            self.states: dict[str, dict[str, Any]] = {}
            self.n = 0
            for trace in ("a", "b", "c:d", "' OR 1=1"):
                loop.run_until_complete(store.delete_trace(trace))
            for token in ("t1", "t2", "t3"):
                loop.run_until_complete(store.discard_planner_state(token))

        @rule(trace=TRACES, value=VALUES)
        def save_event(self, trace: str, value: Any) -> None:
            self.n += 1
            event = StoredEvent(trace, float(self.n), "k", "n", "i", {"v": value})
            loop.run_until_complete(store.save_event(event))
            self.events.setdefault(trace, []).append(event)

        @rule(trace=TRACES, task=st.sampled_from(["x", "y"]), url=st.sampled_from(["u1", "u2"]))
        def bind(self, trace: str, task: str, url: str) -> None:
            binding = RemoteBinding(trace, None, task, url)
            loop.run_until_complete(store.save_remote_binding(binding))
            self.bindings.setdefault(trace, {})[task] = binding

        @rule(trace=TRACES)
        def delete(self, trace: str) -> None:
            loop.run_until_complete(store.delete_trace(trace))
            self.events.pop(trace, None)
            self.bindings.pop(trace, None)

        @rule(token=TOKENS, value=VALUES)
        def pause(self, token: str, value: Any) -> None:
            loop.run_until_complete(store.save_planner_state(token, {"v": value}))
            self.states[token] = {"v": value}

        @rule(token=TOKENS)
        def resume(self, token: str) -> None:
            expected = self.states.pop(token, None)
            if expected is None:
                with pytest.raises(ResumeTokenError):
                    loop.run_until_complete(store.load_planner_state(token))
            else:
                assert loop.run_until_complete(store.load_planner_state(token)) == expected

        @invariant()
        def same_as_model(self) -> None:
            if not hasattr(self, "events"):
                return
            for trace in ("a", "b", "c:d", "' OR 1=1"):
                stored = loop.run_until_complete(store.load_history(trace))
                assert stored == self.events.get(trace, [])
                bound = loop.run_until_complete(store.load_remote_bindings(trace))
                model = self.bindings.get(trace, {})
                assert bound == [model[k] for k in sorted(model)]

    StoreMachine.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    try:
        StoreMachine.TestCase().runTest()
    finally:
        loop.run_until_complete(store.close())
        loop.close()


def test_every_store_matches_a_dict_model(sync_store: Any) -> None:
    run_machine(sync_store)
