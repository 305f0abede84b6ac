"""penguiflow-admin: read trace history from any store, as JSON lines or text."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from penguiflow.admin import load_state_store, main, render_events
from penguiflow.state import StoredEvent
from penguiflow.state.sqlite import SQLiteStateStore

ROOT = Path(__file__).resolve().parents[2]


def event(n: int, **payload: Any) -> StoredEvent:
    return StoredEvent("t1", 1_700_000_000.0 + n, "node_start", "fetch", "id1", payload)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"

    async def fill() -> None:
        store = SQLiteStateStore(path)
        for n in range(3):
            await store.save_event(event(n, attempt=n, latency_ms=1.5))
        await store.close()

    asyncio.run(fill())
    return path


def test_render_events_is_flat_sorted_json_with_payload_winning() -> None:
    lines = render_events([event(0, node_name="override", extra={1, 2})])
    data = json.loads(lines[0])
    assert list(data) == sorted(data)
    assert data["node_name"] == "override"
    assert data["event"] == "node_start"
    assert data["extra"] in ("{1, 2}", "{2, 1}")  # written with str()
    assert render_events([event(0), event(1)], tail=1) == render_events([event(1)])
    assert render_events([event(0)], tail=0) == []


def test_history_from_a_sqlite_url_and_path(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert str(sqlite_file).startswith("/")
    assert main(["history", "t1", "--state-store", f"sqlite:///{sqlite_file}"]) == 0  # 4 slashes
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["attempt"] for line in lines] == [0, 1, 2]
    assert main(["history", "t1", "--state-store", str(sqlite_file), "--tail", "1"]) == 0
    assert [json.loads(line)["attempt"] for line in capsys.readouterr().out.splitlines()] == [2]


def test_sqlite_urls_read_like_open_store(
    sqlite_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sqlite:///x.db` is relative to the working directory, `sqlite:////x.db` absolute
    (as in SQLAlchemy and `penguiflow.state.open_store`)."""
    monkeypatch.chdir(sqlite_file.parent)
    assert main(["history", "t1", "--state-store", "sqlite:///state.db"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    monkeypatch.chdir(sqlite_file.parent.parent)
    relative = f"sqlite:///{sqlite_file.parent.name}/state.db"
    assert main(["history", "t1", "--state-store", relative]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    # The older reading (everything after sqlite:// is the path) is gone: three slashes
    # before an absolute path's text is a relative path, which does not exist here.
    assert main(["history", "t1", "--state-store", f"sqlite://{sqlite_file}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no SQLite state file at {str(sqlite_file)[1:]}")
    assert main(["history", "t1", "--state-store", f"sqlite://{sqlite_file.name}"]) == 1
    assert "write sqlite:///relative.db (three slashes)" in capsys.readouterr().err


def test_text_format_is_readable(sqlite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "t1", "--state-store", str(sqlite_file), "--format", "text"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("2023-11-14 22:13:20Z  node_start")
    assert "fetch" in first
    assert "attempt=0" in first


def test_text_latencies_are_rounded_and_json_keeps_them_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lat.db"

    async def fill() -> None:
        store = SQLiteStateStore(path)
        await store.save_event(event(0, attempt=1, latency_ms=12.345678901))
        await store.save_event(event(1, latency_ms=7))
        await store.save_event(event(2, latency_ms=0.004))
        await store.close()

    asyncio.run(fill())
    assert main(["history", "t1", "--state-store", str(path), "--format", "text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("attempt=1 latency_ms=12.35")
    assert lines[1].endswith("latency_ms=7")
    assert lines[2].endswith("latency_ms=0.00")
    assert main(["history", "t1", "--state-store", str(path)]) == 0
    values = [json.loads(line)["latency_ms"] for line in capsys.readouterr().out.splitlines()]
    assert values == [12.345678901, 7, 0.004]


def test_replay_prints_a_header_then_the_events(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "t1", "--state-store", str(sqlite_file), "--delay", "0.001"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# replay trace=t1 events=3"
    assert len(out) == 4
    assert main(["replay", "t1", "--state-store", str(sqlite_file), "--tail", "0"]) == 0
    assert capsys.readouterr().out == "# trace t1 has no stored events\n"  # all trimmed


@pytest.mark.parametrize("command", ["history", "replay"])
def test_an_unknown_trace_is_an_error_naming_the_trace_and_the_store(
    command: str, sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "nope", "--state-store", str(sqlite_file)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: no events are stored for trace 'nope' in {sqlite_file}; ")
    assert f"penguiflow-admin traces --state-store {sqlite_file}" in line


def test_traces_lists_the_stored_traces_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.db"

    async def fill() -> None:
        store = SQLiteStateStore(path)
        for trace, stamps in (("old", (1.0, 2.0)), ("new", (9.5,)), ("mid", (5.0, 6.0, 4.0))):
            for n, ts in enumerate(stamps):
                await store.save_event(
                    StoredEvent(trace, 1_700_000_000.0 + ts, "node_start", "n", "i", {"n": n})
                )
        await store.close()

    asyncio.run(fill())
    assert main(["traces", "--state-store", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        {"trace_id": "new", "event_count": 1, "last_ts": 1_700_000_009.5},
        {"trace_id": "mid", "event_count": 3, "last_ts": 1_700_000_006.0},
        {"trace_id": "old", "event_count": 2, "last_ts": 1_700_000_002.0},
    ]
    assert main(["traces", "--state-store", str(path), "--limit", "2", "--offset", "1"]) == 0
    assert [json.loads(x)["trace_id"] for x in capsys.readouterr().out.splitlines()] == [
        "mid",
        "old",
    ]
    assert main(["traces", "--state-store", f"sqlite:///{path}", "--format", "text"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2023-11-14 22:13:29Z  events=1      new",
        "2023-11-14 22:13:26Z  events=3      mid",
        "2023-11-14 22:13:22Z  events=2      old",
    ]


def test_traces_of_an_empty_store_prints_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    asyncio.run(_touch(path))
    assert main(["traces", "--state-store", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"# no traces are stored in {path}\n"


async def _touch(path: Path) -> None:
    store = SQLiteStateStore(path)
    await store.schema_version()
    await store.close()


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_traces_limit_must_be_a_positive_number(bad: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["traces", "--state-store", str(tmp_path / "x.db"), "--limit", bad])
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sqlite:////no/such/dir/state.db", "error: no SQLite state file at /no/such/dir/state.db"),
        ("sqlite:///no/such/dir/state.db", "error: no SQLite state file at no/such/dir/state.db"),
        ("mysql://root@localhost/x", "error: unsupported state store URL scheme 'mysql'"),
        ("postgresql://nobody@127.0.0.1:1/x", "error: cannot connect to PostgreSQL"),
        ("redis://127.0.0.1:1/0", "error: cannot use Redis"),
        ("no_colon", "error: state store spec must be in the form 'package.module:callable'"),
        ("json:nope", "error: 'json:nope' does not resolve to a callable"),
        ("json:__doc__", "error: 'json:__doc__' resolved to <class 'str'>, not a callable"),
    ],
)
def test_wrong_stores_give_readable_errors(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "t1", "--state-store", spec]) == 1
    assert capsys.readouterr().err.startswith(message)


async def test_factories_are_loaded_and_checked() -> None:
    store = await load_state_store("penguiflow.state.memory:InMemoryStateStore")
    assert hasattr(store, "load_history")
    with pytest.raises(TypeError, match="must implement save_event/load_history"):
        await load_state_store("builtins:dict")


def test_arguments_are_checked_by_argparse() -> None:
    with pytest.raises(SystemExit) as missing:
        main(["history", "t1"])
    assert missing.value.code == 2
    with pytest.raises(SystemExit) as helped:
        main(["--help"])
    assert helped.value.code == 0


def test_the_installed_entry_point_runs(sqlite_file: Path) -> None:
    exe = Path(sys.executable).with_name("penguiflow-admin")
    done = subprocess.run(
        [str(exe), "history", "t1", "--state-store", str(sqlite_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_history_from_postgres_and_redis_urls(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import uuid

    from tests.state.conftest import POSTGRES_DSN, REDIS_URL, unavailable

    namespace = f"pf_admin_{uuid.uuid4().hex[:8]}"

    def make() -> Any:
        if backend == "postgres":
            from penguiflow.state.postgres import PostgresStateStore

            return PostgresStateStore(POSTGRES_DSN, schema=namespace)
        from penguiflow.state.redis import RedisStateStore

        return RedisStateStore(REDIS_URL, prefix=namespace)

    async def fill() -> None:
        store = make()
        for n in range(2):
            await store.save_event(event(n, attempt=n))
        await store.close()

    async def cleanup() -> None:  # each asyncio.run needs its own connections
        store = make()
        if backend == "postgres":
            pool = await store._get_pool()
            await pool.execute(f"DROP SCHEMA {namespace} CASCADE")
        else:
            client = await store._redis()
            keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
            await client.delete(*keys)
        await store.close()

    from penguiflow.state import StateStoreError

    try:
        asyncio.run(fill())
    except StateStoreError as exc:
        unavailable(backend, exc)
    try:
        url, option = (
            (POSTGRES_DSN, "--schema") if backend == "postgres" else (REDIS_URL, "--prefix")
        )
        assert main(["history", "t1", "--state-store", url, option, namespace]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["attempt"] for line in lines] == [0, 1]
        assert main(["traces", "--state-store", url, option, namespace]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert rows == [{"trace_id": "t1", "event_count": 2, "last_ts": 1_700_000_001.0}]
        assert main(["history", "t2", "--state-store", url, option, namespace]) == 1
        assert "no events are stored for trace 't2'" in capsys.readouterr().err
    finally:
        asyncio.run(cleanup())
