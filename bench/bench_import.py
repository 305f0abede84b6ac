"""Import cost: `import penguiflow` on top of a minimal Pydantic program.

Floor process: `import pydantic; from pydantic import BaseModel` and define one
model. Subject process: the same, then `import penguiflow`. Both are fresh
interpreters (same executable), timed with `time.perf_counter()` inside the `-c`
script so interpreter start-up is excluded, run alternately ~15 times each.

Figures: subject = median total of the subject script, floor = median of the floor
script; the target applies to the extra cost of `import penguiflow`, measured in
the subject process itself (median of its own `import penguiflow` time).

The subject script also reports which optional extras ended up in `sys.modules`:
none of them may be imported by `import penguiflow`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from _common import Result, interleave, run_cli

TARGET_EXTRA_MS = 15.0

OPTIONAL_EXTRAS = (
    "httpx",
    "litellm",
    "redis",
    "asyncpg",
    "psycopg",
    "aiosqlite",
    "nats",
    "fastapi",
    "uvicorn",
    "a2a",
    "dspy",
)

_PRELUDE = """\
import time
_t0 = time.perf_counter()
import pydantic
from pydantic import BaseModel


class Model(BaseModel):
    name: str
    count: int = 0


_t1 = time.perf_counter()
"""

FLOOR_SCRIPT = (
    _PRELUDE
    + """\
import json
print(json.dumps({"floor": _t1 - _t0}))
"""
)

SUBJECT_SCRIPT = (
    _PRELUDE
    + """\
import penguiflow
_t2 = time.perf_counter()
import json
import sys
extras = __EXTRAS__
loaded = sorted(
    name for name in sys.modules if name.split(".", 1)[0] in extras
)
print(json.dumps({"floor": _t1 - _t0, "extra": _t2 - _t1, "total": _t2 - _t0,
                  "extras_loaded": loaded, "version": penguiflow.__version__}))
"""
).replace("__EXTRAS__", repr(OPTIONAL_EXTRAS))


def script_env(pycache: str) -> dict[str, str]:
    """Environment for the measured interpreters: bytecode cached under `pycache`.

    Installed packages (pydantic) ship compiled bytecode, but a source checkout run
    with PYTHONDONTWRITEBYTECODE=1 would recompile penguiflow on every import and
    measure the compiler. A private PYTHONPYCACHEPREFIX gives every module a warm
    cache after the first run without writing anything into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def run_script(source: str, *flags: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, *flags, "-c", source],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"import script failed (exit {completed.returncode}): {tail[0]}")
    data: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    data["stderr"] = completed.stderr
    return data


def importtime_top(env: dict[str, str], limit: int = 8) -> list[tuple[str, float, float]]:
    """Slowest imports triggered by `import penguiflow` per `-X importtime`.

    Returns (module, self ms, cumulative ms), sorted by self time. `-X importtime`
    inflates every figure, so only the ranking is meaningful.
    """
    data = run_script(SUBJECT_SCRIPT, "-X", "importtime", env=env)
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    rows: list[tuple[str, float, float, int]] = []
    for line in data["stderr"].splitlines():
        match = pattern.match(line)
        if match:
            self_us, cumul_us, indent, module = match.groups()
            rows.append((module, int(self_us) / 1000, int(cumul_us) / 1000, len(indent)))
    top_level = [i for i, row in enumerate(rows) if row[0] == "penguiflow" and row[3] <= 1]
    if not top_level:
        return []
    end = top_level[0]
    start = end
    # Children are printed before their parent, more indented: walk back to the
    # previous top-level line, which belongs to something imported earlier.
    while start > 0 and rows[start - 1][3] > rows[end][3]:
        start -= 1
    block = [(m, s, c) for m, s, c, _ in rows[start : end + 1]]
    block.sort(key=lambda row: row[1], reverse=True)
    return block[:limit]


