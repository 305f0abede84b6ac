"""`python -m penguiflow_a2a.serve`: one line and exit status 2 for a mistake, and the
URL it serves on once it listens."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, free_port

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "penguiflow_a2a.serve", *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module:app", "no module named 'no_such_module' (is it on PYTHONPATH?)"),
        ("os:no_such_name", "module 'os' has no attribute 'no_such_name'"),
        ("os:getcwd", "'os:getcwd' returned a str, not an ASGI app"),
        ("os:sep", "'os:sep' is a str, not an ASGI app"),
        ("just-a-name", "app must be given as 'package.module:attribute'"),
    ],
)
def test_a_wrong_app_is_one_line_and_exit_status_2(spec: str, says: str) -> None:
    done = serve(spec, "--port", str(free_port()))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("penguiflow_a2a.serve: ")
    assert says in line
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--flow", "os:getcwd"], "unrecognized arguments: --flow"),
        (["--flow", "tests.a2a.apps:echo"], "unrecognized arguments: --flow"),
        ([], "the following arguments are required: app"),
        (["os:getcwd", "--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
    ],
)
def test_a_wrong_command_line_is_one_line_and_exit_status_2(args: list[str], says: str) -> None:
    done = serve(*args)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"penguiflow_a2a.serve: {says}; ")
    assert "python -m penguiflow_a2a.serve MODULE:ATTR" in line
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_server_says_where_it_listens_once_it_does() -> None:
    port = free_port()
    command = [sys.executable, "-m", "penguiflow_a2a.serve", "tests.a2a.apps:echo"]
    with subprocess.Popen(
        [*command, "--port", str(port)], env=ENV, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert line == f"penguiflow_a2a.serve: serving on http://127.0.0.1:{port}\n"
