"""The chat model behind an OpenAI-compatible server (`model_url`): llama.cpp's llama-server, llama-cpp-python's
server, vLLM, Ollama.

Answers stream from POST /v1/chat/completions (server-sent events); fact extraction sends the GBNF grammar in
the request's `grammar` field (llama.cpp and llama-cpp-python honour it). Tokens are counted by the server's
tokenizer where it has one (llama-cpp-python: POST /extras/tokenize; llama.cpp: POST /tokenize), else estimated
at ESTIMATE_CHARS characters a token; `token_count` says which. Steered decoding needs the model's logits for
two prompts at each step, which the API does not give: it is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from pllm_cli.errors import ConfigError, ModelError, UnreachableError
from pllm_cli.prompting import TEMPLATE_OVERHEAD
from pllm_cli.runtime import FREQUENCY_PENALTY, REPEAT_PENALTY, ChatMessage

CONNECT_TIMEOUT = 5.0  # seconds: a server that does not accept the connection by then is unreachable
READ_TIMEOUT = 300.0  # seconds between two pieces of an answer (a big model on a busy server is slow)
ESTIMATE_CHARS = 4  # characters a token, where the server has no tokenizer endpoint (English text, BPE models)
# a grammar whose only sentence no model says unconstrained: whether a server applies `grammar` (grammar_honoured)
GRAMMAR_PROBE_ANSWER = "[7|q]"
GRAMMAR_PROBE = 'root ::= "[7|q]"'
# the tokenizer endpoints tried in turn: path and the request's field for the text
TOKENIZERS: tuple[tuple[str, str], ...] = (("/extras/tokenize", "input"), ("/tokenize", "content"))


class OpenAIServerModel:
    """ChatModel and StructuredModel over HTTP, talking to `url` (http://host:port, with or without /v1)."""

    def __init__(self, url: str, token: str = "", context_size: int = 4096) -> None:
        self.url = url
        self.base_url = _base_url(url)
        self.token = token
        self._context_size = context_size
        self._counted: dict[str, int] = {}
        self.tokenizer: str | None = None  # the endpoint that counts tokens, once found; "" for none
        self.prefix_reuse: tuple[str, int] | None = None  # the server keeps its own prompt cache; nothing to report

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def token_count(self) -> str:
        """How prompt tokens are counted: "server" (its tokenizer) or "estimate" (characters / ESTIMATE_CHARS)."""
        if self.tokenizer is None:
            self.count_tokens("a")
        return "server" if self.tokenizer else "estimate"

    @cached_property
    def client(self) -> Any:
        import httpx

        return httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

    @cached_property
    def served_model(self) -> str:
        """The id of the server's first model (GET /v1/models): vLLM and Ollama need it in every request."""
        data = self._request("GET", "/v1/models").json()
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ModelError(
                f"the model server {self.base_url} lists no model at /v1/models",
                hint="start the server with a model loaded (docs/scale.md)",
            ) from None

    @property
    def name(self) -> str:
        return f"{self.served_model.rsplit('/', 1)[-1]} at {self.base_url}"

    @property
    def context_size(self) -> int:
        return self._context_size

    def preload(self) -> None:
        """Nothing to load here: the server holds the model."""

    def check(self) -> str:
        """The served model's id, or UnreachableError (exit 12) if the server does not answer or refuses."""
        return self.served_model

    def count_tokens(self, text: str) -> int:
        if text in self._counted:
            return self._counted[text]
        count = self._server_count(text) if self.tokenizer != "" else None
        if count is None:
            count = (len(text) + ESTIMATE_CHARS - 1) // ESTIMATE_CHARS
        if len(self._counted) < 100_000:
            self._counted[text] = count
        return count

    def _server_count(self, text: str) -> int | None:
        candidates = [t for t in TOKENIZERS if t[0] == self.tokenizer] if self.tokenizer else list(TOKENIZERS)
        for path, field in candidates:
            response = self._request("POST", path, body={field: text, "add_special": False}, missing_ok=True)
            if response is None:
                continue
            try:
                tokens = response.json()["tokens"]
            except (ValueError, KeyError, TypeError):
                continue
            self.tokenizer = path
            return len(tokens)
        self.tokenizer = ""
        return None

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """The messages' tokens plus TEMPLATE_OVERHEAD for each (the server renders its own chat template)."""
        return sum(self.count_tokens(m.content) + TEMPLATE_OVERHEAD for m in messages)

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> Iterator[str]:
        body = self._body(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        body.update(stream=True, repeat_penalty=REPEAT_PENALTY, frequency_penalty=FREQUENCY_PENALTY)
        return self._events(body)

    def _events(self, body: dict[str, Any]) -> Iterator[str]:
        import httpx

        try:
            with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._refusal(response)
                for line in response.iter_lines():
                    text = sse_text(line)
                    if text:
                        yield text
        except httpx.HTTPError as exc:
            raise self._unreachable(type(exc).__name__) from None

    def stream_steered(
        self,
        messages: Sequence[ChatMessage],
        plain_messages: Sequence[ChatMessage],
        *,
        strength: float,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[str]:
        raise ConfigError(
            "context steering needs the model's logits, which a model server (model_url) does not give",
            hint="ask with --steer 0 (or `pllm config set steer 0`), or unset model_url to steer the local model",
        )

    def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
        """The greedy answer under a GBNF grammar, in the request's `grammar` field; ModelError (exit 6) if the
        server ignores that field (vLLM, Ollama): pllm does not parse free text as if it were constrained."""
        if not self.grammar_honoured:
            raise ModelError(
                f"the model server {self.base_url} ignores GBNF grammars, which fact extraction needs",
                hint="run the model with llama.cpp's llama-server or `python -m llama_cpp.server` (docs/scale.md), "
                "or unset model_url for `pllm profile refresh`",
            )
        return self._complete(messages, grammar=grammar, max_tokens=max_tokens)

    @cached_property
    def grammar_honoured(self) -> bool:
        """Whether the server applies the `grammar` field: asked once, with a grammar whose only sentence no model
        would say unconstrained to a greeting."""
        probe = [ChatMessage("user", "Hello! How are you today?")]
        return self._complete(probe, grammar=GRAMMAR_PROBE, max_tokens=8).strip() == GRAMMAR_PROBE_ANSWER

    def _complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
        body = self._body(messages, max_tokens=max_tokens, temperature=0.0, seed=0)
        body["grammar"] = grammar
        data = self._request("POST", "/v1/chat/completions", body=body).json()
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"the model server {self.base_url} gave an answer pllm cannot read") from None

    def _body(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": [m.to_dict() for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            body["seed"] = seed
        return body

    def _request(self, method: str, path: str, *, body: Any = None, missing_ok: bool = False) -> Any:
        """The response, or None with `missing_ok` if the server has no such endpoint or takes no such request
        (any 4xx but a refusal, or 501); pllm's errors for everything else."""
        import httpx

        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(type(exc).__name__) from None
        status = response.status_code
        if missing_ok and ((400 <= status < 500 and status not in (401, 403)) or status == 501):
            return None
        if response.status_code != 200:
            raise self._refusal(response)
        return response

    def _unreachable(self, reason: str) -> UnreachableError:
        return UnreachableError(
            f"the model server {self.base_url} does not answer ({reason})",
            hint="start it (docs/scale.md) or fix model_url; `pllm config unset model_url` uses the local model",
        )

    def _refusal(self, response: Any) -> Exception:
        status = response.status_code
        if status in (401, 403):
            return UnreachableError(
                f"the model server {self.base_url} refuses pllm (HTTP {status})",
                hint="set model_token to the key the server expects (docs/scale.md)",
            )
        detail = _error_detail(response)
        if "grammar" in detail.lower():
            return ModelError(
                f"the model server {self.base_url} does not take a GBNF grammar: {detail}",
                hint="fact extraction needs llama.cpp's llama-server or llama-cpp-python's server (docs/scale.md)",
            )
        return ModelError(
            f"the model server {self.base_url} answered HTTP {status}" + (f": {detail}" if detail else ""),
            hint="see the server's log; a prompt too long for it needs a smaller context_size or a larger server n_ctx",
        )


def sse_text(line: str) -> str:
    """The text of one server-sent event line of a streamed chat completion ("" for anything else)."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return ""
    try:
        event = json.loads(payload)
    except ValueError:
        return ""
    if isinstance(event, dict) and event.get("error"):
        raise ModelError(f"the model server stopped the answer: {_message(event['error'])}")
    try:
        text = event["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return str(text) if text else ""


def _error_detail(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return str(response.text).strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(data, dict):
        return _message(data.get("error") or data.get("detail") or data)[:300]
    return str(data)[:300]


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"model_url must be http://host:port or https://host[:port], got {url!r}",
            hint="for example: pllm config set model_url http://homeserver:8080",
        )
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ConfigError(f"model_url has a bad port: {url!r}") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"
