"""Benchmark ReactPlanner against a real small model (not part of CI).

Usage (what `make bench-real-model` runs, with defaults):

    python bench/real_model/run.py [--model 1.5b|0.5b] [--client native|litellm|both]
        [--guidance on|off|both] [--tasks NAME,...] [--url URL --model NAME]
        [--out results.json] [--src PATH]

Without `--url` it builds/fetches llama-server and the model into the cache
(`fetch.py`) and serves the model on a free loopback port for the run. With
`--url` (an OpenAI-compatible root ending in `/v1`, e.g. Ollama's
`http://127.0.0.1:11434/v1`) it benchmarks the model `--model NAME` it serves.
`--src PATH` puts PATH (a checkout's `src`) first on `sys.path`, so another
version of penguiflow is measured. Temperature 0 throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: The one paragraph of format guidance given as `system_prompt_extra` ("guidance on").
GUIDANCE = (
    "Reply with exactly one JSON object and nothing else, with the keys "
    '"thought", "next_node" and "args". To call a tool, set "next_node" to the '
    'exact tool name and "args" to an object that follows that tool\'s args_schema '
    "(numbers as numbers, lists as lists, dates as YYYY-MM-DD, enum values exactly as "
    "listed); call one tool per reply and wait for its result. Never invent a tool "
    'result. Set "next_node" to null only when you are done, and then put the final '
    'answer for the user in "args" as {"answer": "..."}, stating the facts you found.'
)

MAX_ITERS = 8
LLM_TIMEOUT_S = 1800.0  # N slots filling their first 3k-token prompt at once are slow
TASK_TIMEOUT_S = 3600.0
SERVED_NAME = {"1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m", "0.5b": "qwen2.5-0.5b-q4"}


class UsageError(Exception):
    """A command-line mistake: one line naming the fix."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark ReactPlanner with a real model.")
    parser.add_argument(
        "--model", help="1.5b (default) or 0.5b; with --url, the model name the endpoint serves"
    )
    parser.add_argument("--client", choices=["native", "litellm", "both"], default="both")
    parser.add_argument("--guidance", choices=["on", "off", "both"], default="both")
    parser.add_argument("--tasks", help="comma-separated task names (default: all)")
    parser.add_argument("--url", help="an OpenAI-compatible endpoint ending in /v1")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--src", type=Path, help="benchmark the penguiflow in PATH (a src dir)")
    parser.add_argument("--threads", type=int, default=2, help="llama-server threads")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="configurations run at the same time (llama-server gets as many slots)",
    )
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    if args.url and not args.model:
        raise UsageError("--url needs --model NAME (the model the endpoint serves)")
    if not args.url:
        args.model = args.model or "1.5b"
        if args.model not in SERVED_NAME:
            raise UsageError(f"--model {args.model}: choose 1.5b or 0.5b (or give --url)")
    if args.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    if args.src is not None and not (args.src / "penguiflow" / "__init__.py").exists():
        raise UsageError(f"--src {args.src}: no penguiflow/__init__.py there (give a src dir)")
    return args


def use_source(src: Path | None) -> dict[str, Any]:
    """Put `src` first on sys.path, import penguiflow, and say which one was imported."""
    sys.path.insert(0, str(HERE))
    if src is not None:
        sys.path.insert(0, str(src.resolve()))
    import penguiflow

    where = Path(penguiflow.__file__).resolve().parent.parent
    if src is not None and where != src.resolve():
        raise UsageError(f"imported penguiflow from {where}, not --src {src}")
    return {"src": str(where), "commit": _git_commit(where)}


