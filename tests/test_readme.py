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


def run_first_python_block(heading: str) -> subprocess.CompletedProcess[str]:
    """Run the first python block under `## heading` in a fresh interpreter."""
    section = README.split(f"## {heading}", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_quickstart_runs_and_prints_the_documented_result() -> None:
    done = run_first_python_block("Quickstart")
    assert done.stdout.strip() == "You asked: what is penguiflow? 3"
    assert "This prints `You asked: what is penguiflow? 3`" in README


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
