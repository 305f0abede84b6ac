"""The README's promises: the two commands come first and the quickstart runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_make_demo_and_make_test() -> None:
    first_block = re.search(r"```\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    assert README.index("```") < README.index("## ")  # before any section


def run_first_python_block(heading: str, index: int = 0) -> subprocess.CompletedProcess[str]:
    """Run the first (or `index`-th) python block under `## heading` in a fresh interpreter."""
    section = README.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) > index
    done = subprocess.run(
        [sys.executable, "-c", blocks[index]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_quickstart_runs_and_prints_the_documented_result() -> None:
    done = run_first_python_block("Quickstart")
    assert done.stdout.splitlines() == [
        "You asked: what is penguiflow? 3",
        "failed: clean ValidationError",
    ]
    assert "This prints `You asked: what is penguiflow? 3`, then `failed: clean" in README


def test_quickstart_explains_failures_for_call_and_for_fetch() -> None:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    for promise in (
        "raises that trace's `FlowError`",
        "`FlowTimeoutError`",
        "emit_errors_to_rookery=False",
        "emit_errors_to_rookery=True",
        "undelivered=",
    ):
        assert promise in section


def test_the_local_model_clients_build_as_shown() -> None:
    run_first_python_block("A planner agent", index=1)


def test_observing_a_flow_prints_what_the_readme_says() -> None:
    done = run_first_python_block("Observing a flow")
    assert done.stdout.splitlines() == [
        "result of t-he",
        "done: t-he",
        "HELLO True",
        "failed: Node 'shout' raised ValueError: no shouting at bombs",
        "done: t-bo",
    ]
    assert (
        "This prints `result of t-he`, `done: t-he`, `HELLO True`, then\n"
        "`failed: Node 'shout' raised ValueError: no shouting at bombs` and `done: t-bo`."
    ) in README
