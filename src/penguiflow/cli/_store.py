"""Finding the store: `--store URL`, else `PENGUIFLOW_STORE`, else `.penguiflow/state.db`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..state.url import DEFAULT_STORE, STORE_ENV, store_url
from ._errors import fail, store_errors

STORE_HELP = (
    "where runs are recorded: a SQLite path, sqlite:///relative.db, sqlite:////abs/path.db, "
    f"postgresql://... or redis://... (default: ${STORE_ENV}, else {DEFAULT_STORE})"
)


NOTHING_RECORDED = f"no runs recorded yet (store {DEFAULT_STORE} does not exist)"
RECORD_ONE = "record one with 'penguiflow run MODULE:FACTORY \"query\"', or pass --store"


def nothing_recorded(option: str | None) -> bool:
    """Whether the command reads the default store and it does not exist yet."""
    return store_url(option) == DEFAULT_STORE and not os.path.exists(DEFAULT_STORE)


@asynccontextmanager
async def opened(option: str | None, *, create: bool) -> AsyncIterator[Any]:
    """The store, opened (and closed after); its errors become user errors.

    Reading (`create=False`) from the default store when it does not exist yet is
    a user error saying that no runs were recorded yet.
    """
    from ..state.url import open_store

    url = store_url(option)
    if not create and nothing_recorded(option):
        raise fail(NOTHING_RECORDED, RECORD_ONE)
    with store_errors(url):
        store = open_store(url, create=create)
        try:
            yield store
        finally:
            await store.close()
