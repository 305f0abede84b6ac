"""Planner runs against a server that injects faults into about 5% of replies, through
each client: no run is lost, every failure is a typed `LLMError`, and no logical call
makes more attempts than its retry policy allows."""

from __future__ import annotations

import email.utils
import random
import time
from collections import Counter
from typing import Any

import pytest

from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.planner.clients import LLMError
from penguiflow.testkit import ScriptedLLMServer, ServerReply

from ..conftest import act
from .conftest import CLIENTS, ClientFactory

# LiteLLM warns while it refuses a `usage` of the wrong type (one of the faults).
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

RUNS = 500
FAULT_RATE = 0.05
EXHAUST_RATE = 0.005  # a call whose every attempt fails: the run ends in a typed error
ATTEMPTS = 3  # max_retries: attempts in all
# A reply is late after TIMEOUT_S; the "timeout" fault answers after SLOW_S. TIMEOUT_S
# leaves room for a loaded machine: a good reply that comes late is a timeout too, and
# its scripted reply is then gone, so the run would end one reply short.
TIMEOUT_S = 1.0
SLOW_S = 2.0
CALL = act("look it up", next_node="triage", args={"text": "q"})
FINISH = act("done", next_node=None, args={"answer": "docs"})


def faults(native_client: bool) -> list[tuple[str, ServerReply, bool]]:
    """(name, reply, consumed as the answer): a reply with `usage` of the wrong type is
    a good completion for the native client and a server fault for LiteLLM."""
    deep = b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    past = email.utils.formatdate(time.time() - 5, usegmt=True)
    bad_usage = (
        b'{"choices": [{"message": {"role": "assistant", "content": "CONTENT"}}], "usage": "x"}'
    )
    return [
        ("429-seconds", ServerReply.rate_limited("0.01"), False),
        ("429-date", ServerReply.rate_limited(past), False),
        ("429-garbage", ServerReply.rate_limited("nan"), False),
        ("500", ServerReply.error(500), False),
        ("503", ServerReply.error(503), False),
        ("reset", ServerReply.reset_connection(), False),
        ("timeout", ServerReply.slow(SLOW_S), False),
        (
            "bad-gzip",
            ServerReply(raw_body=b"not gzip", headers={"Content-Encoding": "gzip"}),
            False,
        ),
        ("deep-json", ServerReply(raw_body=deep), False),
        ("truncated-json", ServerReply.malformed(), False),
        ("usage-type", ServerReply(raw_body=bad_usage), native_client),
    ]


@pytest.mark.parametrize("make", CLIENTS)
async def test_runs_survive_injected_faults_with_typed_errors_only(
    catalog: list[Any], make: ClientFactory
) -> None:
    rng = random.Random(20261202)
    native_client = make.__name__ == "native"
    kinds = faults(native_client)
    outcomes: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    worst_attempts = 0
    typed_failures: list[tuple[bool, int]] = []
    failure_messages: list[str] = []
    with ScriptedLLMServer() as server:
        client = make(server, timeout_s=TIMEOUT_S, max_retries=ATTEMPTS)
        planner = ReactPlanner(llm_client=client, catalog=catalog)
        for _ in range(RUNS):
            before = len(server.requests)
            script: list[str | ServerReply] = []
            exhausted = False
            calls = 0
            for content in (CALL, FINISH):
                calls += 1
                if rng.random() < EXHAUST_RATE:
                    script.extend([ServerReply.error(503)] * ATTEMPTS)
                    injected["exhausted"] += 1
                    exhausted = True
                    break
                if rng.random() < FAULT_RATE:
                    name, reply, answers = rng.choice(kinds)
                    injected[name] += 1
                    if answers:
                        body = (reply.raw_body or b"").replace(
                            b"CONTENT", content.replace('"', '\\"').encode()
                        )
                        script.append(ServerReply(raw_body=body))
                        continue
                    script.append(reply)
                script.append(content)
            server.add(*script)
            try:
                result = await planner.run("q")
            except LLMError as exc:
                outcomes[f"typed:{type(exc).__name__}"] += 1
                typed_failures.append((exhausted, exc.attempts))
                failure_messages.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # the figure: must stay 0
                outcomes[f"untyped:{type(exc).__name__}"] += 1
            else:
                assert isinstance(result, PlannerFinish)
                assert result.payload == {"answer": "docs"}
                outcomes["finished"] += 1
            # Per logical call: the exhausted one made ATTEMPTS, a faulty one two.
            worst_attempts = max(worst_attempts, (len(server.requests) - before) - (calls - 1))
    untyped = {k: v for k, v in outcomes.items() if k.startswith("untyped")}
    print(
        f"\n{make.__name__}: {RUNS} runs, faults injected {sum(injected.values())} "
        f"({dict(injected)}), outcomes {dict(outcomes)}, worst attempts per call "
        f"{worst_attempts:g} (limit {ATTEMPTS})"
    )
    assert untyped == {}
    # Only calls whose every attempt failed end a run, after exactly ATTEMPTS attempts.
    assert typed_failures == [(True, ATTEMPTS)] * injected["exhausted"], failure_messages
    assert sum(outcomes.values()) == RUNS  # none lost
    assert outcomes["finished"] == RUNS - injected["exhausted"]
    assert worst_attempts <= ATTEMPTS
    assert sum(injected.values()) >= RUNS * 2 * FAULT_RATE * 0.6