def _git_commit(path: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def build_planner(
    client: str, guidance: bool, base_url: str, model: str, catalog: Any
) -> tuple[Any, Any, Any]:
    """A ReactPlanner over `catalog` using the native or the LiteLLM client, its
    recorder, and the native client to close (or `None`)."""
    from measure import Recorder

    from penguiflow.planner import ReactPlanner

    recorder = Recorder()
    common: dict[str, Any] = {
        "catalog": catalog,
        "max_iters": MAX_ITERS,
        "temperature": 0.0,
        "json_schema_mode": True,
        "system_prompt_extra": GUIDANCE if guidance else None,
        "event_callback": recorder,
        "llm_timeout_s": LLM_TIMEOUT_S,
        "llm_max_retries": 1,
    }
    if client == "native":
        from penguiflow.planner.clients.openai_compat import OpenAICompatibleClient

        native = OpenAICompatibleClient(
            base_url, model, temperature=0.0, max_retries=1, timeout_s=LLM_TIMEOUT_S
        )
        return ReactPlanner(llm_client=native, **common), recorder, native
    llm = {"model": f"openai/{model}", "api_base": base_url, "api_key": "sk-local"}
    return ReactPlanner(llm=llm, **common), recorder, None


async def run_configuration(
    client: str,
    guidance: bool,
    base_url: str,
    model: str,
    tasks: list[Any],
    sink: Any,
    tag: str,
) -> list[dict[str, Any]]:
    from measure import run_task
    from tasks import build_world_catalog

    results: list[dict[str, Any]] = []
    for task in tasks:
        world, catalog = build_world_catalog()
        planner, recorder, native = build_planner(client, guidance, base_url, model, catalog)
        try:
            result = await run_task(planner, task, world, recorder, TASK_TIMEOUT_S)
        finally:
            if native is not None:
                await native.aclose()
        mark = "ok  " if result.success else "FAIL"
        print(
            f"  [{tag}] {mark} {task.name:<24} steps={result.steps} llm={result.llm_calls} "
            f"invalid={result.invalid_replies} {result.wall_s:.1f}s"
            + (f"  {result.failure}" if result.failure else ""),
            flush=True,
        )
        results.append(result.to_dict())
        sink(results)
    return results


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        source = use_source(args.src)
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch
        from tasks import TASKS, select_tasks

        if args.list:
            for task in TASKS:
                print(f"{task.name:<26} {', '.join(task.covers):<34} {task.query}")
            return 0
        try:
            tasks = select_tasks(args.tasks)
        except KeyError as exc:
            raise UsageError(f"unknown task(s) {exc.args[0]}; see --list for the names") from None
        return asyncio.run(_main(args, source, tasks))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _main(args: argparse.Namespace, source: dict[str, Any], tasks: list[Any]) -> int:
    import report

    clients = ["native", "litellm"] if args.client == "both" else [args.client]
    guidances = [True, False] if args.guidance == "both" else [args.guidance == "on"]
    meta: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/real_model/run.py", *sys.argv[1:]]),
        "penguiflow": source,
        "temperature": 0.0,
        "max_iters": MAX_ITERS,
        "guidance_text": GUIDANCE,
    }
    data: dict[str, Any] = {"meta": meta, "configurations": []}

    def save() -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")

    server = None
    if args.url:
        base_url, model = args.url.rstrip("/"), args.model
        meta.update(endpoint=base_url, model=model)
    else:
        import fetch
        from server import LlamaServer

        try:
            binary = fetch.ensure_server()
            model_file = fetch.ensure_model(args.model)
        except fetch.FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        server = LlamaServer(
            binary,
            model_file,
            threads=args.threads,
            slots=args.jobs,
            log_path=fetch.cache_dir() / f"server-{os.getpid()}.log",  # one per run
        )
        model = SERVED_NAME[args.model]
        meta.update(model=args.model, model_file=str(model_file), server=server.command())
        print(f"Starting llama-server on port {server.port} with {model_file.name}", flush=True)
        server.__enter__()
        base_url = server.base_url
    configs: list[dict[str, Any]] = []
    for client in clients:
        for guidance in guidances:
            configs.append(
                {
                    "model": args.model if not args.url else model,
                    "client": client,
                    "guidance": "on" if guidance else "off",
                    "tasks": [],
                }
            )
    data["configurations"] = configs
    meta["jobs"] = args.jobs
    gate = asyncio.Semaphore(args.jobs)

    async def one(config: dict[str, Any]) -> None:
        async with gate:
            tag = f"{config['client']}/{config['guidance']}"
            print(f"== start {report.label(config)} ==", flush=True)
            started = time.perf_counter()

            def sink(results: list[dict[str, Any]]) -> None:
                config["tasks"] = results
                save()

            guidance = config["guidance"] == "on"
            await run_configuration(config["client"], guidance, base_url, model, tasks, sink, tag)
            config["totals"] = report.totals(config["tasks"])
            config["elapsed_s"] = round(time.perf_counter() - started, 1)
            save()
            report.print_configuration(config)

    try:
        await asyncio.gather(*(one(config) for config in configs))
    finally:
        if server is not None:
            server.stop()
    meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    save()
    report.print_totals(data["configurations"])
    if args.out is not None:
        print(f"Results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
