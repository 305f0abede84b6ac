"""Run an A2A app with uvicorn; binds 127.0.0.1 unless told otherwise.

`python -m penguiflow_a2a.serve pkg.module:build_app --port 8000` serves the app
(or app factory) named by `module:attribute`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

from penguiflow.errors import MissingExtraError

__all__ = ["serve", "main", "DEFAULT_HOST"]

DEFAULT_HOST = "127.0.0.1"


def serve(app: Any, *, host: str = DEFAULT_HOST, port: int = 8000, **uvicorn_options: Any) -> None:
    """Serve `app` until interrupted. Exposing it beyond loopback takes an explicit `host`."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(
            "uvicorn is required to serve the A2A app. Install penguiflow[a2a-server].",
            extra="a2a-server",
        ) from exc
    uvicorn.run(app, host=host, port=port, **uvicorn_options)


def _load(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"app must be given as 'package.module:attribute', got {spec!r}")
    target = getattr(importlib.import_module(module_name), attr, None)
    if target is None:
        raise SystemExit(f"{spec!r}: module has no attribute {attr!r}")
    return target() if callable(target) and not hasattr(target, "router") else target


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m penguiflow_a2a.serve")
    parser.add_argument("app", help="module:attribute naming an ASGI app or a factory")
    parser.add_argument("--host", default=DEFAULT_HOST, help="default: 127.0.0.1 (loopback)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    serve(_load(args.app), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
