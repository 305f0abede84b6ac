"""A2A over loopback: `message/send` round trip and `message/stream` ordering.

Two uvicorn servers run in separate processes on 127.0.0.1: the subject is
`create_a2a_app` serving a trivial one-node flow; the floor is a bare Starlette
endpoint that parses the same JSON-RPC body and answers it directly (no flow, no
task bookkeeping). One httpx client calls both, interleaved, so the ratio holds on
a noisy machine:

* round trip of `message/send` (JSON-RPC) and of the spec's `/message/send`: p50
  and p99 against the floor's (target: report);
* streaming: 200 chunks through `message/stream`, checked in order with no gaps,
  time per stream against a bare SSE endpoint sending 200 frames.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _common import Result, run_cli

HERE = Path(__file__).resolve().parent
CHUNKS = 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the two servers (run in child processes) -----------------------------------------


def subject_app() -> Any:
    from penguiflow import Message, Node, NodePolicy, create
    from penguiflow_a2a import A2AServerAdapter, create_a2a_app

    async def echo(message: Message, ctx: Any) -> Message:
        payload = message.payload
        if isinstance(payload, dict) and "chunks" in payload:
            count = int(payload["chunks"])
            for i in range(count):
                await ctx.emit_chunk(parent=message, text=f"c{i}", done=i == count - 1)
        return message.model_copy(update={"payload": {"echo": payload}})

    flow = create(Node(echo, name="echo", policy=NodePolicy(validate="none")).to())
    adapter = A2AServerAdapter(
        flow,
        agent_card={"name": "bench", "description": "echo"},
        agent_url="http://127.0.0.1",
        default_headers={"tenant": "bench"},
    )
    return create_a2a_app(adapter, include_docs=False)


def floor_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def rpc(request: Request) -> Response:
        body = json.loads(await request.body())
        params = body.get("params") or {}
        if body.get("method") == "message/stream":

            async def frames() -> Any:
                for i in range(CHUNKS):
                    event = {
                        "jsonrpc": "2.0",
                        "id": body["id"],
                        "result": {"seq": i, "text": f"c{i}"},
                    }
                    yield f"data: {json.dumps(event)}\n\n".encode()

            return StreamingResponse(frames(), media_type="text/event-stream")
        result = {"echo": params.get("message", params.get("payload"))}
        return Response(
            json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": result}),
            media_type="application/json",
        )

    return Starlette(
        routes=[Route("/", rpc, methods=["POST"]), Route("/message/send", rpc, methods=["POST"])]
    )


def _serve(kind: str, port: int) -> None:
    import uvicorn

    app = subject_app() if kind == "subject" else floor_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


# -- the client ------------------------------------------------------------------------


def _start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent / 'src'}"}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "bench_a2a.py"), "--serve", kind, str(port)], env=env
    )
    return process, f"http://127.0.0.1:{port}"


async def _wait_ready(client: Any, url: str) -> None:
    import httpx

    for _ in range(600):
        try:
            await client.post(f"{url}/", content=b"{}")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server at {url} did not start")


def _send_body(payload: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": uuid.uuid4().hex,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": uuid.uuid4().hex,
                "parts": [{"kind": "data", "data": payload}],
            }
        },
    }


async def _round_trips(client: Any, url: str, path: str, body: Any, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        reply = await client.post(f"{url}{path}", json=body() if callable(body) else body)
        reply.raise_for_status()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


async def _stream_once(client: Any, url: str, subject: bool) -> tuple[float, list[int]]:
    body = _send_body({"chunks": CHUNKS})
    body["method"] = "message/stream"
    seqs: list[int] = []
    start = time.perf_counter()
    async with client.stream("POST", f"{url}/", json=body) as reply:
        async for line in reply.aiter_lines():
            if not line.startswith("data: "):
                continue
            result = json.loads(line[6:])["result"]
            if subject:
                if (
                    result.get("kind") == "artifact-update"
                    and result["artifact"]["name"] == "stream"
                ):
                    seqs.append(int(result["artifact"]["metadata"]["seq"]))
            else:
                seqs.append(int(result["seq"]))
    return (time.perf_counter() - start) * 1e6, seqs


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(quick: bool) -> list[Result]:
    import httpx

    n = 40 if quick else 400
    rounds = 4 if quick else 10
    subject, subject_url = _start("subject")
    floor, floor_url = _start("floor")
    results: list[Result] = []
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await _wait_ready(client, subject_url)
            await _wait_ready(client, floor_url)
            rpc_s: list[float] = []
            rpc_f: list[float] = []
            spec_s: list[float] = []
            spec_f: list[float] = []
            for _ in range(rounds):  # interleaved batches
                rpc_s += await _round_trips(
                    client, subject_url, "/", lambda: _send_body({"q": 1}), n // rounds
                )
                rpc_f += await _round_trips(
                    client, floor_url, "/", lambda: _send_body({"q": 1}), n // rounds
                )
                spec_s += await _round_trips(
                    client, subject_url, "/message/send", {"payload": {"q": 1}}, n // rounds
                )
                spec_f += await _round_trips(
                    client, floor_url, "/message/send", {"payload": {"q": 1}}, n // rounds
                )
            for name, s, f in (
                ("JSON-RPC message/send", rpc_s, rpc_f),
                ("spec /message/send", spec_s, spec_f),
            ):
                p50, f50 = statistics.median(s), statistics.median(f)
                results.append(
                    Result(
                        name=f"a2a round trip: {name}",
                        subject=p50,
                        floor=f50,
                        unit="us",
                        ratio=p50 / f50,
                        target="report",
                        met=None,
                        note=f"p50 {p50:.0f} vs {f50:.0f} us; p99 {pct(s, 0.99):.0f} vs "
                        f"{pct(f, 0.99):.0f} us ({len(s)} calls; floor: bare Starlette echo)",
                    )
                )
            streams = 5 if quick else 30
            times_s, times_f, bad = [], [], 0
            for _ in range(streams):
                elapsed, seqs = await _stream_once(client, subject_url, subject=True)
                times_s.append(elapsed)
                bad += seqs != list(range(CHUNKS))
                elapsed, _ = await _stream_once(client, floor_url, subject=False)
                times_f.append(elapsed)
            p50, f50 = statistics.median(times_s), statistics.median(times_f)
            results.append(
                Result(
                    name=f"a2a message/stream: {CHUNKS} chunks",
                    subject=p50,
                    floor=f50,
                    unit="us",
                    ratio=p50 / f50,
                    target="in order, no gaps",
                    met=bad == 0,
                    note=f"{streams} streams, {bad} out of order or with gaps; "
                    f"{p50 / CHUNKS:.0f} us/chunk vs {f50 / CHUNKS:.0f} (bare SSE frames)",
                )
            )
    finally:
        for process in (subject, floor):
            process.terminate()
            process.wait(timeout=10)
    return results


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(run_cli(__doc__ or "", main, "A2A over loopback"))
