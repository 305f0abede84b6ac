"""Tables of benchmark results: a rich table per configuration, totals, and Markdown.

Usage: `python bench/real_model/report.py results/before-1.5b.json` prints the
Markdown tables of a saved run (for the README).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown", "print_configuration", "print_totals", "totals"]


def totals(tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A configuration's totals over its task results."""
    n = len(tasks)
    succeeded = sum(1 for t in tasks if t["success"])
    steps = sum(t["steps"] for t in tasks)
    prompt = sum(t["prompt_tokens"] for t in tasks)
    calls = sum(t["llm_calls"] for t in tasks)
    return {
        "tasks": n,
        "succeeded": succeeded,
        "success_rate": round(succeeded / n, 3) if n else 0.0,
        "steps": steps,
        "llm_calls": calls,
        "invalid_replies": sum(t["invalid_replies"] for t in tasks),
        "repairs": sum(t["repairs"] for t in tasks),
        "error_steps": sum(t["error_steps"] for t in tasks),
        "prompt_tokens": prompt,
        "completion_tokens": sum(t["completion_tokens"] for t in tasks),
        # per turn: each step plus each task's final answer
        "prompt_tokens_per_step": round(prompt / (steps + n), 1) if n else 0.0,
        "prompt_tokens_per_call": round(prompt / calls, 1) if calls else 0.0,
        "wall_s": round(sum(t["wall_s"] for t in tasks), 1),
    }


def label(config: Mapping[str, Any]) -> str:
    return f"{config['model']} / {config['client']} / guidance {config['guidance']}"


def print_configuration(config: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=label(config), title_justify="left")
    for column in ("task", "ok", "steps", "llm", "invalid", "repairs", "err steps"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for column in ("prompt tok", "compl tok", "prompt/step", "wall s"):
        table.add_column(column, justify="right")
    table.add_column("failure", overflow="fold", max_width=60)
    for t in config["tasks"]:
        table.add_row(
            t["task"],
            "yes" if t["success"] else "NO",
            str(t["steps"]),
            str(t["llm_calls"]),
            str(t["invalid_replies"]),
            str(t["repairs"]),
            str(t["error_steps"]),
            str(t["prompt_tokens"]),
            str(t["completion_tokens"]),
            f"{t['prompt_tokens_per_step']:.0f}",
            f"{t['wall_s']:.1f}",
            t["failure"] or "",
        )
    Console(width=200).print(table)


def print_totals(configs: Sequence[Mapping[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Totals per configuration", title_justify="left")
    columns = ("configuration", "success", "steps", "llm", "invalid", "repairs", "err steps")
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for column in ("prompt tok", "compl tok", "prompt/step", "prompt/call", "wall s"):
        table.add_column(column, justify="right")
    for config in configs:
        s = totals(config["tasks"])
        table.add_row(
            label(config),
            f"{s['succeeded']}/{s['tasks']} ({s['success_rate']:.0%})",
            str(s["steps"]),
            str(s["llm_calls"]),
            str(s["invalid_replies"]),
            str(s["repairs"]),
            str(s["error_steps"]),
            str(s["prompt_tokens"]),
            str(s["completion_tokens"]),
            f"{s['prompt_tokens_per_step']:.0f}",
            f"{s['prompt_tokens_per_call']:.0f}",
            f"{s['wall_s']:.0f}",
        )
    Console(width=200).print(table)


def markdown(data: Mapping[str, Any]) -> str:
    """The totals table and a task-by-configuration success grid, as Markdown."""
    configs = data["configurations"]
    lines = [
        "| configuration | success | steps | LLM calls | invalid | repairs | error steps "
        "| prompt tok | completion tok | prompt tok/step | prompt tok/call | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        s = totals(config["tasks"])
        lines.append(
            f"| {label(config)} | {s['succeeded']}/{s['tasks']} ({s['success_rate']:.0%}) "
            f"| {s['steps']} | {s['llm_calls']} | {s['invalid_replies']} | {s['repairs']} "
            f"| {s['error_steps']} | {s['prompt_tokens']} | {s['completion_tokens']} "
            f"| {s['prompt_tokens_per_step']:.0f} | {s['prompt_tokens_per_call']:.0f} "
            f"| {s['wall_s']:.0f} |"
        )
    if not configs:
        return "\n".join(lines)
    names = list(dict.fromkeys(t["task"] for c in configs for t in c["tasks"]))
    heads = [f"{c['client']}/{c['guidance']}" for c in configs]
    lines += ["", "| task | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name in names:
        cells = []
        for config in configs:
            t = next((t for t in config["tasks"] if t["task"] == name), None)
            if t is None:
                cells.append("-")
            else:
                mark = "ok" if t["success"] else "FAIL"
                cells.append(f"{mark} ({t['steps']} st, {t['invalid_replies']} inv)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/real_model/report.py RESULTS.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.exists():
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
