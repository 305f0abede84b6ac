"""An OpenAI-compatible scripted LLM server on 127.0.0.1, for testing agents offline.

Serves `POST /v1/chat/completions` from a script of replies and injects faults on
demand (rate limits with `Retry-After`, 5xx, slow replies, connection resets,
malformed JSON, empty content), so real clients (LiteLLM, httpx, the OpenAI SDK)
run their real retry and timeout code against it. Standard library only.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedRequest", "ScriptedLLMServer", "ServerReply"]


@dataclass(slots=True)
class ServerReply:
    """One scripted answer: a completion, or a fault.

    Build faults with the class methods: `rate_limited`, `error`, `slow`,
    `reset_connection`, `dropped_connection`, `malformed`, `malformed_chunk`, `empty`.
    `usage` is sent as the completion's `usage` object as given (token counts, a
    provider cost such as `{"cost": 0.0021}`, nested details); `None` sends 10 prompt +
    5 completion tokens. `drop_after_chunks=N` makes a streamed answer
    (`"stream": true`) close the connection after its first N content chunks;
    `raw_events` replaces a streamed answer's events (whole `data: ...` lines).
    """

    content: str | None = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    usage: Mapping[str, Any] | None = None
    raw_body: bytes | None = None
    reset: bool = False
    dropped: bool = False
    drop_after_chunks: int | None = None
    raw_events: tuple[bytes, ...] | None = None

    @classmethod
    def rate_limited(cls, retry_after: str | None = "0") -> ServerReply:
        """429, with a `Retry-After` header (seconds or an HTTP date) unless `None`."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = json.dumps({"error": {"message": "rate limited", "type": "rate_limit"}})
        return cls(status=429, headers=headers, raw_body=body.encode())

    @classmethod
    def error(cls, status: int = 500, message: str = "server error") -> ServerReply:
        """An HTTP error status with an OpenAI-style error body."""
        body = json.dumps({"error": {"message": message, "type": "server_error"}})
        return cls(status=status, raw_body=body.encode())

    @classmethod
    def slow(cls, delay_s: float, content: str = "{}") -> ServerReply:
        """A completion that arrives after `delay_s` seconds."""
        return cls(content=content, delay_s=delay_s)

    @classmethod
    def reset_connection(cls) -> ServerReply:
        """Close the connection with a TCP reset and send nothing."""
        return cls(reset=True)

    @classmethod
    def dropped_connection(cls) -> ServerReply:
        """Close the connection in order and send nothing: what a client meets when the
        server had dropped the kept-alive connection it sent the request on."""
        return cls(dropped=True)

    @classmethod
    def malformed(cls) -> ServerReply:
        """A 200 whose body is not JSON."""
        return cls(raw_body=b'{"choices": [ {"message": ')

    @classmethod
    def malformed_chunk(cls, content: str = "{}") -> ServerReply:
        """Streamed, a role chunk then a chunk that is not JSON; else `content`."""
        role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        events = (b"data: " + json.dumps(role).encode() + b"\n\n", b'data: {"choices": [\n\n')
        return cls(content=content, raw_events=events)

    @classmethod
    def empty(cls, content: str | None = None) -> ServerReply:
        """A completion without content (`null` by default, or `""`)."""
        return cls(content=content)


@dataclass(slots=True)
class RecordedRequest:
    """What a client sent (header names lower-cased), and for a streamed answer when
    each event went out (`sent_at`: `time.perf_counter()` readings, one per event)."""

    path: str
    headers: dict[str, str]
    body: Any
    sent_at: list[float] = field(default_factory=list)


