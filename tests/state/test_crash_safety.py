"""Crash safety with real processes: SIGKILL a process holding paused sessions, resume
them all from another process; kill at random points and lose nothing acknowledged."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import POSTGRES_DSN, unavailable

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]


def child(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "pauses.db")
        return
    import asyncio

    import asyncpg

    schema = f"pf_crash_{uuid.uuid4().hex[:10]}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()

    try:
        asyncio.run(drop())
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    yield "postgres", f"{POSTGRES_DSN}#{schema}"
    asyncio.run(drop())


def read_acks(process: subprocess.Popen[str], limit: int) -> list[dict]:
    acks: list[dict] = []
    assert process.stdout is not None
    while len(acks) < limit:
        line = process.stdout.readline()
        if not line:
            break
        item = json.loads(line)
        if item.get("ready"):
            break
        acks.append(item)
    return acks


def resume_all(backend: str, target: str, marks: Path, acks: list[dict]) -> list[dict]:
    resumer = child("resume", backend, target, str(marks))
    out, err = resumer.communicate("".join(json.dumps(a) + "\n" for a in acks), timeout=120)
    assert resumer.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_sigkill_after_pausing_then_every_session_resumes_in_a_new_process(
    target: tuple[str, str], tmp_path: Path
) -> None:
    backend, where = target
    marks = tmp_path / "marks.txt"
    pauser = child("pause", backend, where, str(marks), "20")
    acks = read_acks(pauser, limit=20)
    pauser.send_signal(signal.SIGKILL)
    pauser.wait(timeout=30)
    assert len(acks) == 20, pauser.stderr.read() if pauser.stderr else ""

    results = resume_all(backend, where, marks, acks)
    assert [r["result"] for r in results] == [{"session": n} for n in range(20)]
    ran = marks.read_text().split("\n")[:-1]
    assert sorted(ran) == sorted(f"ran {n}" for n in range(20))  # nothing ran twice

    again = resume_all(backend, where, marks, acks[:3])  # tokens are single use
    assert [r["result"] for r in again] == ["unknown token"] * 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_random_points_no_acknowledged_session_is_lost(
    target: tuple[str, str], tmp_path: Path, seed: int
) -> None:
    backend, where = target
    marks = tmp_path / "marks.txt"
    kill_after = random.Random(seed).randint(1, 15)
    pauser = child("pause", backend, where, str(marks), "20")
    acks = read_acks(pauser, limit=kill_after)
    pauser.send_signal(signal.SIGKILL)  # somewhere in the middle of the next session
    pauser.wait(timeout=30)
    assert len(acks) == kill_after

    results = resume_all(backend, where, marks, acks)
    assert [r["result"] for r in results] == [{"session": a["session"]} for a in acks]
