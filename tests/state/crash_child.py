"""A child process for the crash tests: pauses planner sessions, or resumes them.

Usage: python crash_child.py pause|resume BACKEND TARGET MARKS COUNT [KILL_AFTER]
- pause: runs COUNT sessions that pause for approval; prints one JSON line per
  session once its pause is stored ({"session": n, "token": ...}), then waits to be
  killed. The paused tool appends "ran <n>" to MARKS before pausing.
- resume: reads tokens as JSON lines on stdin, resumes each, prints one result line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class Job(BaseModel):
    session: int


class Done(BaseModel):
    session: int


def make_store(backend: str, target: str) -> Any:
    if backend == "sqlite":
        from penguiflow.state.sqlite import SQLiteStateStore

        return SQLiteStateStore(target)
    from penguiflow.state.postgres import PostgresStateStore

    dsn, schema = target.rsplit("#", 1)
    return PostgresStateStore(dsn, schema=schema)


def make_planner(store: Any, marks: str, replies: list[str]) -> ReactPlanner:
    async def needs_approval(args: Job, ctx: Any) -> Done:
        with open(marks, "a") as f:  # noqa: ASYNC230 - a tiny append, flushed at close
            f.write(f"ran {args.session}\n")
        await ctx.pause("approval_required", {"session": args.session})
        raise AssertionError("unreachable")

    registry = ModelRegistry()
    registry.register("needs_approval", Job, Done)
    catalog = build_catalog([Node(needs_approval, name="needs_approval")], registry)
    return ReactPlanner(llm_client=ScriptedLLMClient(replies), catalog=catalog, state_store=store)


async def pause_sessions(store: Any, marks: str, count: int) -> None:
    for n in range(count):
        ask = json.dumps({"thought": "t", "next_node": "needs_approval", "args": {"session": n}})
        result = await make_planner(store, marks, [ask]).run(f"session {n}")
        assert isinstance(result, PlannerPause)
        print(json.dumps({"session": n, "token": result.resume_token}), flush=True)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.sleep(3600)


async def resume_sessions(store: Any, marks: str) -> None:
    for line in sys.stdin:
        item = json.loads(line)
        done = json.dumps({"thought": "done", "args": {"session": item["session"]}})
        planner = make_planner(store, marks, [done])
        try:
            result = await planner.resume(item["token"], user_input="approved")
        except KeyError:
            print(json.dumps({"session": item["session"], "result": "unknown token"}), flush=True)
            continue
        assert isinstance(result, PlannerFinish)
        print(json.dumps({"session": item["session"], "result": result.payload}), flush=True)
    await store.close()


def main() -> None:
    mode, backend, target, marks = sys.argv[1:5]
    store = make_store(backend, target)
    if mode == "pause":
        asyncio.run(pause_sessions(store, marks, int(sys.argv[5])))
    else:
        asyncio.run(resume_sessions(store, marks))


if __name__ == "__main__":
    main()