class _Exchange:
    """What the request handler shares with its server: the script and the request log."""

    __slots__ = ("chunk_chars", "chunk_delay_s", "default", "lock", "model", "requests", "script")

    def __init__(
        self,
        replies: Iterable[str | ServerReply],
        default: str | ServerReply | None,
        model: str,
        chunk_chars: int = 4,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.script: deque[str | ServerReply] = deque(replies)
        self.default = default
        self.model = model
        self.chunk_chars = chunk_chars
        self.chunk_delay_s = chunk_delay_s
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []

    def record(self, request: RecordedRequest) -> None:
        """Log a request (handler threads run concurrently)."""
        with self.lock:
            self.requests.append(request)

    def add(self, replies: Iterable[str | ServerReply]) -> None:
        """Append replies to the script."""
        with self.lock:
            self.script.extend(replies)

    def next_reply(self) -> ServerReply:
        """The next scripted reply, the default once exhausted, else a 500 saying so."""
        with self.lock:
            item = self.script.popleft() if self.script else self.default
        if item is None:
            return ServerReply.error(500, "ScriptedLLMServer: the script is exhausted")
        return item if isinstance(item, ServerReply) else ServerReply(content=item)

    @staticmethod
    def usage_of(reply: ServerReply) -> dict[str, Any]:
        """The `usage` object sent with `reply`."""
        if reply.usage is not None:
            return dict(reply.usage)
        return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

    def stream_events(self, reply: ServerReply, include_usage: bool) -> list[bytes]:
        """The server-sent events of `reply` streamed: content chunks, the finish
        chunk, the usage chunk (when asked for) and `[DONE]`."""
        ident = f"chatcmpl-{len(self.requests)}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None, **more: Any) -> bytes:
            body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **more,
            }
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        text = reply.content or ""
        size = max(self.chunk_chars, 1)
        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": text[i : i + size]}, None) for i in range(0, len(text), size)]
        events.append(chunk({}, "stop"))
        if include_usage:
            usage = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [],
                "usage": self.usage_of(reply),
            }
            events.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    def completion(self, reply: ServerReply) -> bytes:
        """The OpenAI-style chat completion body carrying `reply`."""
        usage = self.usage_of(reply)
        body = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return json.dumps(body).encode()


class ScriptedLLMServer:
    """Serve scripted completions on 127.0.0.1 (ephemeral port by default).

    `replies` are strings (the completion content) or `ServerReply`s; `default` is
    used once the script is exhausted (otherwise the server answers 500 with an
    explanation). Every request is recorded in `requests`. Use as a context manager,
    sync or async; `base_url` is the `.../v1` URL clients take.

    A request with `"stream": true` is answered with server-sent events in OpenAI's
    chunk format: the content split into pieces of `chunk_chars` characters, sent
    `chunk_delay_s` seconds apart, then a chunk with `finish_reason`, a usage chunk
    when `stream_options.include_usage` is set, and `data: [DONE]`.
    """

    def __init__(
        self,
        replies: Iterable[str | ServerReply] = (),
        *,
        default: str | ServerReply | None = None,
        port: int = 0,
        model: str = "scripted-model",
        chunk_chars: int = 4,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self._exchange = _Exchange(replies, default, model, chunk_chars, chunk_delay_s)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self._exchange))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def model(self) -> str:
        """The model name reported in completions."""
        return self._exchange.model

    @model.setter
    def model(self, model: str) -> None:
        self._exchange.model = model

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        return self._exchange.requests

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *replies: str | ServerReply) -> None:
        """Append replies to the script."""
        self._exchange.add(replies)

    def start(self) -> ScriptedLLMServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name="scripted-llm-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedLLMServer:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(exchange: _Exchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes: without TCP_NODELAY, Nagle's
        # algorithm holds the body until the client's delayed ACK (about 40 ms a reply).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests assert on `requests`, not on stderr."""

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            request = RecordedRequest(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            exchange.record(request)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "not found"}}', {})
                return
            reply = exchange.next_reply()
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.reset:
                self._reset()
                return
            if reply.dropped:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if (
                isinstance(body, dict)
                and body.get("stream") is True
                and reply.status == 200
                and reply.raw_body is None
            ):
                options = body.get("stream_options")
                usage = isinstance(options, dict) and options.get("include_usage") is True
                events = reply.raw_events or exchange.stream_events(reply, usage)
                self._stream(reply, list(events), request.sent_at)
                return
            payload = reply.raw_body if reply.raw_body is not None else exchange.completion(reply)
            self._send(reply.status, payload, reply.headers)

        def _reset(self) -> None:
            """Close the connection with a TCP reset."""
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

        def _stream(self, reply: ServerReply, events: list[bytes], sent_at: list[float]) -> None:
            """Send `events` as a chunked `text/event-stream`, dropping when scripted."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                content_sent = 0
                for index, event in enumerate(events):
                    # events[0] is the role chunk; content chunks follow it.
                    drop = reply.drop_after_chunks
                    if drop is not None and index > 0 and content_sent >= drop:
                        # Closed without the stream's last chunk: everything sent so
                        # far reaches the client (a reset could discard unread data),
                        # then the body ends early.
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if index > 0 and exchange.chunk_delay_s:
                        time.sleep(exchange.chunk_delay_s)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                    sent_at.append(time.perf_counter())
                    if index > 0:
                        content_sent += 1
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _send(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (e.g. its timeout)

    return Handler
