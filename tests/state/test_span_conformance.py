"""Recorded runs (spans) on every state store: the same behaviour whatever the backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import InvalidArgumentError
from penguiflow.spans import RunSummary, Span
from penguiflow.state import CorruptRecordError, InvalidDataError, SpanStore
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

from .conftest import POSTGRES_DSN, REDIS_URL


def root(run_id: str, start: float, *, status: str = "ok", kind: str = "run", **attrs: Any) -> Span:
    name = "ReactPlanner" if kind == "run" else "flow"
    end = None if status == "running" else start + 1
    return Span(run_id, f"{run_id}-root", None, kind, name, start, end, status, attributes=attrs)


def child(run_id: str, n: int, start: float, **fields: Any) -> Span:
    return Span(run_id, f"{run_id}-s{n:03d}", f"{run_id}-root", "step", "step", start, **fields)


def summary(span: Span, span_count: int) -> RunSummary:
    return RunSummary.from_root(span, span_count)


# -- round trips and upserts -----------------------------------------------------------


async def test_every_store_is_a_span_store(store: Any) -> None:
    assert isinstance(store, SpanStore)


async def test_spans_round_trip_with_every_field(store: Any) -> None:
    run = [
        Span(
            "r1",
            "root",
            None,
            "run",
            "ReactPlanner",
            100.0,
            109.5,
            "error",
            "ValueError",
            "ünïcødé ✓ 🐧 failed",
            1,
            {"query": "Où est 🐧?", "llm_calls": 2, "cost_usd": 0.0125, "answer": None},
            {"note": "nul\x00byte and \u2028"},
        ),
        Span(
            "r1",
            "llm-1",
            "step-1",
            "llm",
            "gpt-4o-mini",
            101.25,
            102.0,
            "ok",
            attempt=3,
            attributes={"model": "gpt-4o-mini", "prompt_tokens": 12, "cost_source": None},
            content={
                "messages": [{"role": "user", "content": 'quote" and \\ backslash'}],
                "reply": "ok",
                "nested": {"deep": [{"k": [1, [2, [3, None]]]}], "🐧": -(2**53), "big": 2**63 - 1},
            },
        ),
        Span("r1", "step-1", "root", "step", "step", 101.0, None, "running"),
        Span("r1", "tool-1", "step-1", "tool", "search", 103.0, 104.0, "cancelled"),
    ]
    await store.save_spans(run)
    assert await store.load_run("r1") == sorted(run, key=lambda s: s.start)


async def test_a_span_saved_at_start_and_again_at_end_is_stored_once(store: Any) -> None:
    started = root("r", 10.0, status="running", query="q")
    step = child("r", 1, 11.0)
    await store.save_spans([started, step])
    assert await store.list_runs() == [summary(started, 2)]

    step.end, step.status, step.attributes = 12.0, "ok", {"step": 1}
    ended = root("r", 10.0, status="ok", query="q", answer="a", reason="answer_complete")
    await store.save_spans([step, ended])
    assert await store.load_run("r") == [ended, step]
    assert await store.list_runs() == [summary(ended, 2)]


async def test_the_last_save_of_a_span_in_one_batch_wins(store: Any) -> None:
    first = child("r", 1, 1.0)
    second = child("r", 1, 1.0, end=2.0, status="error", error_message="boom")
    await store.save_spans([first, second])
    assert await store.load_run("r") == [second]


async def test_spans_are_ordered_by_start_then_span_id(store: Any) -> None:
    spans = [child("r", n, float(n % 3)) for n in range(9)]
    await store.save_spans(spans[::-1])
    assert await store.load_run("r") == sorted(spans, key=lambda s: (s.start, s.span_id))


async def test_saving_no_spans_does_nothing(store: Any) -> None:
    await store.save_spans([])
    assert await store.list_runs() == []


async def test_an_unknown_run_has_no_spans(store: Any) -> None:
    await store.save_spans([root("known", 1.0)])
    assert await store.load_run("unknown") == []


async def test_spans_saved_before_their_root_are_kept_but_not_listed(store: Any) -> None:
    early = [child("r", 1, 2.0), child("r", 2, 3.0)]
    await store.save_spans(early)
    assert await store.load_run("r") == early
    assert await store.list_runs() == []
    top = root("r", 1.0)
    await store.save_spans([top])
    assert await store.list_runs() == [summary(top, 3)]
    assert await store.load_run("r") == [top, *early]


async def test_a_resumed_root_replaces_the_summary(store: Any) -> None:
    paused = root("r", 5.0, status="paused", query="approve?", reason=None)
    await store.save_spans([paused, child("r", 1, 6.0)])
    assert await store.list_runs(status="paused") == [summary(paused, 2)]

    resumed = root("r", 5.0, status="ok", query="approve?", answer="done", resumes=1)
    await store.save_spans([resumed, child("r", 2, 8.0)])
    assert await store.list_runs() == [summary(resumed, 3)]
    assert await store.list_runs(status="paused") == []
    assert await store.list_runs(text="done") == [summary(resumed, 3)]


# -- the run list ----------------------------------------------------------------------


def sample_runs() -> list[Span]:
    return [
        root("p-ok", 10.0, query="What is the WEATHER in Paris?", answer="Sunny"),
        root("p-err", 20.0, status="error", query="book a flight", reason="no_path"),
        root("f-ok", 30.0, kind="trace"),
        root("f-cancel", 40.0, status="cancelled", kind="trace"),
        root("p-paused", 50.0, status="paused", query="100% sure_thing?"),
    ]


async def test_runs_are_listed_newest_first_with_their_span_counts(store: Any) -> None:
    roots = sample_runs()
    await store.save_spans(roots)
    await store.save_spans([child("p-ok", n, 11.0 + n) for n in range(4)])
    await store.save_spans([child("f-ok", 1, 31.0)])
    counts = {"p-ok": 5, "f-ok": 2}
    expected = [summary(r, counts.get(r.run_id, 1)) for r in reversed(roots)]
    assert await store.list_runs() == expected


async def test_runs_with_the_same_start_are_listed_by_run_id_descending(store: Any) -> None:
    roots = [root(name, 7.0) for name in ("b", "a", "c")]
    await store.save_spans(roots)
    assert [r.run_id for r in await store.list_runs()] == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "ok"}, ["f-ok", "p-ok"]),
        ({"status": "error"}, ["p-err"]),
        ({"status": "running"}, []),
        ({"kind": "trace"}, ["f-cancel", "f-ok"]),
        ({"kind": "run", "status": "ok"}, ["p-ok"]),
        ({"text": "weather"}, ["p-ok"]),  # query, case-insensitive
        ({"text": "SUNNY"}, ["p-ok"]),  # answer
        ({"text": "no_path"}, ["p-err"]),  # finish reason
        ({"text": "cancel"}, ["f-cancel"]),  # run id and status
        ({"text": "reactplanner"}, ["p-paused", "p-err", "p-ok"]),  # name
        ({"text": "100%"}, ["p-paused"]),  # no LIKE wildcards
        ({"text": "%"}, ["p-paused"]),
        ({"text": "_"}, ["p-paused", "p-err"]),  # "sure_thing", "no_path"
        ({"text": "x%y"}, []),
        ({"text": ""}, ["p-paused", "f-cancel", "f-ok", "p-err", "p-ok"]),
        ({"text": "flow", "kind": "trace", "status": "ok"}, ["f-ok"]),
    ],
)
async def test_runs_are_filtered_by_status_kind_and_text(
    store: Any, filters: dict[str, str], expected: list[str]
) -> None:
    await store.save_spans(sample_runs())
    assert [r.run_id for r in await store.list_runs(**filters)] == expected


async def test_text_search_matches_error_messages(store: Any) -> None:
    failed = root("r", 1.0, status="error")
    failed.error_type, failed.error_message = "TimeoutError", "Tool 'Search' timed out"
    await store.save_spans([failed, root("other", 2.0)])
    assert await store.list_runs(text="'search' TIMED") == [summary(failed, 1)]


@pytest.mark.parametrize(
    ("offset", "limit"), [(0, None), (0, 10), (10, 10), (45, 10), (50, 5), (60, None), (3, 0)]
)
async def test_the_run_list_pages_in_order(store: Any, offset: int, limit: int | None) -> None:
    await store.save_spans([root(f"r{n:02d}", float(n)) for n in range(50)])
    page = await store.list_runs(offset=offset, limit=limit)
    newest_first = [f"r{n:02d}" for n in reversed(range(50))]
    end = None if limit is None else offset + limit
    assert [r.run_id for r in page] == newest_first[offset:end]


@pytest.mark.parametrize(
    ("offset", "limit"), [(0, None), (0, 50), (190, 30), (200, 100), (340, 50), (399, 10)]
)
async def test_a_filtered_run_list_pages_in_order_across_many_runs(
    store: Any, offset: int, limit: int | None
) -> None:
    roots = [root(f"r{n:03d}", float(n), status="ok" if n % 2 else "error") for n in range(800)]
    await store.save_spans(roots)
    page = await store.list_runs(status="ok", text="r", offset=offset, limit=limit)
    newest_ok = [f"r{n:03d}" for n in reversed(range(800)) if n % 2]
    end = None if limit is None else offset + limit
    assert [r.run_id for r in page] == newest_ok[offset:end]


async def test_the_default_page_is_fifty_runs(store: Any) -> None:
    await store.save_spans([root(f"r{n:02d}", float(n)) for n in range(60)])
    assert len(await store.list_runs()) == 50


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, -1), ("1", 10), (True, 3), (0, 1.5)])
async def test_bad_paging_arguments_are_refused(store: Any, offset: Any, limit: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="must be"):
        await store.list_runs(offset=offset, limit=limit)


# -- refused data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [{1, 2}, object(), float("nan"), float("inf"), b"bytes", "\ud800", {"\ud83d": 1}]
)
async def test_a_batch_with_non_json_content_is_refused_whole(store: Any, bad: Any) -> None:
    # Every store checks the whole batch before writing: none of it is stored (on
    # Redis too, where nothing is sent).
    good = [root("r", 1.0), child("r", 1, 2.0), child("other", 1, 2.0)]
    bad_span = child("r", 2, 3.0, content={"result": bad})
    with pytest.raises(InvalidDataError, match="cannot be stored as JSON"):
        await store.save_spans([*good, bad_span])
    assert await store.load_run("r") == []
    assert await store.load_run("other") == []
    assert await store.list_runs() == []


async def test_non_json_attributes_of_a_root_are_refused(store: Any) -> None:
    with pytest.raises(InvalidDataError):
        await store.save_spans([root("r", 1.0, answer=object())])
    assert await store.list_runs() == []


@pytest.mark.parametrize("bad_id", ["t\x00x", "\ud800", 7])
async def test_ids_every_backend_cannot_hold_are_refused(store: Any, bad_id: Any) -> None:
    with pytest.raises(InvalidDataError):
        await store.save_spans([root(bad_id, 1.0)])
    with pytest.raises(InvalidDataError):
        await store.save_spans([Span("r", bad_id, None, "run", "n", 1.0)])
    with pytest.raises(InvalidDataError):
        await store.load_run(bad_id)
    with pytest.raises(InvalidDataError):
        await store.delete_run(bad_id)
    with pytest.raises(InvalidDataError):
        await store.list_runs(text=bad_id)
    assert await store.list_runs() == []


async def test_an_unknown_status_is_refused(store: Any) -> None:
    with pytest.raises(InvalidDataError, match="status"):
        await store.save_spans([root("r", 1.0, status="done")])
    assert await store.load_run("r") == []


INJECTION = ["' OR '1'='1", "'; DROP TABLE spans; --", "%", "_", "\\", "*", "runs", "a:b:c"]


@pytest.mark.parametrize("hostile", INJECTION, ids=range(len(INJECTION)))
async def test_injection_attempts_are_plain_data(store: Any, hostile: str) -> None:
    victim = root("victim", 1.0)
    await store.save_spans([victim])
    assert await store.load_run(hostile) == []
    assert await store.list_runs(status=hostile) == []
    assert await store.list_runs(kind=hostile) == []
    await store.delete_run(hostile)
    mine = Span(hostile, hostile, None, "run", hostile, 2.0, 3.0, "ok", attributes={"q": hostile})
    await store.save_spans([mine])
    assert await store.load_run(hostile) == [mine]
    assert (await store.list_runs(text=hostile))[0] == summary(mine, 1)
    assert await store.load_run("victim") == [victim]


# -- corrupt rows ------------------------------------------------------------------------

RawSpanWriter = Callable[[str, str, str], Awaitable[str]]


@pytest.fixture
async def raw_span(store: Any, tmp_path: Path) -> Any:
    """Writes a raw body straight into the store's backend: `("spans"|"runs", key, body)`.

    For "spans" the key is "run/span"; for "runs" it is the run id (whose root must
    have been saved). Each branch writes the way the backend lays out its data, and
    returns the key the store must name when it reads the row back.
    """
    if isinstance(store, InMemoryStateStore):

        async def memory(table: str, key: str, body: str) -> str:
            if table == "spans":
                run_id, span_id = key.split("/")
                store._spans.setdefault(run_id, {})[span_id] = (0.0, body)
            else:
                store._runs[key] = dataclasses.replace(store._runs[key], body=body)
            return key

        yield memory
    elif isinstance(store, SQLiteStateStore):
        path = tmp_path / "state.db"

        async def lite(table: str, key: str, body: str) -> str:
            await store.schema_version()
            conn = sqlite3.connect(path)
            if table == "spans":
                # SQLite keeps a batch's spans of a run as one JSON array, a chunk:
                # a span-like object goes in as a chunk of one, anything else as is.
                run_id = key.split("/")[0]
                chunk = f"[{body}]" if body.startswith("{") else body
                cursor = conn.execute(
                    "INSERT INTO span_chunks (run_id, body) VALUES (?, ?)", (run_id, chunk)
                )
                key = f"{run_id}#{cursor.lastrowid}"
            else:
                conn.execute("UPDATE runs SET body = ? WHERE run_id = ?", (body, key))
            conn.commit()
            conn.close()
            return key

        yield lite
    elif type(store).__name__ == "PostgresStateStore":
        import asyncpg

        admin = await asyncpg.connect(POSTGRES_DSN)
        schema = store._schema

        async def pg(table: str, key: str, body: str) -> str:
            await store.schema_version()
            if table == "spans":
                run_id, span_id = key.split("/")
                await admin.execute(
                    f"INSERT INTO {schema}.spans (run_id, span_id, start, body) "
                    "VALUES ($1, $2, 0, $3)",
                    run_id,
                    span_id,
                    body,
                )
            else:
                await admin.execute(
                    f"UPDATE {schema}.runs SET body = $1 WHERE run_id = $2", body, key
                )
            return key

        yield pg
        await admin.close()
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        prefix = store._prefix

        async def rd(table: str, key: str, body: str) -> str:
            if table == "spans":
                run_id, span_id = key.split("/")
                await client.hset(f"{prefix}:spans:{run_id}", span_id, body)
            else:
                await client.hset(f"{prefix}:runinfo", key, body)
            return key

        yield rd
        await client.aclose()


HOSTILE_ROWS = [
    '{"__class__": "os.system", "args": ["rm -rf /"]}',
    "not json",
    "[1, 2, 3]",
    '{"run_id": 1, "span_id": null, "kind": 0, "name": [], "start": "x", "status": "ok"}',
    '{"run_id": "r", "span_id": "s", "parent_id": null, "kind": "run", "name": "n", '
    '"start": 1.0, "status": "exploded"}',
    '{"run_id": "r", "span_id": "s", "parent_id": null, "kind": "run", "name": "n", '
    '"start": 1.0, "status": "ok", "attempt": "first"}',
    "",
]


@pytest.mark.parametrize("body", HOSTILE_ROWS, ids=range(len(HOSTILE_ROWS)))
async def test_corrupt_span_rows_give_a_typed_error_naming_the_row(
    store: Any, raw_span: RawSpanWriter, body: str
) -> None:
    good = root("good", 1.0)
    await store.save_spans([good])
    key = await raw_span("spans", "bad/s1", body)
    with pytest.raises(CorruptRecordError) as caught:
        await store.load_run("bad")
    assert caught.value.key == key
    assert await store.load_run("good") == [good]
    await store.save_spans([child("good", 1, 2.0)])
    assert len(await store.load_run("good")) == 2


@pytest.mark.parametrize("body", HOSTILE_ROWS, ids=range(len(HOSTILE_ROWS)))
async def test_corrupt_run_entries_give_a_typed_error_naming_the_run(
    store: Any, raw_span: RawSpanWriter, body: str
) -> None:
    await store.save_spans([root("bad", 1.0), root("good", 0.5)])
    await raw_span("runs", "bad", body)
    with pytest.raises(CorruptRecordError) as caught:
        await store.list_runs()
    assert caught.value.key == "bad"
    assert await store.list_runs(offset=1) == [summary(root("good", 0.5), 1)]
    await store.delete_run("bad")
    assert await store.list_runs() == [summary(root("good", 0.5), 1)]


# -- housekeeping and concurrency ------------------------------------------------------


async def test_delete_run_forgets_only_that_run(store: Any) -> None:
    keep = [root("keep", 1.0), child("keep", 1, 2.0)]
    await store.save_spans([root("drop", 3.0), child("drop", 1, 4.0), *keep])
    await store.delete_run("drop")
    await store.delete_run("never-saved")
    assert await store.load_run("drop") == []
    assert await store.list_runs() == [summary(keep[0], 2)]
    assert await store.load_run("keep") == keep
    await store.save_spans([root("drop", 3.0)])  # a deleted run can be recorded again
    assert [r.span_count for r in await store.list_runs()] == [1, 2]


async def test_concurrent_batches_lose_nothing(store: Any) -> None:
    runs = [f"run{r}" for r in range(4)]
    batches = [
        [child(runs[b % 4], b * 50 + n, float(b * 50 + n)) for n in range(50)]
        + ([root(runs[b % 4], -1.0 - b)] if b < 4 else [])
        for b in range(20)
    ]
    await asyncio.gather(*(store.save_spans(batch) for batch in batches))
    listed = await store.list_runs()
    assert [(r.run_id, r.span_count) for r in listed] == [(run, 251) for run in runs]
    for b, run in enumerate(runs):
        spans = await store.load_run(run)
        expected = [span for batch in batches[b::4] for span in batch]
        assert spans == sorted(expected, key=lambda s: (s.start, s.span_id))


async def test_a_recorder_sized_batch_is_written(store: Any) -> None:
    top = root("big", 0.0, status="running")
    batch = [top] + [
        child("big", n, float(n), content={"args": {"n": n}, "text": "x" * 200})
        for n in range(1, 256)
    ]
    await store.save_spans(batch)
    assert await store.load_run("big") == batch
    assert (await store.list_runs())[0].span_count == 256


# -- SQLite files ------------------------------------------------------------------------


async def test_sqlite_spans_survive_reopening_the_file(tmp_path: Path) -> None:
    spans = [root("r", 1.0, query="q"), child("r", 1, 2.0, content={"reply": "🐧"})]
    store = SQLiteStateStore(tmp_path / "runs.db")
    await store.save_spans(spans)
    await store.close()
    reopened = SQLiteStateStore(tmp_path / "runs.db")
    assert await reopened.schema_version() == 5
    assert await reopened.load_run("r") == spans
    assert await reopened.list_runs(text="Q") == [summary(spans[0], 2)]
    await reopened.close()


V1_SCHEMA = [
    "CREATE TABLE penguiflow_schema (version INTEGER NOT NULL, applied_at REAL NOT NULL)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trace_id TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX events_by_trace ON events (trace_id, id)",
    """CREATE TABLE remote_bindings (
        trace_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (trace_id, task_id)
    )""",
    "CREATE TABLE planner_state (digest TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at REAL)",
    "INSERT INTO penguiflow_schema VALUES (1, 0)",
]


async def test_a_version_1_sqlite_file_migrates_to_the_latest_keeping_its_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    v1_event = {"trace_id": "t", "ts": 1.0, "kind": "node_start", "node_name": "n"}
    v1_event |= {"node_id": "i", "payload": {"n": 1}}
    conn.execute(
        "INSERT INTO events (trace_id, digest, body) VALUES ('t', 'd1', ?)",
        (json.dumps(v1_event),),
    )
    conn.commit()
    conn.close()

    store = SQLiteStateStore(path)
    assert await store.schema_version() == 5
    assert [(e.trace_id, e.payload) for e in await store.load_history("t")] == [("t", {"n": 1})]
    await store.save_spans([root("r", 1.0)])
    assert await store.list_runs() == [summary(root("r", 1.0), 1)]
    await store.close()


V2_SPANS = [
    """CREATE TABLE spans (
        run_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        start REAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, span_id)
    )""",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        start REAL NOT NULL,
        status TEXT NOT NULL,
        kind TEXT NOT NULL,
        search TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_start ON runs (start DESC, run_id DESC)",
    "INSERT INTO penguiflow_schema VALUES (2, 0)",
]


async def test_a_version_2_sqlite_file_migrates_to_the_current_version_keeping_its_runs(
    tmp_path: Path,
) -> None:
    spans = [root("r", 1.0, query="q"), child("r", 1, 2.0), child("r", 2, 3.0, content={"x": 1})]
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA + V2_SPANS:
        conn.execute(statement)
    for span in spans:  # a version 2 file holds one row per span
        conn.execute(
            "INSERT INTO spans VALUES (?, ?, ?, ?)",
            (span.run_id, span.span_id, span.start, json.dumps(span.to_dict())),
        )
    conn.execute(
        "INSERT INTO runs VALUES ('r', 1.0, 'ok', 'run', 'r', ?)", (json.dumps(spans[0].to_dict()),)
    )
    conn.commit()
    conn.close()

    store = SQLiteStateStore(path)
    assert await store.schema_version() == 5
    assert await store.load_run("r") == spans
    assert [run.span_count for run in await store.list_runs()] == [3]
    await store.save_spans([child("r", 3, 4.0)])
    assert len(await store.load_run("r")) == 4
    await store.close()
