"""The model behind an OpenAI-compatible server (model_url), against a fake server in a thread: streaming, the
grammar, token counting with and without a tokenizer endpoint, errors and an unreachable server. The same paths
against the real `python -m llama_cpp.server` are in test_model_server_e2e.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import free_port

from pllm_cli.errors import ConfigError, ExitCode, ModelError, UnreachableError
from pllm_cli.prompting import TEMPLATE_OVERHEAD
from pllm_cli.remote_model import GRAMMAR_PROBE, GRAMMAR_PROBE_ANSWER, OpenAIServerModel, sse_text
from pllm_cli.runtime import ChatMessage


class FakeServer:
    """What the handler answers, and every request it had (path, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.tokenizer: str | None = "/extras/tokenize"  # None: no tokenizer endpoint (as vLLM or Ollama)
        self.status = 200  # of /v1/chat/completions
        self.error = ""
        self.token = ""  # the bearer token it requires, if any
        self.grammar = True  # whether it applies the grammar field (vLLM and Ollama ignore it)
        self.pieces = ["Karin", " Ek", " is", " your manager."]
        self.url = ""


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, data: Any) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _refused(self) -> bool:
            if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                self._send(401, {"error": {"message": "invalid api key"}})
                return True
            return False

        def do_GET(self) -> None:
            fake.requests.append((self.path, dict(self.headers), None))
            if self._refused():
                return
            if self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "/models/fake-7b.gguf", "object": "model"}]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
            fake.requests.append((self.path, dict(self.headers), body))
            if self._refused():
                return
            if self.path == fake.tokenizer:
                text = body.get("input", body.get("content", ""))
                self._send(200, {"tokens": list(range(len(text.split())))})
            elif self.path == "/v1/chat/completions":
                self._chat(body)
            else:
                self._send(404, {"detail": "Not Found"})

        def _chat(self, body: dict[str, Any]) -> None:
            if fake.status != 200:
                self._send(fake.status, {"error": {"message": fake.error or "bad request"}})
                return
            if not body.get("stream"):
                content = "free text"
                if body.get("grammar") and fake.grammar:
                    probe = body["grammar"] == GRAMMAR_PROBE
                    content = GRAMMAR_PROBE_ANSWER if probe else '{"fact": "Maya likes tea."}'
                self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            events = [{"choices": [{"delta": {"role": "assistant"}}]}]
            events += [{"choices": [{"delta": {"content": piece}}]} for piece in fake.pieces]
            events.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\r\n\r\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\r\n\r\n")

    return Handler


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    fake = FakeServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


MESSAGES = [ChatMessage("system", "You answer from notes."), ChatMessage("user", "Who is my manager?")]


def test_stream_reads_the_server_sent_events(fake_server: FakeServer) -> None:
    model = OpenAIServerModel(fake_server.url + "/v1/")
    pieces = list(model.stream(MESSAGES, max_tokens=40, temperature=0.0, seed=1))
    assert pieces == fake_server.pieces
    path, _, body = fake_server.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["stream"] is True and body["model"] == "/models/fake-7b.gguf"
    assert body["messages"] == [m.to_dict() for m in MESSAGES]
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (40, 0.0, 1)
    assert body["repeat_penalty"] == 1.1 and body["frequency_penalty"] == 0.5
    assert model.name == "fake-7b.gguf at " + fake_server.url


def test_sse_lines_other_than_content_are_skipped() -> None:
    assert sse_text('data: {"choices": [{"delta": {"content": "hi"}}]}') == "hi"
    assert sse_text("data: [DONE]") == ""
    assert sse_text(": keep-alive") == ""
    assert sse_text("event: ping") == ""
    assert sse_text('data: {"choices": [{"delta": {"role": "assistant"}}]}') == ""
    assert sse_text("data: not json") == ""
    with pytest.raises(ModelError, match="stopped the answer: out of memory"):
        sse_text('data: {"error": {"message": "out of memory"}}')


def test_complete_sends_the_grammar(fake_server: FakeServer) -> None:
    model = OpenAIServerModel(fake_server.url)
    answer = model.complete(MESSAGES, grammar='root ::= "x"', max_tokens=24)
    assert json.loads(answer) == {"fact": "Maya likes tea."}
    body = fake_server.requests[-1][2]
    assert body["grammar"] == 'root ::= "x"' and body["temperature"] == 0.0 and "stream" not in body
    model.complete(MESSAGES, grammar='root ::= "x"', max_tokens=24)
    probes = [r for r in fake_server.requests if r[2] and r[2].get("grammar") == GRAMMAR_PROBE]
    assert len(probes) == 1, "whether the server applies grammars is asked once"


def test_a_server_that_ignores_the_grammar_is_refused_not_parsed(fake_server: FakeServer) -> None:
    fake_server.grammar = False
    model = OpenAIServerModel(fake_server.url)
    with pytest.raises(ModelError, match="ignores GBNF grammars") as caught:
        model.complete(MESSAGES, grammar='root ::= "x"', max_tokens=24)
    assert caught.value.exit_code == ExitCode.MODEL
    assert caught.value.hint and "llama_cpp.server" in caught.value.hint


