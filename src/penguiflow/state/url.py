"""Open a state store from a URL: one convention for every command and program.

Forms:

* a SQLite file path (`runs.db`, `/var/lib/app/state.db`, anything without `://`);
* `sqlite:///relative.db` (three slashes: a path relative to the working directory)
  and `sqlite:////abs/path.db` (four slashes: an absolute path);
* `postgresql://user@host:5432/db` (or `postgres://`), with the `postgres` extra;
* `redis://host:6379/0` (or `rediss://`, `unix://`), with the `redis` extra.

Where a program's store is, by convention: `store_url()` is the URL given, else
`$PENGUIFLOW_STORE`, else `.penguiflow/state.db` (the `penguiflow` command, the demos
and the recorder's examples all use it).

Usage::

    store = open_store(store_url())      # the convention
    store = open_store("postgresql://app@127.0.0.1/app", schema="app")
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, TypeAlias

from ..errors import InvalidArgumentError, MissingExtraError
from .errors import StateFileNotFoundError

if TYPE_CHECKING:
    from .postgres import PostgresStateStore
    from .redis import RedisStateStore
    from .sqlite import SQLiteStateStore

__all__ = ["DEFAULT_STORE", "STORE_ENV", "open_store", "store_url"]

#: The store used when none is named: a SQLite file under the working directory.
DEFAULT_STORE = ".penguiflow/state.db"
#: The environment variable naming the store.
STORE_ENV = "PENGUIFLOW_STORE"

_Store: TypeAlias = "SQLiteStateStore | PostgresStateStore | RedisStateStore"

_POSTGRES = ("postgresql://", "postgres://")
_REDIS = ("redis://", "rediss://", "unix://")


def store_url(url: str | None = None) -> str:
    """The store URL to use: `url` when given, else `$PENGUIFLOW_STORE`, else
    `DEFAULT_STORE`."""
    return url or os.environ.get(STORE_ENV) or DEFAULT_STORE


def open_store(
    url: str,
    *,
    create: bool = True,
    schema: str = "penguiflow",
    prefix: str = "penguiflow",
) -> _Store:
    """The store `url` names (nothing is connected until the store is first used).

    `create=False` refuses a SQLite file that does not exist yet
    (`StateFileNotFoundError`, a `FileNotFoundError` whose `path` is the path);
    with `create=True` the file's directory is made and the file is created on first
    use. `schema` (PostgreSQL) and `prefix` (Redis) select the store's namespace.

    Raises `InvalidArgumentError` (a `ValueError`) for an empty URL, an unknown
    scheme or a `sqlite://` URL without a path, and `MissingExtraError` when the
    backend's driver is not installed (`extra` names what to install).
    """
    if not url.strip():
        raise InvalidArgumentError("the state store URL is empty")
    lowered = url.lower()
    if lowered.startswith("sqlite:"):
        return _sqlite(_sqlite_path(url), create=create)
    if lowered.startswith(_POSTGRES):
        _need("asyncpg", "postgres", "PostgreSQL")
        from .postgres import PostgresStateStore

        return PostgresStateStore(url, schema=schema, min_size=1, max_size=2)
    if lowered.startswith(_REDIS):
        _need("redis", "redis", "Redis")
        from .redis import RedisStateStore

        return RedisStateStore(url, prefix=prefix)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise InvalidArgumentError(
            f"unsupported state store URL scheme {scheme!r}: use sqlite:///, "
            "postgresql://, redis://, or a SQLite file path"
        )
    return _sqlite(url, create=create)


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite:") :]
    if not rest.startswith("///") or len(rest) == 3:
        raise InvalidArgumentError(
            f"{url!r} is not a SQLite URL: write sqlite:///relative.db (three slashes) "
            "or sqlite:////absolute/path.db (four)"
        )
    return rest[3:]


def _sqlite(path: str, *, create: bool) -> SQLiteStateStore:
    from .sqlite import SQLiteStateStore

    if not os.path.exists(path):
        if not create:
            raise StateFileNotFoundError(f"no SQLite state file at {path}", path=path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
    return SQLiteStateStore(path)


def _need(module: str, extra: str, backend: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{backend} stores need the {module!r} package: pip install 'penguiflow[{extra}]'",
            extra=extra,
        )
