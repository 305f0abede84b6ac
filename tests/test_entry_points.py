"""Names where users look for them: every store in `penguiflow.state`, the planner's
results in `penguiflow`, each loaded only when asked for."""

from __future__ import annotations

import subprocess
import sys


def test_every_store_is_importable_from_penguiflow_state() -> None:
    from penguiflow.state import (
        InMemoryStateStore,
        PostgresStateStore,
        RedisStateStore,
        SQLiteStateStore,
    )
    from penguiflow.state.postgres import PostgresStateStore as Postgres
    from penguiflow.state.redis import RedisStateStore as Redis

    assert (PostgresStateStore, RedisStateStore) == (Postgres, Redis)
    assert InMemoryStateStore.__module__ == "penguiflow.state.memory"
    assert SQLiteStateStore.__module__ == "penguiflow.state.sqlite"


def test_the_planners_results_are_importable_from_penguiflow() -> None:
    from penguiflow import PlannerFinish, PlannerPause, ReactPlanner
    from penguiflow.planner import PlannerFinish as Finish
    from penguiflow.planner import PlannerPause as Pause

    assert (PlannerPause, PlannerFinish) == (Pause, Finish)
    assert ReactPlanner.__module__.startswith("penguiflow.planner")


def test_naming_a_store_loads_no_driver_until_it_is_used() -> None:
    code = (
        "import sys\n"
        "from penguiflow.state import PostgresStateStore, RedisStateStore\n"
        "store = PostgresStateStore('postgresql://127.0.0.1/test')\n"
        "print(sorted(m for m in ('asyncpg', 'redis') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
