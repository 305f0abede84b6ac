"""`penguiflow-admin` mistakes, run as a user runs them: one line on stderr naming what
was wrong and how to fix it, a non-zero exit status, never a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from penguiflow.state import StoredEvent
from penguiflow.state.sqlite import SQLiteStateStore

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Path(sys.executable).with_name("penguiflow-admin")

FACTORIES = '''
class Minimal:
    """A StateStore with only the three specified methods."""

    async def save_event(self, event):
        pass

    async def load_history(self, trace_id):
        return []

    async def save_remote_binding(self, binding):
        pass


def minimal():
    return Minimal()


def broken():
    raise RuntimeError("the factory could not\\nbuild its store")
'''


def admin(
    *args: str, cwd: Path | None = None, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(
        [str(ADMIN), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (which printed nothing on stdout)."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def factories(tmp_path: Path) -> Path:
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "my_stores.py").write_text(FACTORIES)
    return folder


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"

    async def fill() -> None:
        store = SQLiteStateStore(path)
        await store.save_event(StoredEvent("t1", 1.0, "node_start", "n", "i", {}))
        await store.close()

    asyncio.run(fill())
    return path


# -- module:callable factories -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says", "fix"),
    [
        (
            "no_colon",
            "error: state store spec must be in the form 'package.module:callable'",
            "or a store URL: sqlite:///relative.db",
        ),
        ("no_such_module:make", "error: No module named 'no_such_module'", "PYTHONPATH"),
        ("json:nope", "error: 'json:nope' does not resolve to a callable", "returning a Stat"),
        (
            "json:__doc__",
            "error: 'json:__doc__' resolved to <class 'str'>, not a callable",
            "returning a StateStore",
        ),
        (
            "os:getcwd",
            "error: StateStore factories must implement save_event/load_history/"
            "save_remote_binding ('os:getcwd' returned a str)",
            "return a store such as penguiflow.state.SQLiteStateStore",
        ),
        (
            "builtins:dict",
            "error: StateStore factories must implement save_event/load_history/"
            "save_remote_binding ('builtins:dict' returned a dict)",
            "return a store",
        ),
        (
            "my_stores:broken",
            "error: the factory could not build its store "
            "(RuntimeError, raised by the factory 'my_stores:broken')",
            "check what the factory needs: it is called with no arguments",
        ),
    ],
)
def test_a_bad_factory_is_one_line_naming_the_fix(
    spec: str, says: str, fix: str, factories: Path
) -> None:
    line = one_line(admin("history", "t1", "--state-store", spec, pythonpath=factories))
    assert line.startswith(says)
    assert fix in line


def test_traces_needs_a_store_that_can_list_them(factories: Path) -> None:
    line = one_line(admin("traces", "--state-store", "my_stores:minimal", pythonpath=factories))
    assert line == (
        "error: the store my_stores:minimal cannot list its traces (it has no list_traces); "
        "use a store from penguiflow.state, or implement penguiflow.state.TraceListStore"
    )


def test_an_unknown_trace_in_a_factory_store(factories: Path) -> None:
    done = admin("replay", "nope", "--state-store", "my_stores:minimal", pythonpath=factories)
    line = one_line(done)
    assert line.startswith("error: no events are stored for trace 'nope' in my_stores:minimal; ")


# -- URLs --------------------------------------------------------------------------------

FORMS = (
    "sqlite:///relative.db, sqlite:////absolute/path.db, a SQLite file path, "
    "postgresql://user@host:5432/db, redis://host:6379/0 or package.module:callable"
)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root@localhost/x", "error: unsupported state store URL scheme 'mysql'"),
        ("sqlite://state.db", "error: 'sqlite://state.db' is not a SQLite URL"),
        ("sqlite:", "error: 'sqlite:' is not a SQLite URL"),
        ("sqlite:///", "error: 'sqlite:///' is not a SQLite URL"),
        ("  ", "error: the state store URL is empty"),
    ],
)
def test_a_wrong_url_lists_the_accepted_forms(url: str, says: str) -> None:
    line = one_line(admin("history", "t1", "--state-store", url))
    assert line.startswith(says)
    assert line.endswith(f"; --state-store takes {FORMS}")


def test_sqlite_paths_are_relative_with_three_slashes_and_absolute_with_four(
    sqlite_file: Path,
) -> None:
    folder = sqlite_file.parent
    relative = admin("history", "t1", "--state-store", "sqlite:///state.db", cwd=folder)
    assert relative.returncode == 0, relative.stderr
    assert len(relative.stdout.splitlines()) == 1
    absolute = admin("history", "t1", "--state-store", f"sqlite:///{sqlite_file}", cwd=ROOT)
    assert absolute.returncode == 0, absolute.stderr
    plain = admin("history", "t1", "--state-store", "state.db", cwd=folder)
    assert plain.returncode == 0, plain.stderr

    line = one_line(admin("history", "t1", "--state-store", "sqlite:///state.db", cwd=ROOT))
    assert line == (
        f"error: no SQLite state file at state.db ({ROOT / 'state.db'}); sqlite:///x.db is "
        "relative to the working directory, sqlite:////x.db absolute: check --state-store"
    )


def test_a_file_that_is_not_a_state_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just bytes " * 100)
    line = one_line(admin("history", "t1", "--state-store", str(junk)))
    assert line.startswith(f"error: cannot open SQLite store {junk}: file is not a database")
    assert f"check that {junk} is a penguiflow SQLite state file" in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://127.0.0.1:1/test", "cannot connect to PostgreSQL"),
        ("postgresql://postgres:s3cret@127.0.0.1:1/test", "cannot connect to PostgreSQL"),
        ("redis://127.0.0.1:1", "cannot use Redis"),
    ],
)
@pytest.mark.parametrize("command", ["history", "traces"])
def test_an_unreachable_server_is_found_at_open(command: str, url: str, says: str) -> None:
    args = [command, "t1"] if command == "history" else [command]
    line = one_line(admin(*args, "--state-store", url))
    assert line.startswith(f"error: {says}")
    shown = url.replace(":s3cret@", ":***@")
    assert f"(store {shown})" in line
    assert "s3cret" not in line
    assert line.endswith("check that the server is running and that the URL names it")


def test_a_server_that_refuses_the_database_says_why() -> None:
    from tests.state.conftest import POSTGRES_DSN

    url = POSTGRES_DSN.rsplit("/", 1)[0] + "/pf_no_such_database"
    line = one_line(admin("history", "t1", "--state-store", url))
    assert line.startswith("error: cannot connect to PostgreSQL")
    assert f"(store {url})" in line


# -- missing extras ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("asyncpg", "postgresql://127.0.0.1:1/test", "postgres"),
        ("redis", "redis://127.0.0.1:1/0", "redis"),
    ],
)
@pytest.mark.parametrize("command", ["history", "traces"])
def test_a_missing_extra_names_what_to_install(
    command: str, module: str, url: str, extra: str, tmp_path: Path
) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    args = [command, "t1"] if command == "history" else [command]
    line = one_line(admin(*args, "--state-store", url, pythonpath=hide))
    assert f"pip install 'penguiflow[{extra}]'" in line


def test_the_import_hiding_really_hides_the_driver(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['asyncpg'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", "import asyncpg"], capture_output=True, text=True, env=env
    )
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr


# -- traces --------------------------------------------------------------------------------


def test_history_of_an_unknown_trace_exits_non_zero(sqlite_file: Path) -> None:
    line = one_line(admin("history", "nope", "--state-store", str(sqlite_file)))
    assert line == (
        f"error: no events are stored for trace 'nope' in {sqlite_file}; check the trace id "
        f"('penguiflow-admin traces --state-store {sqlite_file}' lists the stored traces)"
    )
    done = admin("history", "t1", "--state-store", str(sqlite_file))
    assert done.returncode == 0
    assert done.stderr == ""
