"""One conformance suite for every state store: the same behaviour whatever the backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from penguiflow.state import (
    CorruptRecordError,
    InvalidDataError,
    PlannerStateStore,
    RemoteBinding,
    ResumeTokenError,
    StoredEvent,
)
from penguiflow.state.sqlite import SQLiteStateStore

from .conftest import Clock, RawWriter


def event(trace: str | None, n: int, **payload: Any) -> StoredEvent:
    return StoredEvent(trace, float(n), "node_start", "node", "id", {"n": n, **payload})


JSON_VALUES = [
    None,
    True,
    0,
    -(2**53),
    2**63 - 1,
    1.5,
    -0.0,
    "",
    "plain",
    "ünïcødé ✓ 🐧",
    "nul\x00byte",
    'quote" and \\ backslash',
    "\u2028line separator",
    [],
    [1, [2, [3, None]]],
    {},
    {"nested": {"deep": [{"k": "v"}]}},
    {"🐧": "emoji key"},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
async def test_every_json_value_round_trips_in_event_payloads(store: Any, value: Any) -> None:
    await store.save_event(event("t", 1, value=value))
    (loaded,) = await store.load_history("t")
    assert loaded.payload["value"] == value
    assert loaded == event("t", 1, value=value)


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
async def test_every_json_value_round_trips_in_planner_state(store: Any, value: Any) -> None:
    await store.save_planner_state("tok", {"value": value})
    assert await store.load_planner_state("tok") == {"value": value}


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", {"\ud83d": 1}])
async def test_lone_surrogates_are_refused_on_write(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidDataError):
        await store.save_event(event("t", 1, value=bad))
    with pytest.raises(InvalidDataError):
        await store.save_planner_state("tok", {"value": bad})
    assert await store.load_history("t") == []
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state("tok")


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan"), float("inf"), b"bytes"])
async def test_non_json_data_is_refused_with_a_typed_error(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidDataError, match="cannot be stored as JSON"):
        await store.save_event(event("t", 1, value=bad))
    with pytest.raises(InvalidDataError):
        await store.save_planner_state("tok", {"value": bad})


async def test_history_keeps_order_and_separates_traces(store: Any) -> None:
    for n in range(50):
        await store.save_event(event("a" if n % 2 else "b", n))
    a = await store.load_history("a")
    b = await store.load_history("b")
    assert [e.ts for e in a] == [float(n) for n in range(1, 50, 2)]
    assert [e.ts for e in b] == [float(n) for n in range(0, 50, 2)]
    assert await store.load_history("c") == []


@pytest.mark.parametrize(
    ("offset", "limit"), [(0, None), (0, 10), (10, 10), (45, 10), (50, 5), (60, None), (3, 0)]
)
async def test_history_pages_in_order(store: Any, offset: int, limit: int | None) -> None:
    for n in range(50):
        await store.save_event(event("t", n))
    page = await store.load_history("t", offset=offset, limit=limit)
    end = None if limit is None else offset + limit
    assert [e.ts for e in page] == [float(n) for n in range(50)][offset:end]


@pytest.mark.parametrize(("offset", "limit"), [(-1, None), (0, -1), ("1", None), (True, 3)])
async def test_bad_paging_arguments_are_refused(store: Any, offset: Any, limit: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        await store.load_history("t", offset=offset, limit=limit)


async def test_an_identical_re_save_is_stored_once(store: Any) -> None:
    await store.save_event(event("t", 1))
    await store.save_event(event("t", 1))
    await store.save_event(event("t", 2))
    assert [e.ts for e in await store.load_history("t")] == [1.0, 2.0]


async def test_events_without_a_trace_are_saved(store: Any) -> None:
    await store.save_event(event(None, 1))
    assert await store.load_history("t") == []


async def test_remote_bindings_round_trip_and_replace(store: Any) -> None:
    await store.save_remote_binding(RemoteBinding("t", None, "task-1", "https://a"))
    await store.save_remote_binding(RemoteBinding("t", "ctx", "task-1", "https://b"))
    await store.save_remote_binding(RemoteBinding("t", "ctx", "task-2", "https://a"))
    await store.save_remote_binding(RemoteBinding("u", None, "task-1", "https://a"))
    assert await store.load_remote_bindings("t") == [
        RemoteBinding("t", "ctx", "task-1", "https://b"),
        RemoteBinding("t", "ctx", "task-2", "https://a"),
    ]


async def test_delete_trace_forgets_history_and_bindings_only_of_that_trace(store: Any) -> None:
    await store.save_event(event("t", 1))
    await store.save_event(event("u", 1))
    await store.save_remote_binding(RemoteBinding("t", None, "task", "https://a"))
    await store.delete_trace("t")
    await store.delete_trace("missing")
    assert await store.load_history("t") == []
    assert await store.load_remote_bindings("t") == []
    assert len(await store.load_history("u")) == 1


async def test_every_store_offers_the_planner_the_whole_planner_state_protocol(
    store: Any,
) -> None:
    assert isinstance(store, PlannerStateStore)
    assert not isinstance(object(), PlannerStateStore)


async def test_resume_tokens_are_single_use(store: Any) -> None:
    await store.save_planner_state("tok", {"step": 1})
    assert await store.load_planner_state("tok") == {"step": 1}
    with pytest.raises(ResumeTokenError) as used:
        await store.load_planner_state("tok")
    with pytest.raises(ResumeTokenError) as unknown:
        await store.load_planner_state("never-issued")
    assert str(used.value) == str(unknown.value)  # indistinguishable
    assert isinstance(used.value, KeyError)


async def test_re_saving_a_token_replaces_its_state(store: Any) -> None:
    await store.save_planner_state("tok", {"v": 1})
    await store.save_planner_state("tok", {"v": 2})
    assert await store.load_planner_state("tok") == {"v": 2}


async def test_tokens_expire(store: Any, clock: Clock) -> None:
    await store.save_planner_state("tok", {"v": 1})
    clock.now += 61
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state("tok")


async def test_tokens_are_scoped_to_their_tenant(store: Any) -> None:
    await store.save_planner_state("tok", {"v": "acme"}, tenant="acme")
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state("tok", tenant="globex")
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state("tok")
    assert await store.load_planner_state("tok", tenant="acme") == {"v": "acme"}


async def test_discard_drops_a_token(store: Any) -> None:
    await store.save_planner_state("tok", {"v": 1})
    assert await store.discard_planner_state("tok") is True
    assert await store.discard_planner_state("tok") is False
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state("tok")


async def test_of_many_concurrent_resumes_exactly_one_wins(store: Any) -> None:
    for trial in range(50):
        await store.save_planner_state(f"tok{trial}", {"trial": trial})
        outcomes = await asyncio.gather(
            *(store.load_planner_state(f"tok{trial}") for _ in range(50)), return_exceptions=True
        )
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        assert winners == [{"trial": trial}]
        assert all(isinstance(o, ResumeTokenError) for o in outcomes if o not in winners)


INJECTION = [
    "' OR '1'='1",
    "'; DROP TABLE events; --",
    '" OR ""="',
    "t') UNION SELECT body FROM planner_state --",
    "%",
    "_",
    "\\",
    "*",
    "$where: 1",
]


@pytest.mark.parametrize("hostile", INJECTION, ids=range(len(INJECTION)))
async def test_injection_attempts_are_plain_data(store: Any, hostile: str) -> None:
    await store.save_event(event("victim", 1))
    await store.save_planner_state("secret-token", {"secret": True})
    assert await store.load_history(hostile) == []
    with pytest.raises(ResumeTokenError):
        await store.load_planner_state(hostile)
    await store.delete_trace(hostile)
    await store.save_event(event(hostile, 2))
    await store.save_remote_binding(RemoteBinding(hostile, hostile, hostile, hostile))
    assert [e.trace_id for e in await store.load_history(hostile)] == [hostile]
    assert await store.load_remote_bindings(hostile) == [
        RemoteBinding(hostile, hostile, hostile, hostile)
    ]
    assert len(await store.load_history("victim")) == 1  # untouched
    assert await store.load_planner_state("secret-token") == {"secret": True}


@pytest.mark.parametrize("bad_id", ["t\x00x", "\ud800", 7])
async def test_ids_every_backend_cannot_hold_are_refused(store: Any, bad_id: Any) -> None:
    with pytest.raises(InvalidDataError):
        await store.save_event(event(bad_id, 1))
    with pytest.raises(InvalidDataError):
        await store.load_history(bad_id)
    with pytest.raises(InvalidDataError):
        await store.save_remote_binding(RemoteBinding(bad_id, None, "task", "https://a"))
    with pytest.raises(InvalidDataError):
        await store.delete_trace(bad_id)


async def test_tokens_are_never_stored_in_clear(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    token = "f" * 32
    await store.save_planner_state(token, {"v": 1})
    await store.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir())  # database, WAL if any
    assert b'"v":1' in raw  # the state is there...
    assert token.encode() not in raw  # ...but not the token


HOSTILE_ROWS = [
    '{"__class__": "os.system", "args": ["rm -rf /"]}',
    "not json",
    "[1, 2, 3]",
    '{"trace_id": 1, "ts": "x", "kind": null, "node_name": 0, "node_id": 0, "payload": []}',
    "",
]


@pytest.mark.parametrize("body", HOSTILE_ROWS, ids=range(len(HOSTILE_ROWS)))
async def test_hostile_rows_give_a_typed_error_and_the_store_keeps_working(
    backend: tuple[Any, RawWriter], body: str
) -> None:
    store, raw = backend
    await store.save_event(event("good", 1))
    await raw("bad", body)
    with pytest.raises(CorruptRecordError):
        await store.load_history("bad")
    assert len(await store.load_history("good")) == 1
    await store.save_event(event("good", 2))
    assert len(await store.load_history("good")) == 2


async def test_sqlite_schema_is_versioned_and_durable_by_default(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    assert await store.schema_version() == 5
    assert await store.synchronous() == 2  # FULL
    await store.save_event(event("t", 1))
    await store.close()
    reopened = SQLiteStateStore(tmp_path / "s.db", synchronous="NORMAL")
    assert [e.ts for e in await reopened.load_history("t")] == [1.0]
    assert await reopened.synchronous() == 1
    await reopened.close()
    with pytest.raises(ValueError, match="synchronous must be one of"):
        SQLiteStateStore(tmp_path / "x.db", synchronous="sometimes")


async def test_a_planner_resumes_once_across_store_instances(tmp_path: Path) -> None:
    import json

    from penguiflow import ModelRegistry, Node, build_catalog
    from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
    from penguiflow.testkit import ScriptedLLMClient
    from tests.planner.conftest import Intent, Question

    async def approve(args: Question, ctx: Any) -> Intent:
        await ctx.pause("approval_required", {"text": args.text})
        raise AssertionError("unreachable")

    registry = ModelRegistry()
    registry.register("approve", Question, Intent)
    catalog = build_catalog([Node(approve, name="approve")], registry)
    ask = json.dumps({"thought": "t", "next_node": "approve", "args": {"text": "x"}})
    done = json.dumps({"thought": "done", "args": {"ok": True}})

    first_store = SQLiteStateStore(tmp_path / "p.db")
    first = ReactPlanner(
        llm_client=ScriptedLLMClient([ask]), catalog=catalog, state_store=first_store
    )
    paused = await first.run("q")
    assert isinstance(paused, PlannerPause)
    await first_store.close()

    store = SQLiteStateStore(tmp_path / "p.db")
    second = ReactPlanner(llm_client=ScriptedLLMClient([done]), catalog=catalog, state_store=store)
    result = await second.resume(paused.resume_token, user_input="yes")
    assert isinstance(result, PlannerFinish)
    with pytest.raises(KeyError):
        await second.resume(paused.resume_token)  # consumed in the store
    with pytest.raises(KeyError):
        await first.resume(paused.resume_token + "x")
    await store.close()
