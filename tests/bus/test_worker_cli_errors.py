"""A mistake at a worker's command line is one line on stderr naming the fix, with a
non-zero exit and no traceback: for `python -m penguiflow.bus.worker`, the
`penguiflow worker` console script and `examples/bus_workers.py`, each run as the
real command in its own process. And a worker says it is consuming only once it
reached its broker and its consumer group is in place."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from penguiflow.bus import ConsumerBus
from penguiflow.bus.nats_jetstream import NatsJetStreamBus, durable_name
from penguiflow.bus.redis_streams import RedisStreamsBus

from ..state.conftest import REDIS_URL
from .conftest import NATS_URL, nats_bus, redis_bus

ROOT = Path(__file__).resolve().parents[2]
PENGUIFLOW = Path(sys.executable).with_name("penguiflow")
EXAMPLE = ROOT / "examples" / "bus_workers.py"
FLOW = "tests.bus.worker_flow:build_flow"
EDGES = ["--ingress", "in", "--egress", "out"]
DEAD = {"redis": "redis://127.0.0.1:1/0", "nats": "nats://127.0.0.1:1"}
WORKER_ENTRIES = ["module", "cli"]
ENTRIES = [*WORKER_ENTRIES, "example"]


def command(entry: str, *options: str) -> list[str]:
    """The real command of `entry` with `options`."""
    if entry == "module":
        return [sys.executable, "-m", "penguiflow.bus.worker", *options]
    if entry == "cli":
        return [str(PENGUIFLOW), "worker", *options]
    return [sys.executable, str(EXAMPLE), *options]


def worker(entry: str, bus: str, url: str, *, flow: str = FLOW) -> list[str]:
    return command(entry, "--flow", flow, f"--{bus}", url, *EDGES)


def run(argv: list[str], *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` from the repository root (`path` first on PYTHONPATH, if given)."""
    entries = [str(p) for p in (path, ROOT) if p is not None]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command wrote to stderr (asserting there is only one)."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def blocking(tmp_path: Path, module: str) -> Path:
    """A directory whose `sitecustomize` makes importing `module` fail, as when the
    driver is not installed."""
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    return tmp_path


