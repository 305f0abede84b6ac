"""Run the A2A conformance kit (a2a-tck) against our JSON-RPC server: `make tck`.

The kit stays where it is (`$A2A_TCK_DIR`, else `../shared/tools/a2a-tck-0.3` beside
the repo, else `/work/shared/tools/a2a-tck-0.3`); its dependencies go into
`.venv-tck/`, and it runs from `.venv-tck/kit/`, a tree of links to it, so that
nothing is written into the kit. Each category's pytest JSON report and log go
to `.venv-tck/reports/<sut>/`. Failures not listed in `expected_failures.txt`
fail the run (exit 1); a missing kit is exit 2.

`--reference` runs the kit's own reference agent (python-sut/tck_core_agent, on
a2a-sdk from PyPI, in a throwaway venv under /tmp) instead, against
`reference_failures.txt`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / ".venv-tck"
KIT_VIEW = VENV / "kit"
REPORTS = VENV / "reports"
KIT_DEFAULTS = (REPO.parent / "shared/tools/a2a-tck-0.3", Path("/work/shared/tools/a2a-tck-0.3"))
REFERENCE_VENV = Path("/tmp/penguiflow-tck-reference-venv")
REFERENCE_DEPS = ("a2a-sdk[http-server]>=0.3,<0.4", "uvicorn>=0.34.2")
REFERENCE_PORT = 9999  # its agent card names http://localhost:9999/
CATEGORIES = ("mandatory", "capabilities")
READY_TIMEOUT_S = 60.0
CATEGORY_TIMEOUT_S = 900.0
MESSAGE_CHARS = 240  # a failure's message is shown on one line, cut to this

# Starts the reference agent on loopback (its __main__ binds 0.0.0.0). It reads
# camelCase attributes (`task.contextId`), which a2a-sdk 0.3 models no longer have
# (their fields are snake_case with camelCase aliases): the launcher maps them back.
REFERENCE_LAUNCHER = """
import re, runpy, sys, uvicorn
from a2a._base import A2ABaseModel
getattr_ = A2ABaseModel.__getattr__
def camel_getattr(self, name):
    try:
        return getattr_(self, name)
    except AttributeError:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        if snake == name or snake not in type(self).model_fields:
            raise
        return getattr(self, snake)
A2ABaseModel.__getattr__ = camel_getattr
port, run = int(sys.argv[2]), uvicorn.run
uvicorn.run = lambda app, **_: run(app, host="127.0.0.1", port=port, log_level="warning")
runpy.run_path(sys.argv[1], run_name="__main__")
"""


class UsageError(Exception):
    """A problem the user can fix; reported as one line."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    """One category's results from the kit's pytest JSON report."""

    category: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # test id -> kit's message
    ran: set[str] = field(default_factory=set)


def find_kit() -> Path:
    """The kit's directory, or a `UsageError` (exit 2) naming where it was looked for."""
    configured = os.environ.get("A2A_TCK_DIR")
    candidates = [Path(configured)] if configured else list(KIT_DEFAULTS)
    for kit in candidates:
        if (kit / "run_tck.py").is_file():
            return kit.resolve()
    where = " or ".join(str(kit) for kit in candidates)
    raise UsageError(f"a2a-tck not found at {where} (set A2A_TCK_DIR)", code=2)


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise UsageError(f"pip install failed: {' '.join(tail)}")


def ensure_venv(venv: Path, requirements: list[str]) -> Path:
    """`venv`'s python with `requirements` installed (redone when they change)."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"tck: installing {len(requirements)} requirements into {venv}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    _pip(python, *requirements)
    stamp.write_text(digest)
    return python


def kit_requirements(kit: Path) -> list[str]:
    """The kit's requirements.txt plus its pyproject dependencies, sorted, no duplicates."""
    lines = (kit / "requirements.txt").read_text().splitlines()
    reqs = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    project = tomllib.loads((kit / "pyproject.toml").read_text()).get("project", {})
    reqs.update(project.get("dependencies", []))
    return sorted(reqs)


