"""`penguiflow serve --mcp`: each mistake is one line naming the fix, and on stdio
nothing but the protocol goes to stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from penguiflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
AGENTS = "tests.mcp.serve_agents"
WHAT = "a ReactPlanner or a PenguiFlow"


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.mark.parametrize(
    ("argv", "code", "line"),
    [
        (
            ["serve"],
            2,
            "penguiflow: serve needs MODULE:ATTR (an A2A app) or --mcp MODULE:FACTORY "
            "(an agent or flow); e.g. penguiflow serve --mcp my_agents:build_planner",
        ),
        (
            ["serve", "tests.cli.sample_agents:hello_app", "--mcp", f"{AGENTS}:build_planner"],
            2,
            "penguiflow: serve got both an A2A app (tests.cli.sample_agents:hello_app) and "
            f"--mcp {AGENTS}:build_planner; serve one of them per command",
        ),
        (
            ["serve", "tests.cli.sample_agents:hello_app", "--transport", "http"],
            2,
            "penguiflow: --transport, --name and --tool are options of --mcp; run penguiflow "
            "serve --mcp tests.cli.sample_agents:hello_app ... (or drop them to serve an A2A app)",
        ),
        (
            ["serve", "--mcp", f"{AGENTS}:build_planner", "--port", "9000"],
            2,
            "penguiflow: --host and --port are options of --transport http (stdio serves on "
            f"stdin/stdout); run penguiflow serve --mcp {AGENTS}:build_planner "
            "--transport http ...",
        ),
        (
            ["serve", "--mcp", f"{AGENTS}:not_servable"],
            2,
            f"penguiflow: {AGENTS}:not_servable returned a int, not {WHAT}; "
            f"make not_servable return {WHAT}",
        ),
        (
            ["serve", "--mcp", "os:sep"],
            2,
            f"penguiflow: os:sep is a str, not {WHAT} or a factory returning one; "
            f"point --mcp at {WHAT} or a zero-argument function building one",
        ),
        (
            ["serve", "--mcp", f"{AGENTS}:build_two_entry_flow"],
            2,
            f"penguiflow: cannot serve {AGENTS}:build_two_entry_flow: a flow served over MCP "
            "needs one entry node (one node without parents), this one has 2: "
            "['triage', 'respond']; fix that and run again",
        ),
        (
            ["serve", "--mcp", f"{AGENTS}:build_planner", "--tool", "ask me"],
            2,
            f"penguiflow: cannot serve {AGENTS}:build_planner: tool='ask me' is not a tool name "
            "MCP allows: use 1 to 128 letters, digits, '_', '-' or '.'; fix that and run again",
        ),
        (
            ["serve", "--mcp", "no_such_module:build"],
            2,
            "penguiflow: no module named 'no_such_module'; check the name before the colon and "
            "run from the directory that holds it (or add that directory to PYTHONPATH)",
        ),
        (
            ["serve", "--mcp", AGENTS],
            2,
            f"penguiflow: '{AGENTS}' is not of the form MODULE:ATTR; "
            "write it as package.module:name, e.g. my_agents:build_planner",
        ),
        (
            ["serve", "--mcp", f"{AGENTS}:build_planner", "--transport", "sse"],
            2,
            "penguiflow: argument --transport: invalid choice: 'sse' (choose from 'stdio', "
            "'http'); see 'penguiflow serve --help'",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_fix(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, line: str
) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert captured.out == ""


def test_without_the_mcp_extra_it_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if not installed
    assert main(["serve", "--mcp", f"{AGENTS}:build_planner"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "penguiflow: serving over MCP needs the 'mcp' extra; pip install 'penguiflow[mcp]'"
    ]


def test_on_stdio_only_the_protocol_goes_to_stdout() -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    # The client closes stdin at once: the server says where it serves (on stderr)
    # and ends without a byte on stdout, though the factory printed to it.
    done = subprocess.run(
        [sys.executable, "-m", "penguiflow", "serve", "--mcp", f"{AGENTS}:build_chatty_planner"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.splitlines() == [
        "building the planner",
        f"serving {AGENTS}:build_chatty_planner over MCP on stdio",
    ]