def test_a_server_that_refuses_the_grammar_is_a_model_error_with_a_hint(fake_server: FakeServer) -> None:
    fake_server.status, fake_server.error = 400, "Unrecognized request argument supplied: grammar"
    model = OpenAIServerModel(fake_server.url)
    with pytest.raises(ModelError, match="does not take a GBNF grammar") as caught:
        model.complete(MESSAGES, grammar='root ::= "x"', max_tokens=24)
    assert caught.value.hint and "llama" in caught.value.hint


@pytest.mark.parametrize("tokenizer", ["/extras/tokenize", "/tokenize"])
def test_tokens_counted_by_the_servers_tokenizer(fake_server: FakeServer, tokenizer: str) -> None:
    fake_server.tokenizer = tokenizer
    model = OpenAIServerModel(fake_server.url)
    assert model.count_tokens("one two three") == 3
    assert model.token_count == "server" and model.tokenizer == tokenizer
    assert model.count_tokens("one two three") == 3
    asked = [r for r in fake_server.requests if r[0] == tokenizer]
    assert len(asked) == 1, "a text is counted once"
    expected = 4 + 4 + 2 * TEMPLATE_OVERHEAD  # the fake counts words
    assert model.count_prompt_tokens(MESSAGES) == expected


def test_without_a_tokenizer_endpoint_tokens_are_estimated(fake_server: FakeServer) -> None:
    fake_server.tokenizer = None
    model = OpenAIServerModel(fake_server.url)
    assert model.count_tokens("x" * 10) == 3  # ceil(10 / 4)
    assert model.token_count == "estimate"
    tried = len(fake_server.requests)
    assert model.count_tokens("y" * 8) == 2
    assert len(fake_server.requests) == tried, "the missing endpoints are not asked again"


def test_unreachable_server_is_exit_12_with_a_hint() -> None:
    model = OpenAIServerModel(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnreachableError) as caught:
        list(model.stream(MESSAGES, max_tokens=8, temperature=0.0, seed=None))
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert "does not answer (ConnectError)" in caught.value.message
    assert caught.value.hint and "model_url" in caught.value.hint


def test_a_wrong_token_is_refused_and_the_right_one_sent(fake_server: FakeServer) -> None:
    fake_server.token = "s3cret"
    with pytest.raises(UnreachableError, match=r"refuses pllm \(HTTP 401\)"):
        OpenAIServerModel(fake_server.url, token="wrong").count_tokens("hello")
    model = OpenAIServerModel(fake_server.url, token="s3cret")
    assert list(model.stream(MESSAGES, max_tokens=8, temperature=0.0, seed=None)) == fake_server.pieces


def test_an_http_error_while_answering_is_a_model_error(fake_server: FakeServer) -> None:
    fake_server.status, fake_server.error = 500, "the context is full"
    model = OpenAIServerModel(fake_server.url)
    with pytest.raises(ModelError, match="answered HTTP 500: the context is full"):
        list(model.stream(MESSAGES, max_tokens=8, temperature=0.0, seed=None))


def test_steering_is_refused() -> None:
    model = OpenAIServerModel("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="context steering needs the model's logits") as caught:
        model.stream_steered(MESSAGES, MESSAGES, strength=1.0, max_tokens=8, temperature=0.0, seed=None)
    assert caught.value.hint and "--steer 0" in caught.value.hint


@pytest.mark.parametrize("url", ["homeserver:8080", "ftp://host:1", "http://host:99999"])
def test_a_bad_model_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="model_url"):
        OpenAIServerModel(url)


# --- through the CLI ------------------------------------------------------------------------------


def test_status_shows_the_model_server(fake_server: FakeServer, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_MODEL_URL", fake_server.url)
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["chat_model"] == {
        "url": fake_server.url,
        "reachable": True,
        "model": "/models/fake-7b.gguf",
    }


def test_status_with_the_model_server_down_exits_12(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PLLM_MODEL_URL", url)
    result = run("status", "--json")
    assert result.exit_code == ExitCode.UNREACHABLE
    assert json.loads(result.stdout)["chat_model"] == {"url": url, "reachable": False}
    assert result.stderr.startswith("Error: the model server") and "Traceback" not in result.stderr


def test_ask_with_the_model_server_down_is_one_line(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_MODEL_URL", f"http://127.0.0.1:{free_port()}")
    result = run("ask", "--no-memory", "--no-profile", "hello?")
    assert result.exit_code == ExitCode.UNREACHABLE
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: the model server") and "Hint:" in result.stderr


def test_ask_json_through_the_fake_server(fake_server: FakeServer, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_MODEL_URL", fake_server.url)
    fake_server.tokenizer = None
    result = run("ask", "--no-memory", "--no-profile", "--json", "Who is my manager?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] == "Karin Ek is your manager."
    assert data["prompt"]["token_count"] == "estimate"


def test_ask_with_steering_on_a_model_server_is_refused(
    fake_server: FakeServer, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLLM_MODEL_URL", fake_server.url)
    result = run("ask", "--no-memory", "--steer", "1", "Who is my manager?")
    assert result.exit_code == ExitCode.CONFIG
    assert result.stderr.startswith("Error: context steering needs the model's logits") and "--steer 0" in result.stderr
