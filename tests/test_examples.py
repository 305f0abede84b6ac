"""Every example runs and shows what it promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, store: Path | None = None) -> str:
    env = dict(os.environ)
    if store is not None:
        env["PENGUIFLOW_STORE"] = str(store)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The demos record into the default store: here, one of the test's own."""
    return tmp_path / "state.db"


def penguiflow(*args: str, store: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "penguiflow", *args, "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_flow_demo_shows_routing_fan_out_join_and_streaming(store: Path) -> None:
    out = run_example("flow_demo.py", store)
    assert "'ada' -> research" in out
    assert "'grace' -> billing" in out
    for finding in ("09:14 UTC", "09:40 UTC", "SLA credit"):
        assert out.count(finding) == 2  # the specialist's log line and the streamed answer
    assert "answered with 3 note(s)" in out  # join_k merged the three specialists
    assert "20 chunks, seq 0..19 in order" in out
    assert "5 chunks, seq 0..4 in order" in out
    assert out.rstrip().endswith("streaming all ran.")
    assert "graph TD" in out
    assert "merge --> reply" in out
    assert out.count("penguiflow trace view ") == 2  # one recorded trace per ticket
    listed = penguiflow("trace", "list", "--json", store=store).splitlines()
    assert [json.loads(line)["kind"] for line in listed] == ["trace", "trace"]


def test_planner_demo_runs_offline_through_tools_parallel_plan_and_pause(store: Path) -> None:
    out = run_example("demo.py", store)
    assert "LLM: scripted (offline)" in out
    assert "-> lookup_traveller" in out
    assert "-> parallel: check_weather, check_weather, check_weather" in out
    assert "Paused for approval_required: {'traveller': 'Ada', 'city': 'Lisbon'}" in out
    assert "a second process resumes the run" in out
    assert "] resuming from " in out  # the pause was loaded from SQLite by another process
    assert "event resume" in out
    assert "-> confirm_booking" in out
    assert "Finished (answer_complete)" in out
    assert "PF-LIS-0001" in out
    # The run was recorded across both processes, as one run, and the demo says how
    # to see it.
    (run_id,) = re.findall(r"penguiflow trace view ([0-9a-f]{32})", out)
    (line,) = penguiflow("trace", "list", "--json", store=store).splitlines()
    run = json.loads(line)
    assert run["run_id"] == run_id
    assert run["status"] == "ok"
    assert run["attributes"]["resumes"] == 1
    assert run["attributes"]["llm_calls"] == 5
    shown = penguiflow("trace", "show", run_id, store=store)
    for name in ("lookup_traveller", "check_weather", "pick_city", "request_booking", "pause"):
        assert name in shown


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("planner/minimal_agent.py", ["answer_complete: 14 million after 1 tool call"]),
        (
            "planner/parallel_fanout.py",
            ["branches: [10, 20, 30]", "join total: 60", "ran in parallel: True"],
        ),
        (
            "planner/pause_resume.py",
            [
                "paused: approval_required {'order': 'A-17', 'amount': 250.0}",
                "resumed: answer_complete {'order': 'A-17', 'status': 'refunded'}",
            ],
        ),
        (
            "planner/replan_after_failure.py",
            [
                "live_search: tool 'live_search' raised SearchDown: search backend unavailable",
                "answer: cached result for 'penguins'",
            ],
        ),
    ],
)
def test_planner_examples(name: str, expected: list[str]) -> None:
    out = run_example(name)
    for line in expected:
        assert line in out


def test_mcp_tools_example_uses_a_tool_of_the_server_it_starts() -> None:
    out = run_example("mcp_tools.py")
    assert "MCP server 'weather' offers: forecast" in out
    assert "raised MCPToolError: MCP server 'weather' reported an error" in out
    assert "forecast({'city': 'Lisbon'}) => {'city': 'Lisbon', 'celsius': 22" in out
    answer = "Ada flies to Lisbon tomorrow: 22 C and clear skies."
    assert out.rstrip().endswith(f"Finished (answer_complete): {answer}")


def test_mcp_serve_example_serves_an_agent_and_calls_it_with_the_mcp_client() -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    out = run_example("mcp_serve.py")
    assert "tool ask(query, context), required: ['query']" in out
    assert "tool resume(token, user_input), required: ['token']" in out
    progress = [line.strip() for line in out.splitlines() if line.startswith("  progress ")]
    assert progress == [
        "progress 1: step 1: planning",
        "progress 2: step 1: called count_colony",
        "progress 3: step 2: planning",
        "progress 4: answer: Cape Crozie",
        "progress 5: answer: r has 300,00",
        "progress 6: answer: 0 breeding p",
        "progress 7: answer: airs.",
        "progress 8: finished: answer_complete",
    ]
    assert "answer: Cape Crozier has 300,000 breeding pairs." in out
    assert "error: True: invalid arguments for 'ask': query: Field required" in out
    assert out.rstrip().endswith("mcp serve example ran.")


def test_a2a_agent_example_serves_and_calls_an_agent_unary_and_streaming() -> None:
    pytest.importorskip("uvicorn", reason="the a2a-server extra is not installed")
    out = run_example("a2a_agent.py")
    assert "unary: 'PenguiFlow nodes are typed async functions ...' (0 chunks" in out
    assert (
        "(6 chunks streamed: ['PenguiFlow', 'nodes', 'are', 'typed', 'async', 'functions'])" in out
    )
    assert out.rstrip().endswith("a2a agent example ran.")


def test_planner_demo_with_a_model_but_no_api_key_says_so_in_one_line(store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env |= {"PENGUIFLOW_DEMO_MODEL": "openai/gpt-4o-mini", "PENGUIFLOW_STORE": str(store)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("demo: ")
    assert "Set OPENAI_API_KEY" in done.stderr


def test_streaming_answer_prints_the_answer_in_pieces_before_it_is_complete() -> None:
    out = run_example("streaming_answer.py")
    lines = out.splitlines()
    stamped = [re.match(r"\[ *(\d+) ms\] (.*)", line) for line in lines]
    pieces = [
        (int(m.group(1)), m.group(2)) for m in stamped if m and m.group(2) != "(answer complete)"
    ]
    assert len(pieces) > 10
    times = [ms for ms, _ in pieces]
    assert times == sorted(times)
    assert times[-1] > times[0]  # they came over time, not at once
    assert lines[len(pieces)].endswith("(answer complete)")
    answer = "Lisbon is 24 C and sunny: pack light, and bring sunglasses for the afternoon."
    assert f"streamed in {len(pieces)} chunks: {answer}" in out
    assert f"final answer: {answer}" in out
