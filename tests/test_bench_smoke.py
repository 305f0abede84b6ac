"""The benchmarks still run: each bench module's `main` in quick mode (tiny sizes).

Only the result structure is checked — never a timing or a target verdict.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
MODULES = (
    "bench_hops",
    "bench_fanout",
    "bench_import",
    "bench_memory",
    "bench_planner",
    "bench_stores",
    "bench_tracing",
    "bench_streaming",
)


@pytest.fixture(scope="module")
def bench_path() -> Iterator[None]:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(BENCH_DIR))


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def check_results(results: Any) -> None:
    common = load("_common")
    assert isinstance(results, list)
    assert results
    for result in results:
        assert isinstance(result, common.Result)
        assert result.name
        assert isinstance(result.target, str)
        if result.met is None and result.target != "report":  # skipped
            assert "skipped" in result.note
            continue
        assert isinstance(result.met, bool) or result.target == "report"
        for value in (result.subject, result.floor, result.ratio):
            assert isinstance(value, float | int)
            assert math.isfinite(value)
        assert result.ratio > 0
        assert result.subject >= 0
        assert result.floor >= 0
    text = common.format_table(results)
    assert all(result.name in text for result in results)


@pytest.mark.usefixtures("bench_path")
@pytest.mark.parametrize("name", MODULES)
def test_bench_module_quick(name: str) -> None:
    module = load(name)
    check_results(module.main(quick=True))


@pytest.mark.usefixtures("bench_path")
@pytest.mark.timeout(420)  # every bench once, each in its own interpreter (~1 min idle)
def test_run_all_quick(capsys: pytest.CaptureFixture[str]) -> None:
    run_all = load("run_all")
    assert run_all.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Summary" in out
    for script in run_all.BENCHMARKS:
        assert script in out
