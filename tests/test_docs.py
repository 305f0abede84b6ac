"""Every code block of the documentation (docs/**/*.md) runs, or is at least checked.

The conventions, by the fence's info string (also told to readers in docs/index.md,
"About the examples"):

* ```` ```python ````: a program. It runs in a fresh interpreter (as README blocks do
  in test_readme.py) and must exit 0. The blocks of one page run in document order in
  one scratch directory (their working directory, and on `sys.path`), so a block may
  read what an earlier block of its page wrote.
* ```` ```text title="Output" ```` right after a program: its exact standard output.
* ```` ```python title="name.py" ````: a module. It is compiled and written into the
  page's directory as `name.py` (not run), for the later blocks to import.
* A program whose first line is `# needs: redis` (or `postgres`, `nats`; several are
  separated by commas) talks to that server on 127.0.0.1. Without it the block is
  skipped with the reason; with CI=true a missing server is a failure (the rule of
  tests/state/conftest.py, whose helper this uses).
* ```` ```py ````: code that would need the network or an API key. Its first line must
  be `# not run: <why>`; it is compiled with `compile()` (top-level `await` allowed, as
  in an async REPL or notebook), never run. `py` is Pygments' alias of `python`, so it
  renders the same.
* ```` ```bash ````: shell commands, shown only. Each command is checked instead: a
  `penguiflow ...` subcommand exists (its `--help` works), a `make` target is in the
  Makefile, a `python -m` module can be found, a `pip install '.[extra]'` names real
  extras.
* ```` ```text ````, `json`, `yaml`, `toml`: shown only.

Any other info string fails `test_every_fence_follows_a_convention`.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import itertools
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .state.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

SHOWN_ONLY = {"text", "json", "yaml", "toml"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>.*)$")
TITLE = re.compile(r'title="(?P<title>[^"]*)"')
NEEDS = re.compile(r"^# needs: (?P<services>[a-z, ]+)")
SERVICES = {"postgres": ("PostgreSQL", 5432), "redis": ("Redis", 6379), "nats": ("NATS", 4222)}


@dataclass(slots=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    code: str
    output: Block | None = None  # the ```text title="Output" block right after it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"

    @property
    def module(self) -> str | None:
        """The file name a module block is saved as, else `None`."""
        if self.lang == "python" and self.title and self.title.endswith(".py"):
            return self.title
        return None

    @property
    def services(self) -> list[str]:
        first = self.code.split("\n", 1)[0]
        found = NEEDS.match(first)
        if found is None:
            return []
        return [name.strip() for name in found.group("services").split(",") if name.strip()]


def is_program(block: Block) -> bool:
    return block.lang == "python" and block.module is None


def parse_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order (fences may be indented, as in lists)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks, info = opening.group("indent", "ticks", "info")
        words = info.strip().split(None, 1)
        lang = words[0] if words else ""
        title = TITLE.search(info)
        start = index + 1  # 1-based line of the opening fence
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != ticks:
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        assert index < len(lines), f"{page}:{start}: unclosed code block"
        blocks.append(
            Block(page, start, lang, title.group("title") if title else None, "\n".join(body))
        )
        index += 1
    for before, after in itertools.pairwise(blocks):
        if is_program(before) and after.lang == "text" and after.title == "Output":
            before.output = after
    return blocks


BLOCKS = {page: parse_blocks(page) for page in PAGES}
ALL = [block for blocks in BLOCKS.values() for block in blocks]


def block_id(block: Block) -> str:
    return block.where


# -- running the programs of a page, in order, once ------------------------------------


@dataclass(slots=True)
class PageRun:
    """The scratch directory of one page and the outcome of each block run so far."""

    directory: Path
    outcomes: dict[int, subprocess.CompletedProcess[str] | str] = field(default_factory=dict)


class DocsRunner:
    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._pages: dict[Path, PageRun] = {}

    def run_through(self, block: Block) -> subprocess.CompletedProcess[str] | str:
        """Run the page's blocks up to `block` (each once); `block`'s outcome.

        An outcome is the finished process, or the reason it was skipped (a server
        it needs is not reachable).
        """
        page = self._pages.get(block.page)
        if page is None:
            name = re.sub(r"[^a-z0-9]+", "-", str(block.page.relative_to(DOCS)).lower())
            page = self._pages[block.page] = PageRun(self._factory.mktemp(name))
        for earlier in BLOCKS[block.page]:
            if earlier.line not in page.outcomes:
                page.outcomes[earlier.line] = self._run(earlier, page.directory)
            if earlier is block:
                break
        return page.outcomes[block.line]

    @staticmethod
    def _run(block: Block, directory: Path) -> subprocess.CompletedProcess[str] | str:
        if block.module is not None:
            compile(block.code, block.where, "exec")
            (directory / block.module).write_text(block.code + "\n", encoding="utf-8")
            return subprocess.CompletedProcess([], 0, "", "")
        if not is_program(block):
            return subprocess.CompletedProcess([], 0, "", "")
        for service in block.services:
            missing = service_missing(service)
            if missing:
                return missing
        env = {**os.environ, "PYTHONPATH": str(directory), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        env.pop("PENGUIFLOW_STORE", None)  # the default store: .penguiflow/ in `directory`
        return subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )


def service_missing(service: str) -> str:
    """Why `service` cannot be used ("" when its port on 127.0.0.1 answers)."""
    assert service in SERVICES, f"unknown service {service!r} in '# needs:'"
    name, port = SERVICES[service]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return ""
    except OSError as exc:
        return f"{name}|{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def docs_runner(tmp_path_factory: pytest.TempPathFactory) -> DocsRunner:
    return DocsRunner(tmp_path_factory)


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "python"], ids=block_id)
def test_python_block_runs(block: Block, docs_runner: DocsRunner) -> None:
    outcome = docs_runner.run_through(block)
    if isinstance(outcome, str):
        service, reason = outcome.split("|", 1)
        unavailable(f"{service} (needed by {block.where})", ConnectionError(reason))
        return  # unavailable() skips, or fails with CI=true
    assert outcome.returncode == 0, (
        f"{block.where} exited with {outcome.returncode}\n"
        f"--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    )
    if block.output is not None:
        expected = "\n".join(line.rstrip() for line in block.output.code.rstrip().splitlines())
        actual = "\n".join(line.rstrip() for line in outcome.stdout.rstrip().splitlines())
        assert actual == expected, f"{block.where}: the output differs from {block.output.where}"


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "py"], ids=block_id)
def test_not_run_block_compiles(block: Block) -> None:
    assert block.code.startswith("# not run: "), (
        f"{block.where}: a ```py block must start with '# not run: <why>'"
    )
    compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_fence_follows_a_convention() -> None:
    known = {"python", "py", "bash"} | SHOWN_ONLY
    strays = [f"{b.where}: ```{b.lang}" for b in ALL if b.lang not in known]
    assert not strays, "unknown code block kinds (see this module's docstring):\n" + "\n".join(
        strays
    )
    outputs = [b for b in ALL if b.lang == "text" and b.title == "Output"]
    attached = {id(b.output) for b in ALL if b.output is not None}
    loose = [b.where for b in outputs if id(b) not in attached]
    assert not loose, f"Output blocks that follow no python program: {loose}"
    for block in ALL:
        if block.lang == "python" and block.services:
            assert set(block.services) <= set(SERVICES), block.where


def test_the_docs_have_runnable_examples() -> None:
    assert len(PAGES) >= 20
    assert sum(1 for b in ALL if is_program(b)) >= 15
    assert sum(1 for b in ALL if b.output is not None) >= 8


# -- shell blocks: what they name exists ----------------------------------------------


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block, continuation lines joined, comments dropped."""
    commands: list[list[str]] = []
    text = block.code.replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


