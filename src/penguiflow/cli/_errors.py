"""User mistakes: one line on stderr, `penguiflow: <what was wrong>; <how to fix>`.

Only the errors a user can fix are caught (a wrong argument, a missing module or
extra, an unreachable server, an unknown run); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import InvalidArgumentError, MissingExtraError, PenguiflowError

USAGE = 2  # the command line was wrong
FAILED = 1  # the command was right, the work failed


class _UserError(PenguiflowError):
    """A mistake the user can fix: `what` went wrong, `fix` says what to do."""

    def __init__(self, what: str, fix: str, *, code: int = FAILED) -> None:
        super().__init__(f"{what}; {fix}")
        self.what = what
        self.fix = fix
        self.code = code


def fail(what: str, fix: str, *, code: int = FAILED) -> _UserError:
    """The error to raise for a user mistake (exit status `code`)."""
    return _UserError(what, fix, code=code)


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` came from `fail(...)`."""
    return isinstance(exc, _UserError)


def exit_code(exc: BaseException) -> int:
    """The exit status of a user error."""
    return exc.code if isinstance(exc, _UserError) else FAILED


def redact(url: str) -> str:
    """`url` without the password of its user part."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Turn the errors of opening or using the store at `url` into user errors."""
    from ..state.errors import StateFileNotFoundError, StateStoreError

    shown = redact(url)
    try:
        yield
    except MissingExtraError as exc:
        raise fail(
            f"the store {shown} needs the {exc.extra!r} extra",
            f"pip install 'penguiflow[{exc.extra}]'",
        ) from exc
    except StateFileNotFoundError as exc:
        raise fail(str(exc), "check --store or PENGUIFLOW_STORE") from exc
    except StateStoreError as exc:
        raise fail(
            f"{exc} (store {shown})",
            "check that the server is running and that --store or PENGUIFLOW_STORE names it",
        ) from exc
    except InvalidArgumentError as exc:
        raise fail(str(exc), "fix --store or PENGUIFLOW_STORE", code=USAGE) from exc
