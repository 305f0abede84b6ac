"""ScriptedLLMServer: an OpenAI-compatible server for offline tests, over real HTTP."""

from __future__ import annotations

import http.client
import json

import pytest

from penguiflow.testkit import ScriptedLLMServer, ServerReply


def post(server: ScriptedLLMServer, path: str = "/v1/chat/completions") -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_scripted_replies_come_back_in_openai_format_and_requests_are_recorded() -> None:
    with ScriptedLLMServer(
        ["first", ServerReply(content="second", usage={"total_tokens": 3})]
    ) as s:
        assert s.base_url == f"http://127.0.0.1:{s.port}/v1"
        status, _, raw = post(s)
        assert status == 200
        body = json.loads(raw)
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "first"}
        assert body["usage"]["total_tokens"] == 15
        assert json.loads(post(s)[2])["usage"] == {"total_tokens": 3}
        assert [r.body["messages"][0]["content"] for r in s.requests] == ["hi", "hi"]
        assert s.requests[0].headers["content-type"] == "application/json"


def test_faults_are_served_on_demand() -> None:
    replies = [
        ServerReply.rate_limited("7"),
        ServerReply.error(503),
        ServerReply.malformed(),
        ServerReply.empty(),
    ]
    with ScriptedLLMServer(replies) as s:
        status, headers, _ = post(s)
        assert (status, headers["Retry-After"]) == (429, "7")
        assert post(s)[0] == 503
        status, _, raw = post(s)
        assert status == 200
        assert raw == b'{"choices": [ {"message": '
        assert json.loads(post(s)[2])["choices"][0]["message"]["content"] is None


def test_a_reset_closes_the_connection_without_an_answer() -> None:
    server = ScriptedLLMServer([ServerReply.reset_connection()])
    with server, pytest.raises(ConnectionError):  # RemoteDisconnected is a ConnectionError
        post(server)


def test_unknown_paths_and_an_exhausted_script_answer_with_errors() -> None:
    with ScriptedLLMServer(default=None) as s:
        assert post(s, "/v1/other")[0] == 404
        status, _, raw = post(s)
        assert status == 500
        assert b"script is exhausted" in raw
    with ScriptedLLMServer(default="again") as s:
        assert [json.loads(post(s)[2])["choices"][0]["message"]["content"] for _ in "ab"] == [
            "again",
            "again",
        ]
