"""Run llama-server on a free loopback port for the length of a `with` block."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["LlamaServer", "ServerError"]


class ServerError(RuntimeError):
    """llama-server did not start or did not become healthy (the message says why)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """`llama-server -m MODEL` on 127.0.0.1, healthy inside the block, stopped after it.

    `base_url` is the OpenAI-compatible root (`http://127.0.0.1:PORT/v1`). Each of
    the `slots` (concurrent requests) has a context of `ctx_size` tokens. Greedy
    decoding comes from the requests (temperature 0); `n_predict` caps every reply so
    a runaway string ends as a truncated (invalid) reply instead of filling the
    context. llama-server turns a request's `response_format` JSON schema into a
    grammar by itself.
    """

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        threads: int = 2,
        ctx_size: int = 8192,
        slots: int = 1,
        n_predict: int = 512,
        log_path: Path,
        startup_timeout_s: float = 300.0,
    ) -> None:
        self.binary = binary
        self.model = model
        self.threads = threads
        self.ctx_size = ctx_size
        self.slots = slots
        self.n_predict = n_predict
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ctx-size",
            str(self.ctx_size * self.slots),  # llama-server splits it between the slots
            "-np",
            str(self.slots),
            "-t",
            str(self.threads),
            "--n-predict",
            str(self.n_predict),
        ]

    def __enter__(self) -> LlamaServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            process = self._process
            if process is not None and process.poll() is not None:
                raise ServerError(
                    f"llama-server exited with {process.returncode} (log: {self.log_path})"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet, or still loading the model
            time.sleep(0.5)
        raise ServerError(
            f"llama-server not healthy after {self.startup_timeout_s:.0f}s (log: {self.log_path})"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
