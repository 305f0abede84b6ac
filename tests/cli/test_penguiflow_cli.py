"""The `penguiflow` command line, used the way a person uses it.

Most tests call `main([...])` in process and read what it printed; a few run the real
entry points (`python -m penguiflow` and the `penguiflow` script) in a subprocess.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.cli import main
from penguiflow.spans import Span
from penguiflow.state import StoredEvent
from penguiflow.state.sqlite import SQLiteStateStore

ROOT = Path(__file__).resolve().parents[2]
AGENTS = "tests.cli.sample_agents"
PLANNER = f"{AGENTS}:build_planner"
SCRIPT = Path(sys.executable).with_name("penguiflow")
SUBCOMMANDS = ["run", "resume", "trace", "ui", "serve", "worker", "viz", "history", "replay"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory whose store is `PENGUIFLOW_STORE` (the sample
    planner keeps its pauses there too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    path = tmp_path / "runs" / "state.db"
    monkeypatch.setenv("PENGUIFLOW_STORE", str(path))
    return path


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and no `PENGUIFLOW_STORE`: the default store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delenv("PENGUIFLOW_STORE", raising=False)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shell(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `penguiflow` script, or `python -m penguiflow` when argv starts with -m."""
    command = [sys.executable, *argv] if argv[0] == "-m" else [str(SCRIPT), *argv]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment, timeout=120
    )


def run_id_of(out: str) -> str:
    match = re.search(r"run ([0-9a-f]{32}): penguiflow trace view \1", out)
    assert match, out
    return match.group(1)


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("penguiflow: ")
    assert "; " in lines[0]  # what was wrong; how to fix it
    return lines[0]


# -- entry points ----------------------------------------------------------------------


def test_python_m_penguiflow_help_lists_the_subcommands() -> None:
    done = shell("-m", "penguiflow", "--help")
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^    (\w+) ", done.stdout, flags=re.MULTILINE)
    assert listed == SUBCOMMANDS


def test_the_penguiflow_script_runs_and_records(store: Path) -> None:
    done = shell("run", PLANNER, "please add", env={"PENGUIFLOW_STORE": str(store)})
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    listed = shell("-m", "penguiflow", "trace", "list", "--json", "--store", str(store))
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["run_id"] for line in listed.stdout.splitlines()] == [run_id]


# -- run, then look at the recorded run --------------------------------------------------


def test_run_shows_each_step_live_then_the_answer_usage_and_run_id(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "run", PLANNER, "please add")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "step 0"
    assert re.fullmatch(r"  llm llm  tokens not reported  -  \d+ ms  ok", lines[1])
    assert re.fullmatch(r"  tool add  \d+ ms  ok", lines[2])
    assert lines[3] == "step 1"
    assert "answer (answer_complete)" in out
    assert '"total\\": 5' in out
    assert re.search(r"usage: 2 LLM calls, 0\+0 = 0 tokens, -, 1 tool calls, \d+ ms", out)
    run_id_of(out)
    assert store.exists()


def test_run_prints_the_answer_while_the_llm_writes_it(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "run", PLANNER, "please add")
    assert code == 0
    lines = out.splitlines()
    # Streamed during step 1's LLM call: before that call's line is printed.
    step = lines.index("step 1")
    assert lines[step + 1] == '  answer {"observation": {"total": 5}}'
    assert lines[step + 2].startswith("  llm ")


def test_a_failing_tool_is_shown_with_its_error(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "run", PLANNER, "broken")
    assert code == 0
    error = "ValueError: tool 'broken' raised ValueError: the tool is broken"
    assert re.search(rf"  tool broken  \d+ ms  error  {error}", out), out


