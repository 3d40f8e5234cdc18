"""`pllm serve --http`, the OpenAI-compatible endpoint, with the fake models: the token, the models, the
completion whole and streamed (the SSE wire format), the queue (429), no CORS, loopback only. The real models
and the real `openai` client: test_serve_http_e2e.py."""

from __future__ import annotations

import http.client
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeChatModel
from serve_support import InProcessServer

from pllm_cli.errors import InputError
from pllm_cli.paths import Paths
from pllm_cli.server.access import parse_address, read_or_create_token
from pllm_cli.server.server import Server

QUESTION = "Who is my manager?"
LONG_ANSWER = "Your manager is Karin Ek, and the project deadline is the 30th of June this year."


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "work.md").write_text("# Work\n\nMy manager is Karin Ek. Deadline 30 June.\n", encoding="utf-8")
    (folder / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    return folder


@pytest.fixture
def ingested(run: Any, fake_models: FakeChatModel, notes: Path) -> Path:
    result = run("ingest", notes)
    assert result.exit_code == 0, result.stderr
    return notes


@pytest.fixture
def serving(home: Path, fake_models: FakeChatModel) -> Iterator[Server]:
    running = InProcessServer(home, http=("127.0.0.1", 0))
    yield running.server
    running.stop()


class Endpoint:
    """Plain HTTP to the server's endpoint, as any client sends it."""

    def __init__(self, server: Server) -> None:
        url = str(server.status()["http"])
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        self.port = int(url.removeprefix("http://127.0.0.1:").removesuffix("/v1"))
        self.token = read_or_create_token(server.app.paths.serve_token_file)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = "", **headers: str
    ) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers)
        if token is not None:
            sent["Authorization"] = f"Bearer {token or self.token}"
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            sent["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=sent)
        return connection.getresponse()

    def json(self, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any) -> tuple[int, Any]:
        response = self.request(method, path, body, **kw)
        return response.status, json.loads(response.read())

    def complete(self, **fields: Any) -> tuple[int, Any]:
        body = {"model": "pllm", "messages": [{"role": "user", "content": QUESTION}], **fields}
        return self.json("POST", "/v1/chat/completions", body)


def events(response: http.client.HTTPResponse) -> list[Any]:
    """The server-sent events of a stream: each `data: ...` followed by a blank line; [DONE] as the string."""
    raw = response.read().decode()
    assert raw.endswith("\n\n")
    blocks = raw[:-2].split("\n\n")
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks), raw
    return [b[6:] if b == "data: [DONE]" else json.loads(b[6:]) for b in blocks]


def gate_the_model(model: FakeChatModel) -> threading.Event:
    """The model gives a long answer and waits after its first words until the event is set."""
    model.answer = LONG_ANSWER
    gate = threading.Event()
    stream = model.stream

    def gated(*args: Any, **kwargs: Any) -> Iterator[str]:
        for number, piece in enumerate(stream(*args, **kwargs)):
            yield piece
            if number == 12 and not gate.is_set():
                assert gate.wait(60), "the test never opened the gate"

    model.stream = gated  # type: ignore[method-assign]
    return gate


