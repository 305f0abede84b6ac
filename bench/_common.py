"""Shared helpers for the runtime benchmarks: timing, results and the table printer.

Every benchmark compares a *subject* (penguiflow) against a *floor* (the same
pipeline built from bare `asyncio.Queue`s and tasks) measured in the same process
and interleaved with it, so the noise of a shared machine hits both sides alike.
The printed figure that matters is the ratio, never the absolute number.

Benchmarks never fail on a number: they print whether a target is met and exit 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Paired",
    "Result",
    "format_table",
    "interleave",
    "interleave_async",
    "parse_args",
    "print_table",
    "run_cli",
    "timed",
    "write_json",
]


@dataclass(slots=True)
class Result:
    """One row of the benchmark table.

    `ratio` is always "how many times worse than the floor" (so lower is better and
    1.0 means "as good as bare asyncio"); `met` is `None` when the row was skipped.
    """

    name: str
    subject: float
    floor: float
    unit: str
    ratio: float
    target: str
    met: bool | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


@dataclass(slots=True)
class Paired:
    """Interleaved samples of a subject and its floor (one pair per round)."""

    subject: list[float]
    floor: list[float]

    @property
    def subject_median(self) -> float:
        return statistics.median(self.subject)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor)

    @property
    def subject_best(self) -> float:
        return min(self.subject)

    @property
    def floor_best(self) -> float:
        return min(self.floor)

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios subject/floor.

        Each round measures both sides back to back, so a burst of load from a
        neighbour inflates both and largely cancels out of that round's ratio.
        """
        return statistics.median(s / f for s, f in zip(self.subject, self.floor) if f > 0)

    @property
    def spread(self) -> float:
        """Relative spread (max/min - 1) of the per-round ratios: a noise indicator."""
        ratios = [s / f for s, f in zip(self.subject, self.floor) if f > 0]
        return max(ratios) / min(ratios) - 1.0 if ratios else math.nan


def _settle() -> None:
    gc.collect()


async def interleave_async(
    subject: Callable[[], Awaitable[float]],
    floor: Callable[[], Awaitable[float]],
    *,
    repeats: int,
    warmup: int = 1,
) -> Paired:
    """Run `floor` and `subject` alternately (ABBA order), `repeats` rounds each.

    Each callable runs one batch and returns its own elapsed seconds (so set-up
    is excluded). A full collection runs before every batch.
    """
    for _ in range(warmup):
        _settle()
        await floor()
        _settle()
        await subject()
    paired = Paired([], [])
    for round_no in range(repeats):
        first_floor = round_no % 2 == 0
        for is_floor in (first_floor, not first_floor):
            _settle()
            if is_floor:
                paired.floor.append(await floor())
            else:
                paired.subject.append(await subject())
    return paired


def interleave(
    subject: Callable[[], float],
    floor: Callable[[], float],
    *,
    repeats: int,
    warmup: int = 1,
) -> Paired:
    """Synchronous twin of `interleave_async` (used for subprocess measurements)."""
    for _ in range(warmup):
        floor()
        subject()
    paired = Paired([], [])
    for round_no in range(repeats):
        first_floor = round_no % 2 == 0
        for is_floor in (first_floor, not first_floor):
            if is_floor:
                paired.floor.append(floor())
            else:
                paired.subject.append(subject())
    return paired


def timed(func: Callable[[], Any]) -> float:
    """Seconds taken by one call of `func`."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


# -- output ----------------------------------------------------------------------------


_COUNT_UNITS = frozenset({"modules"})


def _figure(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit in _COUNT_UNITS:
        return f"{value:.0f} {unit}"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}"


def _verdict(met: bool | None) -> str:
    if met is None:
        return "skipped"
    return "met" if met else "NOT met"


def format_table(results: Sequence[Result], *, title: str | None = None) -> str:
    """Render results as a fixed-width table (plus notes underneath)."""
    header = ("benchmark", "penguiflow", "floor", "ratio", "target", "met?")
    rows = [
        (
            r.name,
            _figure(r.subject, r.unit),
            _figure(r.floor, r.unit),
            f"{r.ratio:.2f}x" if math.isfinite(r.ratio) else "n/a",
            r.target,
            ("reported" if r.target == "report" else _verdict(r.met)),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    out: list[str] = []
    if title:
        out.append(title)
    out.append(line(header))
    out.append(line(tuple("-" * w for w in widths)))
    out.extend(line(row) for row in rows)
    notes = [f"  * {r.name}: {r.note}" for r in results if r.note]
    if notes:
        out.append("")
        out.extend(notes)
    return "\n".join(out)


def print_table(results: Sequence[Result], *, title: str | None = None) -> None:
    print(format_table(results, title=title), flush=True)


def write_json(results: Sequence[Result], path: str | Path) -> None:
    Path(path).write_text(json.dumps([r.to_dict() for r in results], indent=2))


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Common CLI of every bench module: `--quick` and `--json PATH`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(list(argv) if argv is not None else sys.argv[1:])


def run_cli(
    description: str,
    main: Callable[..., list[Result]],
    title: str,
    argv: Sequence[str] | None = None,
) -> int:
    """Entry point shared by the bench scripts: run, print the table, exit 0."""
    args = parse_args(description, argv)
    results = main(quick=args.quick)
    print_table(results, title=title)
    if args.json:
        write_json(results, args.json)
    return 0
