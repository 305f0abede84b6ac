"""Loading `MODULE:ATTR` targets named on the command line, with one-line errors."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from ._errors import USAGE, fail

FORM_FIX = "write it as package.module:name, e.g. my_agents:build_planner"


def split_spec(spec: str) -> tuple[str, str]:
    """`("module", "attr")` of `module:attr`; a user error for anything else."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise fail(f"{spec!r} is not of the form MODULE:ATTR", FORM_FIX, code=USAGE)
    return module, attr


def load_attribute(spec: str) -> Any:
    """The object `module:attr` names (`attr` may be dotted); the working directory is
    importable, as with `python -m`."""
    module_name, attr = split_spec(spec)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing == module_name or module_name.startswith(missing + "."):
            raise fail(
                f"no module named {module_name!r}",
                "check the name before the colon and run from the directory that holds it "
                "(or add that directory to PYTHONPATH)",
                code=USAGE,
            ) from exc
        raise fail(
            f"importing {module_name!r} failed: no module named {missing!r}",
            f"install {missing!r} (or fix the import in {module_name})",
        ) from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise fail(
                f"module {module_name!r} has no attribute {attr!r}",
                "check the name after the colon",
                code=USAGE,
            )
        target = getattr(target, part)
    return target


async def build(spec: str, target: Any, wanted: type, what: str) -> Any:
    """`target` if it is a `wanted`, else the result of calling it (awaited if need be).

    A user error naming `spec` when neither is a `wanted` (`what` describes it).
    """
    if isinstance(target, wanted):
        return target
    wrong = fail(
        f"{spec} is a {type(target).__name__}, not {what} or a factory returning one",
        f"point {spec.split(':', 1)[0]}:... at {what} or a zero-argument function building one",
        code=USAGE,
    )
    if (
        inspect.isclass(target)
        or inspect.isbuiltin(target)
        or not callable(target)
        or not takes_no_arguments(target)
    ):
        raise wrong
    made = target()
    if inspect.isawaitable(made):
        made = await made
    if not isinstance(made, wanted):
        raise fail(
            f"{spec} returned a {type(made).__name__}, not {what}",
            f"make {spec} return {what}",
            code=USAGE,
        )
    return made


def takes_no_arguments(function: Any) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )
