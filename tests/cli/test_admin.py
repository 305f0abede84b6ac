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
    assert main(["history", "t1", "--state-store", f"sqlite://{sqlite_file}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["attempt"] for line in lines] == [0, 1, 2]
    assert main(["history", "t1", "--state-store", str(sqlite_file), "--tail", "1"]) == 0
    assert [json.loads(line)["attempt"] for line in capsys.readouterr().out.splitlines()] == [2]


def test_text_format_is_readable(sqlite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "t1", "--state-store", str(sqlite_file), "--format", "text"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("2023-11-14 22:13:20Z  node_start")
    assert "fetch" in first
    assert "attempt=0" in first


def test_replay_prints_a_header_then_the_events(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "t1", "--state-store", str(sqlite_file), "--delay", "0.001"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# replay trace=t1 events=3"
    assert len(out) == 4
    assert main(["replay", "nope", "--state-store", str(sqlite_file)]) == 0
    assert capsys.readouterr().out == "# trace nope has no stored events\n"


def test_an_unknown_trace_says_so(sqlite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "nope", "--state-store", str(sqlite_file)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "# trace nope has no stored events\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sqlite:///no/such/dir/state.db", "error: no SQLite state file at /no/such/dir/state.db"),
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
    finally:
        asyncio.run(cleanup())