def link_kit(kit: Path) -> Path:
    """`KIT_VIEW`: links to the kit's top-level entries; the kit writes `reports/` here."""
    if KIT_VIEW.exists():
        shutil.rmtree(KIT_VIEW)
    KIT_VIEW.mkdir(parents=True)
    for entry in kit.iterdir():
        if entry.name != "reports":
            (KIT_VIEW / entry.name).symlink_to(entry)
    return KIT_VIEW


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    """Run the server `command` until the block ends, once its agent card answers."""
    card = url.rstrip("/") + "/.well-known/agent-card.json"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if server.poll() is not None:
                tail = log.read_text().strip().splitlines()[-1:]
                raise UsageError(f"server exited ({server.returncode}): {' '.join(tail)}")
            try:
                with urllib.request.urlopen(card, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise UsageError(f"server gave no agent card at {card} in {READY_TIMEOUT_S:.0f}s")
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_category(python: Path, view: Path, url: str, category: str, reports: Path) -> Outcome:
    """Run one category with the kit's `run_tck.py`; its log goes next to its report."""
    report = reports / f"{category}.json"
    report.unlink(missing_ok=True)
    env = dict(os.environ)
    # run_tck.py writes a JSON report only for `--category all`: ask pytest directly.
    extra = f"--json-report --json-report-file={report} -p no:cacheprovider"
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {extra}".strip()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [str(python), "run_tck.py", "--sut-url", url, "--category", category]
    with (reports / f"{category}.log").open("w") as log:
        try:
            subprocess.run(
                command, cwd=view, env=env, stdout=log, stderr=log, timeout=CATEGORY_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"{category}: kit still running after {CATEGORY_TIMEOUT_S:.0f}s"
            ) from None
    if not report.exists():
        raise UsageError(f"{category}: the kit wrote no report; see {reports / category}.log")
    return read_report(category, json.loads(report.read_text()))


def _message(test: dict[str, object]) -> str:
    for stage in ("setup", "call", "teardown"):
        info = test.get(stage)
        if isinstance(info, dict) and info.get("outcome") == "failed":
            crash = info.get("crash")
            if isinstance(crash, dict) and crash.get("message"):
                return str(crash["message"])
            lines = str(info.get("longrepr", "")).strip().splitlines()
            return lines[-1] if lines else "failed"
    return "failed"


def read_report(category: str, data: dict[str, object]) -> Outcome:
    """Counts and failures (a failed or erroring test) from a pytest-json-report."""
    outcome = Outcome(category)
    tests = data.get("tests", [])
    assert isinstance(tests, list)
    for test in tests:
        state = str(test.get("outcome"))
        outcome.ran.add(str(test["nodeid"]))
        outcome.counts[state] = outcome.counts.get(state, 0) + 1
        if state in ("failed", "error"):
            message = " ".join(_message(test).split())
            outcome.failures[str(test["nodeid"])] = message[:MESSAGE_CHARS] or state
    return outcome


def read_expected(path: Path) -> dict[str, str]:
    """Test id -> reason, from lines `TEST_ID  # reason` (blank and `#` lines skipped)."""
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    for line in path.read_text().splitlines():
        test_id, _, reason = line.partition("#")
        if test_id.strip():
            expected[test_id.strip()] = reason.strip()
    return expected


def summarise(outcomes: list[Outcome], expected: dict[str, str], listed_in: Path) -> set[str]:
    """Print each category's counts and failures; return the unexpected failures."""
    for outcome in outcomes:
        counts = outcome.counts
        extra = "".join(
            f", {counts[key]} {key}" for key in ("error", "xfailed", "xpassed") if key in counts
        )
        print(
            f"tck {outcome.category}: {counts.get('passed', 0)} passed, "
            f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped{extra}"
        )
        for test_id, message in outcome.failures.items():
            mark = "expected" if test_id in expected else "UNEXPECTED"
            print(f"  {mark}: {test_id}: {message}")
    ran = {test_id for outcome in outcomes for test_id in outcome.ran}
    failures = {test_id for outcome in outcomes for test_id in outcome.failures}
    for test_id in sorted((expected.keys() & ran) - failures):
        print(f"tck: listed in {listed_in.name} but did not fail: {test_id}")
    unexpected = failures - expected.keys()
    for test_id in sorted(unexpected):
        print(f"tck: unexpected failure: {test_id}")
    return unexpected


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="tools/tck/run.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reference", action="store_true", help="test the kit's reference agent instead"
    )
    parser.add_argument(
        "--category", action="append", choices=CATEGORIES, help="repeatable; default: both"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    kit = find_kit()
    python = ensure_venv(VENV, kit_requirements(kit))
    view = link_kit(kit)
    env = dict(os.environ)
    if args.reference:
        sut = "reference"
        if port_in_use(REFERENCE_PORT):
            raise UsageError(f"port {REFERENCE_PORT} is in use; the reference agent needs it")
        port = REFERENCE_PORT
        server_python = ensure_venv(REFERENCE_VENV, list(REFERENCE_DEPS))
        agent_dir = kit / "python-sut" / "tck_core_agent"
        command = [str(server_python), "-c", REFERENCE_LAUNCHER, str(agent_dir), str(port)]
        expected_file = HERE / "reference_failures.txt"
    else:
        sut = "penguiflow"
        port = free_port()
        command = [sys.executable, "-m", "penguiflow_a2a.serve", "agent:build_app"]
        command += ["--port", str(port)]
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(HERE)])
        env["PENGUIFLOW_TCK_URL"] = f"http://127.0.0.1:{port}"
        expected_file = HERE / "expected_failures.txt"
    url = f"http://127.0.0.1:{port}"
    reports = REPORTS / sut
    reports.mkdir(parents=True, exist_ok=True)
    outcomes = []
    with serving(command, env, url, reports / "server.log"):
        for category in args.category or CATEGORIES:
            print(f"tck: {sut} server at {url}: running {category} ...", flush=True)
            outcomes.append(run_category(python, view, url, category, reports))
    unexpected = summarise(outcomes, read_expected(expected_file), expected_file)
    print(f"tck: reports in {reports.relative_to(REPO)}/ ({time.monotonic() - started:.0f}s)")
    failed = sum(len(outcome.failures) for outcome in outcomes)
    passed, skipped = (sum(o.counts.get(key, 0) for o in outcomes) for key in ("passed", "skipped"))
    print(
        f"tck: {passed} passed, {failed} failed ({failed - len(unexpected)} as listed in "
        f"{expected_file.name}, {len(unexpected)} unexpected), {skipped} skipped"
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as error:
        print(f"tck: {error}", file=sys.stderr)
        sys.exit(error.code)
    except KeyboardInterrupt:
        sys.exit(130)
