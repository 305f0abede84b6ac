"""Run every runtime benchmark, each in its own interpreter, and print one summary.

Usage: `python bench/run_all.py [--quick]` (what `make bench` runs).

Each benchmark prints its own table as it finishes; a combined table follows.
Figures are ratios against a bare-asyncio floor measured in the same run. The
exit status is always 0: a missed target is reported ("NOT met"), never fatal,
and a benchmark that crashes is reported as an error row.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Result, print_table

HERE = Path(__file__).resolve().parent

BENCHMARKS = (
    "bench_hops.py",
    "bench_fanout.py",
    "bench_import.py",
    "bench_memory.py",
    "bench_planner.py",
    "bench_stores.py",
    "bench_bus.py",
    "bench_a2a.py",
    "bench_mcp.py",
    "bench_streaming.py",
    "bench_viewer.py",
    "bench_tracing.py",
)


def run_one(script: str, quick: bool, workdir: Path) -> list[Result]:
    out = workdir / f"{Path(script).stem}.json"
    command = [sys.executable, str(HERE / script), "--json", str(out)]
    if quick:
        command.append("--quick")
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.stdout:
        print(completed.stdout, end="" if completed.stdout.endswith("\n") else "\n")
    if completed.returncode != 0 or not out.exists():
        stderr = completed.stderr.strip().splitlines()
        tail = stderr[-1] if stderr else "(no output)"
        print(f"{script} failed with exit code {completed.returncode}:", file=sys.stderr)
        print(completed.stderr, file=sys.stderr)
        nan = float("nan")
        return [Result(script, nan, nan, "", nan, "-", None, note=f"error: {tail}")]
    return [Result.from_dict(item) for item in json.loads(out.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="penguiflow-bench-") as tmp:
        for script in BENCHMARKS:
            print(f"== {script}{' (quick)' if args.quick else ''}", flush=True)
            script_start = time.perf_counter()
            results.extend(run_one(script, args.quick, Path(tmp)))
            print(f"   ({time.perf_counter() - script_start:.1f}s)\n", flush=True)

    print("=" * 78)
    print_table(results, title="Summary (ratio = penguiflow / bare-asyncio floor; lower is better)")
    measured = [r for r in results if r.met is not None]
    missed = [r.name for r in measured if not r.met]
    skipped = [r.name for r in results if r.met is None and r.target != "report"]
    print()
    print(f"targets met: {len(measured) - len(missed)}/{len(measured)}", end="")
    print(f"; NOT met: {', '.join(missed)}" if missed else "", end="")
    print(f"; skipped/errored: {', '.join(skipped)}" if skipped else "")
    print(f"total time: {time.perf_counter() - started:.1f}s")
    if any(not math.isfinite(r.ratio) for r in measured):
        print("note: some ratios are not finite (see notes above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
