"""open_store: one URL convention for every store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.state import StateStoreError, open_store
from penguiflow.state.errors import StateFileNotFoundError
from penguiflow.state.postgres import PostgresStateStore
from penguiflow.state.redis import RedisStateStore
from penguiflow.state.sqlite import SQLiteStateStore


async def test_sqlite_urls_three_slashes_relative_four_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///nested/dir/runs.db")
    assert isinstance(relative, SQLiteStateStore)
    assert (tmp_path / "nested" / "dir").is_dir()  # made for the first write
    await relative.list_runs()
    await relative.close()
    assert (tmp_path / "nested" / "dir" / "runs.db").exists()
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")
    await absolute.list_runs()
    await absolute.close()
    assert (tmp_path / "abs.db").exists()
    plain = open_store("plain.db", create=True)
    assert isinstance(plain, SQLiteStateStore)


def test_reading_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateFileNotFoundError, match="no SQLite state file at"):
        open_store(str(tmp_path / "none.db"), create=False)
    assert not os.path.exists(tmp_path / "none.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the state store URL is empty"),
        ("sqlite://x.db", "write sqlite:///relative.db"),
        ("sqlite:///", "write sqlite:///relative.db"),
        ("mysql://root@localhost/x", "unsupported state store URL scheme 'mysql'"),
    ],
)
def test_bad_urls_say_what_to_write(url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        open_store(url)


async def test_server_urls_open_their_backends_lazily() -> None:
    postgres = open_store("postgresql://nobody@127.0.0.1:1/x", schema="app")
    assert isinstance(postgres, PostgresStateStore)
    with pytest.raises(StateStoreError, match="cannot connect to PostgreSQL"):
        await postgres.list_runs()
    redis = open_store("redis://127.0.0.1:1/0", prefix="app")
    assert isinstance(redis, RedisStateStore)
    with pytest.raises(StateStoreError, match="cannot use Redis"):
        await redis.list_runs()
    await redis.close()
