"""One tool-call path: a sequential step, a branch and a join see a tool the same way."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner import branches as branch_runner
from penguiflow.planner.tools import PlannerContext
from penguiflow.testkit import ScriptedLLMClient

from .conftest import act


class Item(BaseModel):
    n: int


class Merged(BaseModel):
    results: list[dict[str, Any]] = []
    n: int = 0


class Fix(ValueError):
    suggestion = "use a positive n"


def catalog_of(*tools: Any, join_model: type[BaseModel] = Item) -> list[Any]:
    registry = ModelRegistry()
    for tool in tools:
        name = tool.__name__
        args_model = join_model if name.startswith("join") else Item
        registry.register(name, args_model, Item)
    return build_catalog([Node(tool, name=tool.__name__) for tool in tools], registry)


async def raises(args: Item, ctx: Any) -> Item:
    raise Fix("negative n")


async def join_raises(args: Item, ctx: Any) -> Item:
    raise Fix("negative n")


async def bad_output(args: Item, ctx: Any) -> Item:
    return {"n": "not a number"}  # type: ignore[return-value]


async def join_bad_output(args: Item, ctx: Any) -> Item:
    return {"n": "not a number"}  # type: ignore[return-value]


async def ok(args: Item, ctx: Any) -> Item:
    return Item(n=args.n + 1)


async def run(catalog: list[Any], *replies: str) -> PlannerFinish:
    llm = ScriptedLLMClient([*replies, act(next_node=None, args={"answer": "done"})])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert isinstance(result, PlannerFinish)
    return result


@pytest.mark.parametrize(("tool", "join"), [(raises, join_raises), (bad_output, join_bad_output)])
async def test_a_failing_tool_reads_the_same_in_a_step_a_branch_and_a_join(
    tool: Any, join: Any
) -> None:
    catalog = catalog_of(tool, join, ok)
    name = tool.__name__
    sequential = await run(catalog, act(next_node=name, args={"n": 1}))
    step = sequential.metadata["steps"][0]
    branch_run = await run(catalog, act(plan=[{"node": name, "args": {"n": 1}}]))
    branch = branch_run.metadata["steps"][0]["observation"]["branches"][0]
    join_run = await run(
        catalog,
        act(
            plan=[{"node": "ok", "args": {"n": 1}}], join={"node": join.__name__, "args": {"n": 1}}
        ),
    )
    joined = join_run.metadata["steps"][0]["observation"]["join"]

    error = step["error"]
    assert branch["error"] == error
    assert joined["error"] == error.replace(f"'{name}'", f"'{join.__name__}'")
    if tool is raises:
        assert error == "tool 'raises' raised Fix: negative n"
        failure = {
            "node": "raises",
            "args": {"n": 1},
            "error_code": "Fix",
            "message": "negative n",
            "suggestion": "use a positive n",
        }
        assert step["failure"] == branch["failure"] == failure
        assert joined["failure"] == {**failure, "node": "join_raises"}
    else:
        assert error.startswith("tool 'bad_output' returned data that did not validate: [")
        assert step["failure"] is None
        assert "failure" not in branch
        assert "failure" not in joined


async def test_every_call_that_ran_is_a_hop_whatever_came_of_it() -> None:
    catalog = catalog_of(raises, join_bad_output, ok)
    plan = [{"node": "ok", "args": {"n": 1}}, {"node": "ok", "args": {"n": 2}}]
    llm = ScriptedLLMClient(
        [
            act(next_node="raises", args={"n": 1}),
            act(plan=plan, join={"node": "join_bad_output", "args": {"n": 0}}),
            act(next_node="nope", args={}),  # not a tool: no hop
            act(next_node="ok", args={"n": "x"}),  # invalid args: no hop
            act(next_node=None),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog, hop_budget=10).run("q")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["constraints"]["hops_used"] == 1 + 2 + 1


async def test_a_pause_reads_the_same_in_a_step_a_branch_and_a_join() -> None:
    async def asks(args: Item, ctx: Any) -> Item:
        await ctx.pause("await_input", {"n": args.n})
        raise AssertionError("unreachable")

    async def join_asks(args: Item, ctx: Any) -> Item:
        await ctx.pause("await_input", {"n": args.n})
        raise AssertionError("unreachable")

    catalog = catalog_of(asks, join_asks, ok)
    replies = [
        act(next_node="asks", args={"n": 1}),
        act(plan=[{"node": "asks", "args": {"n": 1}}]),
        act(plan=[{"node": "ok", "args": {"n": 0}}], join={"node": "join_asks", "args": {"n": 1}}),
    ]
    pauses = []
    for reply in replies:
        planner = ReactPlanner(llm_client=ScriptedLLMClient([reply]), catalog=catalog)
        pause = await planner.run("q")
        assert isinstance(pause, PlannerPause)
        pauses.append((pause.reason, pause.payload))
        assert list(planner._pause_records) == [pause.resume_token]
    assert pauses == [("await_input", {"n": 1})] * 3


marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="planner")


async def test_branches_that_cannot_suspend_keep_task_semantics() -> None:
    seen: list[tuple[int, str]] = []

    async def sets(args: Item, ctx: Any) -> Item:  # no await: runs without a task
        seen.append((args.n, marker.get()))
        marker.set(f"branch {args.n}")
        return args

    async def waits(args: Item, ctx: Any) -> Item:  # awaits: runs as a task
        seen.append((args.n, marker.get()))
        await asyncio.sleep(0)
        marker.set(f"branch {args.n}")
        return args

    assert branch_runner.never_suspends(sets)
    assert not branch_runner.never_suspends(waits)
    catalog = catalog_of(sets, waits)
    plan = [
        {"node": "sets", "args": {"n": 0}},
        {"node": "sets", "args": {"n": 1}},
        {"node": "waits", "args": {"n": 2}},
        {"node": "sets", "args": {"n": 3}},
        {"node": "waits", "args": {"n": 4}},
    ]
    result = await run(catalog, act(plan=plan))
    branches = result.metadata["steps"][0]["observation"]["branches"]
    assert [b["observation"] for b in branches] == [{"n": n} for n in range(5)]
    # Started in plan order, each in its own copy of the context; nothing leaked out.
    assert seen == [(n, "planner") for n in range(5)]
    assert marker.get() == "planner"


def test_only_plain_coroutine_functions_without_suspension_points_run_inline() -> None:
    async def plain(args: Item, ctx: Any) -> Item:
        return args

    async def awaits(args: Item, ctx: Any) -> Item:
        await asyncio.sleep(0)
        return args

    async def enters(args: Item, ctx: Any) -> Item:
        async with contextlib.AsyncExitStack():
            return args

    async def iterates(args: Any, ctx: Any) -> Any:
        return [x async for x in args]

    class Callable:
        async def __call__(self, args: Item, ctx: Any) -> Item:
            return args

    never = branch_runner.never_suspends
    assert never(plain)
    assert not never(awaits)
    assert not never(enters)
    assert not never(iterates)
    assert not never(functools.partial(plain))
    assert not never(Callable())


async def test_a_branch_that_suspends_against_expectations_is_carried_on_by_a_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def waits(args: Item, ctx: Any) -> Item:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return Item(n=args.n * 10)

    monkeypatch.setattr(branch_runner, "never_suspends", lambda func: True)
    catalog = catalog_of(waits)
    plan = [{"node": "waits", "args": {"n": n}} for n in range(3)]
    result = await run(catalog, act(plan=plan))
    branches = result.metadata["steps"][0]["observation"]["branches"]
    assert [b["observation"] for b in branches] == [{"n": 0}, {"n": 10}, {"n": 20}]


async def test_cancelling_a_run_reaches_a_carried_on_branch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(args: Item, ctx: Any) -> Item:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return args

    monkeypatch.setattr(branch_runner, "never_suspends", lambda func: True)
    catalog = catalog_of(hangs)
    llm = ScriptedLLMClient([act(plan=[{"node": "hangs", "args": {"n": 1}}])])
    before = set(asyncio.all_tasks())
    task = asyncio.create_task(ReactPlanner(llm_client=llm, catalog=catalog).run("q"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert set(asyncio.all_tasks()) - before - {asyncio.current_task()} == set()


async def test_the_context_a_tool_gets() -> None:
    contexts: list[Any] = []

    async def looks(args: Item, ctx: Any) -> Item:
        contexts.append(ctx)
        ctx.meta["touched"] = args.n
        return args

    catalog = catalog_of(looks)
    llm = ScriptedLLMClient(
        [
            act(next_node="looks", args={"n": 1}),
            act(plan=[{"node": "looks", "args": {"n": 2}}, {"node": "looks", "args": {"n": 3}}]),
            act(next_node=None),
        ]
    )
    await ReactPlanner(llm_client=llm, catalog=catalog).run("q", context_meta={"user": "u"})
    sequential, first_branch, second_branch = contexts
    assert isinstance(sequential, PlannerContext)
    assert first_branch is second_branch  # the branches of one plan share one context
    assert sequential.meta == {"user": "u", "touched": 1}
    assert first_branch.meta == {"user": "u", "touched": 3}
    with pytest.raises(AttributeError):
        sequential.other = 1


async def test_a_resumed_call_can_also_be_awaited_directly() -> None:
    async def two_steps() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    call = two_steps()
    suspended_on = call.send(None)
    assert await branch_runner._Resumed(call, suspended_on) == "done"  # type: ignore[arg-type]


async def test_models_that_override_model_validate_or_model_dump_are_honoured() -> None:
    class Loose(BaseModel):
        n: int

        @classmethod
        def model_validate(cls, obj: Any, **options: Any) -> Loose:
            return super().model_validate({"n": int(obj.get("n", 0)) * 2}, **options)

    class Redacted(BaseModel):
        n: int
        secret: str = "s3cret"

        def model_dump(self, **options: Any) -> dict[str, Any]:
            return {k: v for k, v in super().model_dump(**options).items() if k != "secret"}

    async def doubles(args: Loose, ctx: Any) -> Redacted:
        return Redacted(n=args.n)

    registry = ModelRegistry()
    registry.register("doubles", Loose, Redacted)
    catalog = build_catalog([Node(doubles, name="doubles")], registry)
    llm = ScriptedLLMClient(
        [
            act(next_node="doubles", args={"n": "2"}),
            act(plan=[{"node": "doubles", "args": {"n": "3"}}]),
            act(next_node=None),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert isinstance(result, PlannerFinish)
    steps = result.metadata["steps"]
    assert steps[0]["observation"] == {"n": 4}
    assert steps[1]["observation"]["branches"][0]["observation"] == {"n": 6}
    assert steps[1]["observation"]["branches"][0]["args"] == {"n": 6}
    assert llm.calls[1]["messages"][-1]["content"] == '{"observation": {"n": 4}}'


class Unprintable(Exception):
    """An exception whose own `__str__` raises, and whose suggestion cannot be read."""

    def __str__(self) -> str:
        raise ValueError("no text")

    @property
    def suggestion(self) -> str:
        raise RuntimeError("no suggestion either")


async def test_a_tool_raising_an_unprintable_exception_is_an_error_step() -> None:
    async def broken(args: Item, ctx: Any) -> Item:
        raise Unprintable()

    client = ScriptedLLMClient(
        [
            act("call", next_node="broken", args={"n": 1}),
            act("done", next_node=None, args={"answer": "it failed"}),
        ]
    )
    planner = ReactPlanner(llm_client=client, catalog=catalog_of(broken))
    result = await planner.run("try it")
    assert isinstance(result, PlannerFinish)
    step = result.metadata["steps"][0]
    assert (
        step["error"] == "tool 'broken' raised Unprintable: <Unprintable: str() raised ValueError>"
    )
    assert step["failure"]["message"] == "<Unprintable: str() raised ValueError>"
    assert step["failure"]["suggestion_error"] == "RuntimeError"
    # The model read the error like any other tool error.
    assert "str() raised ValueError" in client.calls[1]["messages"][-1]["content"]
