"""Run an A2A app with uvicorn; binds 127.0.0.1 unless told otherwise.

`python -m penguiflow_a2a.serve pkg.module:build_app --port 8000` serves the app
(or app factory) named by `module:attribute`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from penguiflow.errors import MissingExtraError, PenguiflowError

__all__ = ["serve", "main", "DEFAULT_HOST"]

DEFAULT_HOST = "127.0.0.1"


def serve(app: Any, *, host: str = DEFAULT_HOST, port: int = 8000, **uvicorn_options: Any) -> None:
    """Serve `app` until interrupted. Exposing it beyond loopback takes an explicit `host`.

    Prints `serving on http://HOST:PORT` once the socket is bound (not before).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(
            "uvicorn is required to serve the A2A app. Install penguiflow[a2a-server].",
            extra="a2a-server",
        ) from exc

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"penguiflow_a2a.serve: serving on http://{host}:{port}", flush=True)

    Announcing(uvicorn.Config(app, host=host, port=port, **uvicorn_options)).run()


class _UsageError(PenguiflowError):
    """A mistake on the command line: one line for the user, exit status 2."""


_PROG = "python -m penguiflow_a2a.serve"
_USAGE_FIX = (
    f"run {_PROG} MODULE:ATTR [--host HOST] [--port PORT], MODULE:ATTR naming an ASGI app "
    "(or a function returning one)"
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what, then how to fix."""

    def error(self, message: str) -> NoReturn:
        print(f"penguiflow_a2a.serve: {message}; {_USAGE_FIX}", file=sys.stderr)
        raise SystemExit(2)


def _load(spec: str) -> Any:
    """The ASGI app `spec` (`package.module:attribute`) names, calling a factory."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise _UsageError(f"app must be given as 'package.module:attribute', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise _UsageError(
                f"{spec!r}: no module named {exc.name!r} (is it on PYTHONPATH?)"
            ) from None
        raise  # the module exists, but something it imports is missing: its own traceback
    target = getattr(module, attr, None)
    if target is None:
        raise _UsageError(f"{spec!r}: module {module_name!r} has no attribute {attr!r}")
    made = callable(target) and not _is_asgi_app(target)
    app = target() if made else target
    if not _is_asgi_app(app):
        what = "returned" if made else "is"
        raise _UsageError(
            f"{spec!r} {what} a {type(app).__name__}, not an ASGI app: name the app "
            "create_a2a_app(adapter) returns, or a function returning it"
        )
    return app


def _is_asgi_app(value: Any) -> bool:
    """An app object (FastAPI, Starlette) rather than a factory: it has routes or is an
    ASGI callable taking `(scope, receive, send)`."""
    if hasattr(value, "router"):
        return True
    call = getattr(value, "__call__", None)  # noqa: B004 - the signature is what matters
    if call is None or isinstance(value, type):
        return False
    try:
        parameters = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return len(parameters) == 3 and inspect.iscoroutinefunction(call)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: prints the URL it serves on, and one line (exit
    status 2) for a mistake such as an app that cannot be found."""
    parser = _Parser(prog=_PROG)
    parser.add_argument("app", help="module:attribute naming an ASGI app or a factory")
    parser.add_argument("--host", default=DEFAULT_HOST, help="default: 127.0.0.1 (loopback)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        app = _load(args.app)
    except (_UsageError, MissingExtraError) as exc:
        print(f"penguiflow_a2a.serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