SHELL = [(b, words) for b in ALL if b.lang == "bash" for words in shell_commands(b)]
MAKE_TARGETS = set(
    re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
)
EXTRAS = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
)


def program_of(words: list[str]) -> tuple[str, list[str]]:
    """The program a command runs and its arguments, past `VAR=value` and `.venv/bin/`."""
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    assert words, "a command that only sets variables"
    return words[0].removeprefix(".venv/bin/"), words[1:]


@pytest.mark.parametrize(("block", "words"), SHELL, ids=[f"{b.where}:{w[0]}" for b, w in SHELL])
def test_shell_command_names_what_exists(block: Block, words: list[str]) -> None:
    program, args = program_of(words)
    if program == "make":
        assert args, f"{block.where}: a bare make"
        assert set(args) <= MAKE_TARGETS, f"{block.where}: no such make target in {args}"
    elif program in ("penguiflow", "penguiflow-admin"):
        penguiflow_command_exists(block, program, args)
    elif program in ("python", "python3"):
        if args[:1] == ["-m"]:
            assert importlib.util.find_spec(args[1]) is not None, f"{block.where}: {args[1]}"
        else:
            assert args, f"{block.where}: python with nothing to run"
            assert (ROOT / args[0]).is_file(), f"{block.where}: no script {args[0]} in the repo"
    elif program == "pip":
        for word in args:
            found = re.match(r"^(?:\.|penguiflow)\[(?P<extras>[^\]]+)\]$", word)
            if found:
                names = set(found.group("extras").split(","))
                assert names <= EXTRAS, f"{block.where}: unknown extras {names - EXTRAS}"
    else:
        pytest.fail(f"{block.where}: shell blocks show penguiflow, make, python or pip only")


def penguiflow_command_exists(block: Block, program: str, args: list[str]) -> None:
    """`penguiflow SUB [SUBSUB] --help` exits 0: the (sub)command exists."""
    if program == "penguiflow-admin":
        from penguiflow.admin import main as admin_main

        path = args[:1]
        run = admin_main
    else:
        from penguiflow.cli import main as cli_main

        path = args[:2] if args[:1] == ["trace"] else args[:1]
        run = cli_main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code: object = run([*path, "--help"])
        except SystemExit as exit_:  # argparse's --help
            code = exit_.code
    assert code in (0, None), f"{block.where}: {program} {' '.join(path)}: {out.getvalue()}"


# -- the pages speak of this repository only ------------------------------------------


def test_no_page_cites_specification_sections() -> None:
    """Behaviour is described in words (compatibility.md most of all), never as a
    section number of a document outside the repository."""
    cited = r"§|\bsections? \d+(?:\.\d+)*\b|\bspec/\w+\.md\b"
    citations = [
        f"{page.relative_to(DOCS)}: {found}"
        for page in PAGES
        for found in re.findall(rf".{{0,30}}(?:{cited}).{{0,30}}", page.read_text(encoding="utf-8"))
    ]
    assert not citations, "describe the behaviour instead of citing sections:\n" + "\n".join(
        citations
    )
