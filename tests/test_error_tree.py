"""One tree of errors: every exception class of the package is a `PenguiflowError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import penguiflow
import penguiflow_a2a
from penguiflow.errors import PenguiflowError

# Exceptions used as control flow inside one component, never seen by callers.
CONTROL_FLOW: set[str] = {
    # ctx.pause() raises it for the planner loop to catch. Deliberately not a
    # PenguiflowError: a tool catching penguiflow's errors around ctx.pause() must
    # not swallow the pause.
    "penguiflow.planner.pause.PauseSignal",
}


def exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (penguiflow, penguiflow_a2a):
        names = [package.__name__]
        names += [
            info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        ]
        for name in names:
            if name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == name
                ):
                    found[f"{name}.{value.__qualname__}"] = value
    return found


CLASSES = exception_classes()


def test_every_error_joins_the_root() -> None:
    outside = sorted(
        path
        for path, cls in CLASSES.items()
        if not issubclass(cls, PenguiflowError) and path not in CONTROL_FLOW
    )
    assert outside == []


def test_the_root_docstring_draws_every_public_error() -> None:
    tree = penguiflow.errors.__doc__ or ""
    missing = sorted(
        cls.__name__
        for path, cls in CLASSES.items()
        if not cls.__name__.startswith("_")
        and path not in CONTROL_FLOW
        and cls.__name__ not in tree
    )
    assert missing == []


@pytest.mark.parametrize(
    ("path", "builtin"),
    [
        ("penguiflow.errors.UnknownTargetError", KeyError),
        ("penguiflow.errors.NodeSignatureError", ValueError),
        ("penguiflow.errors.RegistryCoverageError", RuntimeError),
        ("penguiflow.errors.FlowStoppedError", RuntimeError),
        ("penguiflow.errors.InvalidArgumentError", ValueError),
        ("penguiflow.errors.NotFoundError", KeyError),
        ("penguiflow.errors.FlowAssertionError", AssertionError),
        ("penguiflow._runtime.graph.CycleError", RuntimeError),
        ("penguiflow.state.errors.ResumeTokenError", KeyError),
        ("penguiflow.errors.StateStoreError", RuntimeError),
        ("penguiflow.state.errors.StateFileNotFoundError", FileNotFoundError),
        ("penguiflow.transports.url_policy.UnsafeURLError", ValueError),
        ("penguiflow.planner.clients.retry.LLMError", RuntimeError),
    ],
)
def test_errors_keep_the_builtin_base_existing_code_catches(
    path: str, builtin: type[BaseException]
) -> None:
    assert issubclass(CLASSES[path], builtin)


def test_foreign_code_can_catch_everything_with_one_except() -> None:
    from penguiflow import ModelRegistry

    with pytest.raises(PenguiflowError) as info:
        ModelRegistry().adapters("ghost")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "\"Node 'ghost' not registered\""