def test_trace_list_show_export_and_view_the_recorded_run(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = run_id_of(cli(capsys, "run", PLANNER, "please add")[1])

    code, out, _ = cli(capsys, "trace", "list", "--json")
    assert code == 0
    (summary,) = [json.loads(line) for line in out.splitlines()]
    assert (summary["run_id"], summary["status"], summary["kind"]) == (run_id, "ok", "run")
    assert summary["attributes"]["query"] == "please add"

    code, out, _ = cli(capsys, "trace", "list")
    header, row = out.splitlines()
    assert header.split() == [
        "id",
        "kind",
        "name",
        "status",
        "start",
        "duration",
        "llm",
        "calls",
        "tokens",
        "cost",
        "spans",
    ]
    assert row.split()[:4] == [run_id[:8], "run", "ReactPlanner", "ok"]
    assert row.split()[-4] == "2"  # llm calls

    code, out, _ = cli(capsys, "trace", "show", run_id[:6])
    assert code == 0
    tree = out.splitlines()
    assert tree[0].startswith(f"run {run_id}")
    assert re.search(r"run ReactPlanner  \d+ ms  ok  query=please add  reason=answer_complete", out)
    assert re.search(r"step 0  \d+ ms  ok  action=tool  thought=add the numbers", out)
    assert re.search(r"tool add  \d+ ms  ok  call_id=", out)

    code, out, _ = cli(capsys, "trace", "export", run_id)
    spans = [Span.from_dict(json.loads(line)) for line in out.splitlines()]
    assert {span.run_id for span in spans} == {run_id}
    assert sorted({span.kind for span in spans}) == ["llm", "run", "step", "tool"]
    tool = next(span for span in spans if span.kind == "tool")
    assert tool.content["args"] == {"a": 2, "b": 3}

    otlp_file = tmp_path / "out" / "trace.json"
    code, out, _ = cli(
        capsys, "trace", "export", run_id[:10], "--format", "otlp", "-o", str(otlp_file)
    )
    assert (code, out) == (0, f"wrote {len(spans)} spans to {otlp_file}\n")
    document = json.loads(otlp_file.read_text())
    otlp_spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert {span["traceId"] for span in otlp_spans} == {run_id}
    assert len(otlp_spans) == len(spans)

    code, out, _ = cli(capsys, "trace", "view", run_id[:8])
    page = Path(out.strip())
    assert page == tmp_path / ".penguiflow" / "views" / f"{run_id}.html"
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert run_id in html
    chosen = tmp_path / "page.html"
    assert cli(capsys, "trace", "view", run_id, "-o", str(chosen))[1] == f"{chosen}\n"
    assert chosen.read_text() == html


def test_trace_list_and_show_give_the_token_totals(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = run_id_of(cli(capsys, "run", PLANNER, "please add")[1])
    row = cli(capsys, "trace", "list")[1].splitlines()[1]
    assert row.split()[-4:-2] == ["2", "0"]  # llm calls, tokens (the script reports 0)
    assert "total_tokens=0" in cli(capsys, "trace", "show", run_id)[1]


def test_trace_view_open_hands_the_page_to_the_browser(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    run_id = run_id_of(cli(capsys, "run", PLANNER, "please add")[1])
    code, out, _ = cli(capsys, "trace", "view", run_id, "--open")
    assert code == 0
    assert opened == [f"file://{out.strip()}"]


def test_run_json_prints_one_object_and_no_content_records_none(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "run", PLANNER, "please add", "--json", "--no-content")
    assert code == 0
    result = json.loads(out)
    assert {k: v for k, v in result.items() if k not in ("run_id", "usage")} == {
        "status": "finished",
        "reason": "answer_complete",
        "answer": {"answer": '{"observation": {"total": 5}}'},
        "dropped_spans": 0,
    }
    assert result["usage"]["llm_calls"] == 2
    spans = [
        json.loads(line)
        for line in cli(capsys, "trace", "export", result["run_id"])[1].splitlines()
    ]
    assert [span["content"] for span in spans] == [{}] * len(spans)


def test_trace_list_filters_and_pages(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads(cli(capsys, "run", PLANNER, "please add", "--json")[1])["run_id"]
    second = json.loads(cli(capsys, "run", PLANNER, "please approve", "--json")[1])["run_id"]

    def listed(*options: str) -> list[str]:
        out = cli(capsys, "trace", "list", "--json", *options)[1]
        return [json.loads(line)["run_id"] for line in out.splitlines()]

    assert listed() == [second, first]
    assert listed("--status", "paused") == [second]
    # Not a bare "add": a run id is hex, and one holding "add" would match too.
    assert listed("--search", "Please ADD") == [first]
    assert listed("--limit", "1") == [second]
    assert listed("--offset", "1") == [first]
    assert cli(capsys, "trace", "list", "--status", "error")[1] == "no runs match\n"


def test_run_ids_may_be_shortened_to_a_unique_prefix(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> None:
        db = SQLiteStateStore(store)
        for run_id in ("abc1" + "0" * 28, "abc2" + "0" * 28):
            root = Span(
                run_id=run_id,
                span_id=run_id,
                parent_id=None,
                kind="trace",
                name="flow",
                start=1.0,
                end=2.0,
                status="ok",
            )
            await db.save_spans([root])
        await db.close()

    store.parent.mkdir()
    asyncio.run(fill())
    code, out, _ = cli(capsys, "trace", "show", "ABC2")
    assert code == 0
    assert out.splitlines()[0].startswith("run abc2")
    code, _, err = cli(capsys, "trace", "show", "abc")
    assert code == 2
    assert one_line_error(err) == (
        "penguiflow: run prefix 'abc' is ambiguous: 2 runs match (abc200000000, abc100000000);"
        " give more characters of the run id"
    )
    code, _, err = cli(capsys, "trace", "export", "abd")
    assert code == 1
    assert one_line_error(err).startswith("penguiflow: no recorded run matches 'abd'; ")


def test_the_default_store_is_made_on_first_run(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "trace", "list")
    assert code == 0
    assert out.startswith("no runs recorded yet (store .penguiflow/state.db does not exist)")
    assert not (bare / ".penguiflow").exists()  # reading creates nothing
    run_id = run_id_of(cli(capsys, "run", PLANNER, "please add")[1])
    assert (bare / ".penguiflow" / "state.db").exists()
    assert run_id[:8] in cli(capsys, "trace", "list")[1]


# -- pause and resume ---------------------------------------------------------------------


def test_a_paused_run_is_resumed_in_another_process_as_the_same_run(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "run", PLANNER, "please approve")
    assert code == 0
    token = re.search(r"resume token: ([0-9a-f]{32})", out)
    assert token, out
    assert (
        f'continue with: penguiflow resume {token.group(1)} --planner {PLANNER} --input "..."'
    ) in out
    assert "paused (approval_required)" in out
    run_id = run_id_of(out)

    env = {"PENGUIFLOW_STORE": str(store)}
    done = shell(
        "resume", token.group(1), "--planner", PLANNER, "--input", "ship it", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert (resumed["run_id"], resumed["status"], resumed["answer"]) == (
        run_id,
        "finished",
        {"answer": "ship it"},
    )
    tree = cli(capsys, "trace", "show", run_id)[1]
    assert re.search(r"run ReactPlanner  [\d.]+ m?s  ok  query=please approve", tree)
    assert re.search(r"pause  \d+ ms  paused  reason=approval_required", tree)
    assert re.search(r"resume  \d+ ms  ok", tree)

    again = shell("-m", "penguiflow", "resume", token.group(1), "--planner", PLANNER, env=env)
    assert again.returncode == 1
    assert one_line_error(again.stderr).startswith(
        f"penguiflow: no paused run for resume token {token.group(1)[:12]}..."
    )


def test_resume_shows_the_same_live_display(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paused = json.loads(cli(capsys, "run", PLANNER, "please approve", "--json")[1])
    code, out, _ = cli(
        capsys, "resume", paused["resume_token"], "--planner", PLANNER, "--input", "yes"
    )
    assert code == 0
    assert out.splitlines()[:2] == ["resumed", "step 1"]
    assert "answer (answer_complete)" in out
    assert run_id_of(out) == paused["run_id"]


# -- the other commands ---------------------------------------------------------------------


def test_viz_prints_mermaid_or_writes_dot(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "viz", f"{AGENTS}:build_flow")
    assert code == 0
    assert out.startswith("graph TD\n")
    assert "fetch --> answer" in out
    target = tmp_path / "flow.dot"
    assert cli(capsys, "viz", f"{AGENTS}:build_flow", "--format", "dot", "-o", str(target))[0] == 0
    assert target.read_text().startswith("digraph")


def test_history_and_replay_read_flow_events_like_penguiflow_admin(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> None:
        db = SQLiteStateStore(store)
        for n in range(3):
            await db.save_event(
                StoredEvent("t1", 1_700_000_000.0 + n, "node_start", "fetch", "id1", {"n": n})
            )
        await db.close()

    store.parent.mkdir()
    asyncio.run(fill())
    code, out, _ = cli(capsys, "history", "t1")
    assert code == 0
    assert [json.loads(line)["n"] for line in out.splitlines()] == [0, 1, 2]
    code, out, _ = cli(capsys, "replay", "t1", "--tail", "1", "--format", "text")
    assert out.splitlines()[0] == "# replay trace=t1 events=1"
    assert out.splitlines()[1].startswith("2023-11-14 22:13:22Z  node_start")
    admin = Path(sys.executable).with_name("penguiflow-admin")
    done = subprocess.run(
        [str(admin), "history", "t1", "--state-store", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    for command in ("history", "replay"):
        code, out, err = cli(capsys, command, "nope")
        assert (code, out) == (1, "")
        assert err == "penguiflow: no events are stored for trace 'nope'; check the trace id\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def fetch(url: str, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_ui_and_serve_answer_http_on_loopback(
    store: Path, capsys: pytest.CaptureFixture[str], background: list[subprocess.Popen[str]]
) -> None:
    run_id = run_id_of(cli(capsys, "run", PLANNER, "please add")[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PENGUIFLOW_STORE": str(store)}
    ui_port, app_port = free_port(), free_port()
    ui = subprocess.Popen(
        [str(SCRIPT), "ui", "--port", str(ui_port)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    background.append(ui)
    app = subprocess.Popen(
        [str(SCRIPT), "serve", f"{AGENTS}:hello_app", "--port", str(app_port)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    background.append(app)
    runs = json.loads(fetch(f"http://127.0.0.1:{ui_port}/api/runs", ui))
    assert run_id in json.dumps(runs)
    assert fetch(f"http://127.0.0.1:{app_port}/", app) == "hello"


# -- mistakes: one line, no traceback ---------------------------------------------------------

MISTAKES = [
    (["run", "no_colon", "q"], 2, "penguiflow: 'no_colon' is not of the form MODULE:ATTR; "),
    (
        ["run", "no_such_module_xyz:build", "q"],
        2,
        "penguiflow: no module named 'no_such_module_xyz'; ",
    ),
    (["run", f"{AGENTS}:nope", "q"], 2, f"penguiflow: module '{AGENTS}' has no attribute 'nope'"),
    (
        ["run", "os:getcwd", "q"],
        2,
        "penguiflow: os:getcwd is a builtin_function_or_method, "
        "not a ReactPlanner or a factory returning one; ",
    ),
    (["run", f"{AGENTS}:NOT_A_PLANNER", "q"], 2, f"penguiflow: {AGENTS}:NOT_A_PLANNER is a int"),
    (["run", f"{AGENTS}:needs_arguments", "q"], 2, "is a function, not a ReactPlanner"),
    (["run", PLANNER, " "], 2, "penguiflow: the query is empty; "),
    (["viz", PLANNER], 2, f"penguiflow: {PLANNER} returned a ReactPlanner, not a PenguiFlow"),
    (["serve", "os:sep"], 2, "penguiflow: os:sep is a str, not an ASGI app"),
    (["resume", "0" * 32, "--planner", PLANNER], 1, "penguiflow: no paused run for resume token"),
    (
        ["trace", "list", "--store", "mysql://root@x/db"],
        2,
        "penguiflow: unsupported state store URL scheme 'mysql'",
    ),
    (
        ["trace", "list", "--store", "sqlite://two-slashes.db"],
        2,
        "penguiflow: 'sqlite://two-slashes.db' is not a SQLite URL",
    ),
    (
        ["trace", "show", "abc", "--store", "missing.db"],
        1,
        "penguiflow: no SQLite state file at missing.db; ",
    ),
    (
        ["trace", "list", "--store", "postgresql://nobody:secret@127.0.0.1:1/x"],
        1,
        "penguiflow: cannot connect to PostgreSQL: ConnectionRefusedError "
        "(store postgresql://nobody:***@127.0.0.1:1/x); ",
    ),
    (
        ["run", PLANNER, "q", "--store", "redis://127.0.0.1:1/0"],
        1,
        "penguiflow: cannot use Redis: ConnectionError (store redis://127.0.0.1:1/0); ",
    ),
    (["trace", "list", "--limit", "-1"], 2, "penguiflow: argument --limit: -1 is negative; "),
    (["trace", "nope"], 2, "penguiflow: argument COMMAND: invalid choice: 'nope'"),
    (["trace", "show"], 2, "penguiflow: the following arguments are required: RUN; "),
    (
        ["worker", "--flow", "no_such_module_xyz:f", "--redis", "redis://127.0.0.1:1/0"],
        2,
        "penguiflow: no module named 'no_such_module_xyz'",
    ),
    (
        ["worker", "--flow", "os:sep", "--redis", "redis://127.0.0.1:1/0"],
        2,
        "penguiflow: os:sep is a str, not a function building a flow",
    ),
]


@pytest.mark.parametrize(("argv", "code", "start"), MISTAKES)
def test_each_mistake_is_one_line_and_a_nonzero_exit(
    argv: list[str], code: int, start: str, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out, err = cli(capsys, *argv)
    assert (got, out) == (code, ""), err
    line = one_line_error(err)
    assert start in line
    assert "secret" not in line


def test_reading_the_default_store_before_any_run_says_so(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["trace", "show", "abc"], ["trace", "export", "abc"], ["history", "t1"]):
        code, _, err = cli(capsys, *argv)
        assert code == 1
        assert "recorded yet (store .penguiflow/state.db does not exist)" in one_line_error(err)


def test_an_unreachable_bus_is_named(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(
        capsys,
        "worker",
        "--flow",
        f"{AGENTS}:build_flow",
        "--redis",
        "redis://127.0.0.1:1/0",
        "--ingress",
        "in",
        "--egress",
        "out",
    )
    assert code == 1
    last = err.splitlines()[-1]  # the worker's own start and stop lines come first
    assert last.startswith("penguiflow: cannot reach the bus at redis://127.0.0.1:1/0: ")
    assert "Traceback" not in err


def test_a_missing_extra_names_what_to_install(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without(*names: str) -> Any:
        return lambda name, *rest: None if name in names else real(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", without("asyncpg"))
    code, _, err = cli(capsys, "trace", "list", "--store", "postgresql://127.0.0.1/x")
    assert code == 1
    assert one_line_error(err) == (
        "penguiflow: the store postgresql://127.0.0.1/x needs the 'postgres' extra; "
        "pip install 'penguiflow[postgres]'"
    )
    monkeypatch.setattr(importlib.util, "find_spec", without("rich"))
    assert cli(capsys, "trace", "list") == (
        2,
        "",
        "penguiflow: the command line needs rich: pip install 'penguiflow[cli]'\n",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "os:getcwd", "q"],
        ["trace", "show", "nothing", "--store", "postgresql://127.0.0.1:1/x"],
        ["run", PLANNER],
    ],
)
def test_mistakes_in_a_real_process_print_no_traceback(argv: list[str], store: Path) -> None:
    done = shell(*argv, env={"PENGUIFLOW_STORE": str(store)})
    assert done.returncode == 2 if argv[0] == "run" else 1
    one_line_error(done.stderr)