@pytest.mark.parametrize("bus", ["redis", "nats"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_an_unreachable_broker_is_one_line_naming_its_url(entry: str, bus: str) -> None:
    url = DEAD[bus]
    argv = command(entry, f"--{bus}", url) if entry == "example" else worker(entry, bus, url)
    result = run(argv)
    line = one_line(result)
    assert result.returncode == 1
    assert "check that the" in line
    if entry == "example":  # the library's own message
        assert f"cannot reach {'Redis' if bus == 'redis' else 'NATS'} at {url}" in line
    else:
        assert line.startswith(f"penguiflow: cannot reach the bus at {url}: ")
        assert f"that --{bus} names it" in line


@pytest.mark.parametrize(("bus", "driver"), [("redis", "redis"), ("nats", "nats")])
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_missing_driver_names_the_extra_to_install(
    entry: str, bus: str, driver: str, tmp_path: Path
) -> None:
    url = DEAD[bus]
    argv = command(entry, f"--{bus}", url) if entry == "example" else worker(entry, bus, url)
    line = one_line(run(argv, path=blocking(tmp_path, driver)))
    assert f"pip install 'penguiflow[{bus}]'" in line


WRONG_FLOWS = [
    ("os:getcwd", ["os:getcwd returned a str, not a PenguiFlow", "make it return"]),
    ("os:sep", ["os:sep is a str, not a function building a flow"]),
    ("os:no_such_attr", ["module 'os' has no attribute 'no_such_attr'", "after the colon"]),
    ("no_such_module_xyz:f", ["no module named 'no_such_module_xyz'", "PYTHONPATH"]),
    ("no_colon", ["'no_colon' is not of the form module:callable", "package.module:"]),
    ("json:JSONDecoder", ["json:JSONDecoder is a class, not a function building a flow"]),
]


@pytest.mark.parametrize(("flow", "wanted"), WRONG_FLOWS)
@pytest.mark.parametrize("entry", WORKER_ENTRIES)
def test_a_wrong_flow_says_what_was_found_and_what_was_expected(
    entry: str, flow: str, wanted: list[str]
) -> None:
    result = run(worker(entry, "redis", DEAD["redis"], flow=flow))
    line = one_line(result)
    assert result.returncode == 2
    for text in wanted:
        assert text in line


WRONG_URLS = [
    ("redis", "http://127.0.0.1:6379/0", "redis://HOST[:PORT][/DB], rediss://"),
    ("redis", "rediss:/x", "redis://HOST[:PORT][/DB], rediss://"),
    ("redis", "unix://", "unix:///PATH"),
    ("nats", "http://127.0.0.1:4222", "nats://HOST[:PORT], tls://"),
    ("nats", "nats:/x", "nats://HOST[:PORT], tls://"),
]


@pytest.mark.parametrize(("bus", "url", "accepted"), WRONG_URLS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_wrong_url_lists_the_accepted_schemes(
    entry: str, bus: str, url: str, accepted: str
) -> None:
    argv = command(entry, f"--{bus}", url) if entry == "example" else worker(entry, bus, url)
    result = run(argv)
    line = one_line(result)
    assert result.returncode == 2
    assert repr(url) in line
    assert accepted in line
    if entry != "example":
        assert line.endswith(f"; fix --{bus}")


USAGE = [
    (["--flow", FLOW, "--redis", DEAD["redis"], "--ingress", "in"], "--egress"),
    ([*EDGES, "--flow", FLOW], "one of the arguments --redis --nats is required"),
    ([*EDGES, "--flow", FLOW, "--redis", DEAD["redis"], "--batch", "0"], "--batch"),
    ([*EDGES, "--flow", FLOW, "--redis", DEAD["redis"], "--stream", "S"], "--stream"),
    ([*EDGES, "--flow", FLOW, "--nats", DEAD["nats"], "--prefix", "a.b"], "--prefix"),
]


@pytest.mark.parametrize(("options", "wanted"), USAGE)
@pytest.mark.parametrize("entry", WORKER_ENTRIES)
def test_a_wrong_option_is_one_line(entry: str, options: list[str], wanted: str) -> None:
    result = run(command(entry, *options))
    assert wanted in one_line(result)
    assert result.returncode == 2


@dataclass
class Served:
    bus: ConsumerBus
    options: list[str]


@pytest.fixture(params=["redis", "nats"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    if request.param == "redis":
        async for redis in redis_bus():
            yield Served(redis, ["--redis", REDIS_URL, "--prefix", redis.prefix])
    else:
        async for nats in nats_bus():
            options = ["--nats", NATS_URL, "--stream", nats.stream_name, "--prefix", nats.prefix]
            yield Served(nats, options)


async def group_exists(bus: ConsumerBus, edge: str, group: str) -> bool:
    if isinstance(bus, RedisStreamsBus):
        client = await bus.redis()
        if not await client.exists(bus.stream(edge)):
            return False
        return any(g["name"] == group for g in await client.xinfo_groups(bus.stream(edge)))
    assert isinstance(bus, NatsJetStreamBus)
    js = await bus.jetstream()
    names = [info.name for info in await js.consumers_info(bus.stream_name)]
    return durable_name(group, edge) in names


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as stderr:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stderr=stderr)


@pytest.mark.parametrize("entry", WORKER_ENTRIES)
async def test_the_worker_says_consuming_once_its_group_is_in_place(
    entry: str, served: Served, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    argv = command(entry, "--flow", FLOW, *served.options, *EDGES, "--consumer", "w1")
    process = start(argv, log)
    try:
        deadline = time.monotonic() + 30
        while "consuming" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.005)
        assert process.poll() is None, log.read_text()
        assert await group_exists(served.bus, "in", "workers"), log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert process.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert lines[0].startswith("penguiflow worker w1: consuming 'in' (group 'workers')")
    assert lines[-1].startswith("penguiflow worker w1: stopped; round_trips=")
