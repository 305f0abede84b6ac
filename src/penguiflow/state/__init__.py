"""State stores: the protocol the runtime writes to, and the stores we ship.

`StateStore`, `StoredEvent` and `RemoteBinding` are the spec'd names;
`PlannerStateStore` is what a store offers the planner for its pauses, and
`TraceListStore` what it offers to list its traces (`TraceSummary` records). The stores
(`InMemoryStateStore`, `SQLiteStateStore`, `PostgresStateStore`, `RedisStateStore`)
load on first access; each backend imports its driver only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CorruptRecordError as CorruptRecordError
from .errors import InvalidDataError as InvalidDataError
from .errors import ResumeTokenError as ResumeTokenError
from .errors import StateStoreError as StateStoreError
from .protocol import PlannerStateStore as PlannerStateStore
from .protocol import RemoteBinding, StateStore, StoredEvent
from .protocol import SpanStore as SpanStore
from .protocol import StoredTask as StoredTask
from .protocol import TaskStore as TaskStore
from .protocol import TraceListStore as TraceListStore
from .protocol import TraceSummary as TraceSummary

if TYPE_CHECKING:
    from .memory import InMemoryStateStore as InMemoryStateStore
    from .postgres import PostgresStateStore as PostgresStateStore
    from .redis import RedisStateStore as RedisStateStore
    from .sqlite import SQLiteStateStore as SQLiteStateStore
    from .url import open_store as open_store
    from .url import store_url as store_url

__all__ = ["StateStore", "StoredEvent", "RemoteBinding"]

_LAZY = {
    "InMemoryStateStore": "memory",
    "SQLiteStateStore": "sqlite",
    "PostgresStateStore": "postgres",
    "RedisStateStore": "redis",
    "open_store": "url",
    "store_url": "url",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