def wait_for(condition: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


# --- the token ------------------------------------------------------------------------------------


def test_every_request_needs_the_token(ingested: Path, serving: Server) -> None:
    endpoint = Endpoint(serving)
    for token in (None, "wrong", endpoint.token + "x"):
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/nothing")):
            body = {"model": "pllm", "messages": [{"role": "user", "content": QUESTION}]} if method == "POST" else None
            response = endpoint.request(method, path, body, token=token)
            assert response.status == 401, (token, path)
            assert response.getheader("WWW-Authenticate") == 'Bearer realm="pllm"'
            error = json.loads(response.read())["error"]
            assert error["code"] == "invalid_api_key" and "pllm serve --token" in error["message"]
    assert serving.status()["requests_served"] == 0, "nothing reached the worker"


def test_the_token_is_made_once_private_and_printed_by_serve_token(run: Any, home: Path) -> None:
    printed = run("serve", "--token")
    assert printed.exit_code == 0, printed.stderr
    token_file = Paths.resolve(home).serve_token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert printed.stdout == token_file.read_text() and len(printed.stdout.strip()) >= 40
    assert run("serve", "--token").stdout == printed.stdout, "the same token every time"


# --- models, completions --------------------------------------------------------------------------


def test_models_are_listed_and_an_unknown_one_is_404(ingested: Path, serving: Server) -> None:
    endpoint = Endpoint(serving)
    status, listed = endpoint.json("GET", "/v1/models")
    assert status == 200 and listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["pllm", "pllm-no-memory", "pllm-plain"]
    assert all(m["object"] == "model" and m["owned_by"] == "pllm" for m in listed["data"])
    assert endpoint.json("GET", "/v1/models/pllm")[1]["id"] == "pllm"
    status, body = endpoint.complete(model="gpt-4o")
    assert status == 404
    assert body["error"]["code"] == "model_not_found" and "gpt-4o" in body["error"]["message"]
    assert endpoint.json("GET", "/v1/models/gpt-4o")[0] == 404


def test_a_completion_is_the_answer_pllm_ask_gives(
    run: Any, ingested: Path, serving: Server, fake_models: FakeChatModel
) -> None:
    alone = run("--no-server", "ask", "--json", "--seed", "1", QUESTION)
    assert alone.exit_code == 0, alone.stderr
    expected = json.loads(alone.stdout)
    status, body = Endpoint(serving).complete(seed=1)
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "pllm" and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": expected["answer"]}
    assert expected["answer"] == "Your manager is Karin Ek. [1]"
    assert body["pllm_sources"] == expected["sources"] and body["pllm_sources"][0]["source"].endswith("work.md")
    usage = body["usage"]
    assert usage["prompt_tokens"] == expected["prompt"]["tokens"]["prompt_total"] > 0
    assert usage["completion_tokens"] == expected["completion_pieces"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert fake_models.calls[-1] == {**fake_models.calls[-2]}, "the same prompt, settings and seed"


def test_the_conversation_temperature_max_tokens_and_seed_reach_the_model(
    ingested: Path, serving: Server, fake_models: FakeChatModel
) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
    ]
    status, body = Endpoint(serving).complete(messages=messages, temperature=0.7, max_tokens=3, seed=42)
    assert status == 200, body
    call = fake_models.calls[-1]
    assert (call["max_tokens"], call["temperature"], call["seed"]) == (3, 0.7, 42)
    prompt = [(m.role, m.content) for m in call["messages"]]
    assert ("user", "Hello there") in prompt and ("assistant", "Hi! How can I help?") in prompt
    assert not any("helpful assistant" in content for _, content in prompt), "pllm's own system prompt"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"].startswith("Your manager is")


def test_pllm_no_memory_uses_no_memories(ingested: Path, serving: Server) -> None:
    status, body = Endpoint(serving).complete(model="pllm-no-memory")
    assert status == 200, body
    assert body["pllm_sources"] == [] and body["model"] == "pllm-no-memory"
    assert body["choices"][0]["message"]["content"] == "Your manager is Karin Ek."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "pllm", "messages": []}, "non-empty list"),
        ({"model": "pllm", "messages": [{"role": "assistant", "content": "hi"}]}, "the user's question"),
        ({"model": "pllm", "messages": [{"role": "user", "content": "q"}], "n": 2}, "one choice"),
        ({"model": "pllm", "messages": [{"role": "user", "content": "q"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "pllm", "messages": [{"role": "user", "content": "   "}]}, "the question is empty"),
        ({"messages": [{"role": "user", "content": "q"}]}, "model is required"),
    ],
)
def test_a_bad_request_is_400_with_an_openai_error(
    ingested: Path, serving: Server, body: dict[str, Any], message: str
) -> None:
    status, answer = Endpoint(serving).json("POST", "/v1/chat/completions", body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error" and message in answer["error"]["message"]


def test_a_stream_is_server_sent_chunks_ending_with_done(
    ingested: Path, serving: Server, fake_models: FakeChatModel
) -> None:
    fake_models.answer = LONG_ANSWER + " She said so at the weekly meeting on Monday, and again in her mail on Friday."
    endpoint = Endpoint(serving)
    expected = endpoint.complete(seed=1)[1]
    body = {
        "model": "pllm",
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": True,
        "seed": 1,
        "stream_options": {"include_usage": True},
    }
    response = endpoint.request("POST", "/v1/chat/completions", body)
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    received = events(response)
    assert received[-1] == "[DONE]"
    *chunks, usage_chunk = received[:-1]
    assert {c["object"] for c in received[:-1]} == {"chat.completion.chunk"}
    assert len({c["id"] for c in received[:-1]}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == expected["choices"][0]["message"]["content"]
    assert len(chunks) >= 5, "piece by piece"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["pllm_sources"] == expected["pllm_sources"] != []
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == expected["usage"]


def test_a_full_queue_is_429_and_no_stream_is_cut_off(
    run: Any, ingested: Path, home: Path, fake_models: FakeChatModel
) -> None:
    assert run("config", "set", "serve_queue", "1").exit_code == 0
    gate = gate_the_model(fake_models)
    running = InProcessServer(home, http=("127.0.0.1", 0))
    server = running.server
    try:
        endpoint = Endpoint(server)
        streamed: dict[str, Any] = {}
        body = {"model": "pllm", "messages": [{"role": "user", "content": QUESTION}], "stream": True}

        def first() -> None:
            streamed["events"] = events(endpoint.request("POST", "/v1/chat/completions", body))

        def second() -> None:
            streamed["second"] = endpoint.complete()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        threads[0].start()
        wait_for(lambda: server.status()["answering"] == "ask", "the first question is being answered")
        threads[1].start()
        wait_for(lambda: server.status()["queued"] == 1, "the second question waits in the queue")
        status, refused = endpoint.complete()
        assert status == 429
        assert refused["error"]["type"] == "rate_limit_error"
        assert "the pllm server is busy: its queue is full (1 waiting)" in refused["error"]["message"]
        gate.set()
        for thread in threads:
            thread.join(60)
        chunks = streamed["events"][:-1]
        assert streamed["events"][-1] == "[DONE]"
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == LONG_ANSWER + " [1]"
        assert streamed["second"][0] == 200
        assert streamed["second"][1]["choices"][0]["message"]["content"] == LONG_ANSWER + " [1]"
    finally:
        gate.set()
        running.stop()


def test_a_client_that_leaves_a_stream_stops_its_answer(
    ingested: Path, serving: Server, fake_models: FakeChatModel
) -> None:
    gate = gate_the_model(fake_models)
    fake_models.answer = LONG_ANSWER + "".join(f" word{n}" for n in range(300))
    closed = threading.Event()
    given: list[str] = []
    stream = fake_models.stream

    def watched(*args: Any, **kwargs: Any) -> Iterator[str]:
        try:
            for piece in stream(*args, **kwargs):
                given.append(piece)
                yield piece
        finally:
            closed.set()

    fake_models.stream = watched  # type: ignore[method-assign]
    endpoint = Endpoint(serving)
    body = {"model": "pllm", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    response = endpoint.request("POST", "/v1/chat/completions", body)
    assert response.status == 200 and response.readline().startswith(b"data: {")
    response.close()  # the editor's Stop button
    wait_for(lambda: serving.status()["answering"] == "ask", "it is being answered")
    gate.set()
    assert closed.wait(10), "the model's stream was closed"
    assert len(given) < 100, "stopped, not generated to the end"
    wait_for(lambda: serving.status()["answering"] is None, "the worker is free")
    fake_models.answer = LONG_ANSWER
    status, again = endpoint.complete()
    assert status == 200 and again["choices"][0]["message"]["content"] == LONG_ANSWER + " [1]"


# --- no CORS, loopback only -----------------------------------------------------------------------


def test_no_cors_headers_are_sent(ingested: Path, serving: Server) -> None:
    endpoint = Endpoint(serving)
    origin = {"Origin": "https://evil.example"}
    answers = [
        endpoint.request("GET", "/v1/models", **origin),
        endpoint.request("GET", "/v1/models", token=None, **origin),
        endpoint.request("OPTIONS", "/v1/chat/completions", token=None, **origin),
        endpoint.request(
            "POST",
            "/v1/chat/completions",
            {"model": "pllm", "messages": [{"role": "user", "content": QUESTION}]},
            **origin,
        ),
    ]
    for response in answers:
        response.read()
        assert not [name for name, _ in response.getheaders() if name.lower().startswith("access-control-")]
    assert answers[2].status >= 400, "no preflight is answered"


@pytest.mark.parametrize("address", ["127.0.0.1:8642", "localhost:8642", "[::1]:8642", "8642", "127.0.0.5:0"])
def test_loopback_addresses_are_taken(address: str) -> None:
    host, port = parse_address(address)
    assert port in (8642, 0) and host in ("127.0.0.1", "localhost", "::1", "127.0.0.5")


@pytest.mark.parametrize("address", ["0.0.0.0:8642", "192.168.1.10:8642", "[::]:8642", "example.org:80"])
def test_other_addresses_need_allow_remote(run: Any, address: str) -> None:
    with pytest.raises(InputError, match="not a loopback address"):
        parse_address(address)
    assert parse_address(address, allow_remote=True)[1] == int(address.rsplit(":", 1)[1])
    refused = run("serve", "--http", address)
    assert refused.exit_code == 4
    assert "is not a loopback address" in refused.stderr and "--allow-remote" in refused.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("serve", "--http", "127.0.0.1:x"), "--http takes HOST:PORT or PORT"),
        (("serve", "--http", "127.0.0.1:99999"), "--http takes HOST:PORT or PORT"),
        (("serve", "--allow-remote"), "--allow-remote goes with --http"),
        (("serve", "--status", "--http", "8642"), "--http goes with pllm serve alone"),
        (("serve", "--token", "--stop"), "do not go together"),
    ],
)
def test_http_options_that_do_not_go_together(run: Any, argv: tuple[str, ...], message: str) -> None:
    result = run(*argv)
    assert result.exit_code == 4 and message in result.stderr, result.stderr