ASYNCIO_SCRIPT = (
    _PRELUDE
    + """\
import asyncio
_t2 = time.perf_counter()
from penguiflow import Message, ModelRegistry, Node, NodePolicy, create
_t3 = time.perf_counter()
import json
import sys
extras = __EXTRAS__
loaded = sorted(name for name in sys.modules if name.split(".", 1)[0] in extras)
print(json.dumps({"asyncio": _t2 - _t1, "penguiflow_rest": _t3 - _t2, "extras_loaded": loaded}))
"""
).replace("__EXTRAS__", repr(OPTIONAL_EXTRAS))


def asyncio_share(runs: int, env: dict[str, str]) -> tuple[float, float, list[str]]:
    """Median ms of `import asyncio` alone, of importing the runtime names after it,
    and the optional extras loaded by then."""
    samples = [run_script(ASYNCIO_SCRIPT, env=env) for _ in range(runs)]
    return (
        statistics.median(float(s["asyncio"]) for s in samples) * 1000,
        statistics.median(float(s["penguiflow_rest"]) for s in samples) * 1000,
        sorted({name for s in samples for name in s["extras_loaded"]}),
    )


def main(quick: bool = False) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="penguiflow-bench-pycache-") as pycache:
        return _measure(quick, script_env(pycache))


def _measure(quick: bool, env: dict[str, str]) -> list[Result]:
    repeats = 3 if quick else 15
    subject_runs: list[dict[str, Any]] = []

    def subject() -> float:
        data = run_script(SUBJECT_SCRIPT, env=env)
        subject_runs.append(data)
        return float(data["total"])

    def floor() -> float:
        return float(run_script(FLOOR_SCRIPT, env=env)["floor"])

    paired = interleave(subject, floor, repeats=repeats, warmup=2)
    measured = subject_runs[-repeats:]
    extra_ms = statistics.median(float(run["extra"]) for run in measured) * 1000
    diff_ms = (paired.subject_median - paired.floor_median) * 1000
    loaded = sorted({name for run in measured for name in run["extras_loaded"]})

    import_note = (
        f"`import penguiflow` adds {extra_ms:.1f} ms (in-process median; "
        f"difference of medians {diff_ms:+.1f} ms); {repeats} runs each, warm bytecode cache"
    )
    asyncio_ms, rest_ms, runtime_loaded = asyncio_share(3 if quick else 11, env)
    loaded = sorted(set(loaded) | set(runtime_loaded))
    if not quick:
        top = importtime_top(env)
        if top:
            import_note += "; slowest self-times: " + ", ".join(
                f"{module} {self_ms:.1f}ms" for module, self_ms, _ in top[:5]
            )
    results = [
        Result(
            name="import penguiflow",
            subject=paired.subject_median * 1000,
            floor=paired.floor_median * 1000,
            unit="ms",
            ratio=paired.ratio,
            target=f"<=+{TARGET_EXTRA_MS:g} ms",
            met=extra_ms <= TARGET_EXTRA_MS,
            note=import_note,
            extra={"extra_ms": extra_ms, "diff_of_medians_ms": diff_ms},
        ),
        Result(
            name="runtime names (after asyncio)",
            subject=asyncio_ms + rest_ms,
            floor=asyncio_ms,
            unit="ms",
            ratio=(asyncio_ms + rest_ms) / asyncio_ms if asyncio_ms else float("nan"),
            target=f"<=+{TARGET_EXTRA_MS:g} ms",
            met=rest_ms <= TARGET_EXTRA_MS,
            note=(
                f"`from penguiflow import create, Node, NodePolicy, Message, ModelRegistry` "
                f"in a program that already imported pydantic and asyncio adds {rest_ms:.1f} ms "
                f"(asyncio itself: {asyncio_ms:.1f} ms, which every asyncio program pays)"
            ),
            extra={"extra_ms": rest_ms, "asyncio_ms": asyncio_ms},
        ),
        Result(
            name="no optional extras",
            subject=float(len(loaded)),
            floor=0.0,
            unit="modules",
            ratio=1.0 if not loaded else float("inf"),
            target="none loaded",
            met=not loaded,
            note=(
                "loaded after import: " + ", ".join(loaded)
                if loaded
                else "none of " + ", ".join(OPTIONAL_EXTRAS) + " in sys.modules"
            ),
            extra={"loaded": loaded},
        ),
    ]
    return results


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "Import cost"))
