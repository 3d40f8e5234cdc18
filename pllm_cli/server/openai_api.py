"""The OpenAI chat-completions wire format that `pllm serve --http` speaks: reading a request into what a
`pllm ask` would be asked, and shaping the server's reply (Reply.to_dict) as chat.completion and
chat.completion.chunk objects. Pure functions; the HTTP side is http_endpoint.py.

The model name selects what the answer may use (MODELS). The conversation's last message is the question, the
user and assistant messages before it the history; system (and developer) messages are left out: pllm's own
system prompt carries the profile and memories. The answer's sources travel in the extra field `pllm_sources`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.errors import ExitCode, PllmError
from pllm_cli.sessions import SessionOptions

# model id -> (what it uses, the ask options it stands for)
MODELS: dict[str, tuple[str, SessionOptions]] = {
    "pllm": ("your profile and memories, as pllm ask", SessionOptions()),
    "pllm-no-memory": ("your profile, no memories, as pllm ask --no-memory", SessionOptions(no_memory=True)),
    "pllm-plain": (
        "the model alone, as pllm ask --no-memory --no-profile",
        SessionOptions(no_memory=True, no_profile=True),
    ),
}
SKIPPED_ROLES = ("system", "developer")


class ApiError(Exception):
    """A request answered with an HTTP error status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}


# PllmError exit codes -> HTTP status, OpenAI error type
_STATUS = {
    ExitCode.INPUT: (400, "invalid_request_error"),
    ExitCode.TOO_LONG: (400, "invalid_request_error"),
    ExitCode.CONFIG: (400, "invalid_request_error"),
    ExitCode.NOT_FOUND: (400, "invalid_request_error"),  # an empty memory: the request cannot be answered
    ExitCode.BUSY: (429, "rate_limit_error"),
    ExitCode.SERVER_BUSY: (429, "rate_limit_error"),
}


def api_error(failure: PllmError) -> ApiError:
    status, kind = _STATUS.get(failure.exit_code, (500, "server_error"))
    message = failure.message + (f" ({failure.hint})" if failure.hint else "")
    code = "context_length_exceeded" if failure.exit_code == ExitCode.TOO_LONG else None
    return ApiError(status, message, kind=kind, code=code)


@dataclass
class ChatRequest:
    model: str
    question: str
    history: list[dict[str, str]]
    options: SessionOptions
    settings: dict[str, Any] = field(default_factory=dict)  # config values the request sets (max_tokens, ...)
    stream: bool = False
    include_usage: bool = False


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request's body as a ChatRequest; ApiError (400, or 404 for an unknown model) if it is not one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str):
        raise ApiError(400, "model is required: " + ", ".join(MODELS))
    if model not in MODELS:
        raise ApiError(
            404,
            f"The model {model!r} does not exist: pllm serves " + ", ".join(MODELS),
            code="model_not_found",
        )
    question, history = _conversation(data.get("messages"))
    n = data.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, "n: pllm gives one choice per request")
    options = MODELS[model][1]
    seed = data.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ApiError(400, "seed must be an integer")
        options = SessionOptions(options.no_memory, options.no_profile, seed)
    settings: dict[str, Any] = {}
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ApiError(400, "max_tokens must be a positive integer")
        settings["max_tokens"] = max_tokens
    temperature = data.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
            raise ApiError(400, "temperature must be a number from 0 to 2")
        settings["temperature"] = float(temperature)
    stream = data.get("stream", False)
    stream_options = data.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(stream_options, dict):
        raise ApiError(400, "stream must be true or false, stream_options an object")
    include_usage = bool(stream_options.get("include_usage", False))
    return ChatRequest(model, question, history, options, settings, stream, include_usage)


def _conversation(messages: Any) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, from the user) and the user and assistant turns before it."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list")
    turns: list[dict[str, str]] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{number}] must be an object with a role")
        role = message["role"]
        if role in SKIPPED_ROLES:
            continue
        if role not in ("user", "assistant"):
            raise ApiError(400, f"messages[{number}]: pllm takes user and assistant messages, not {role!r}")
        turns.append({"role": role, "content": _text(message.get("content"), number)})
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "the last message must be the user's question")
    return turns[-1]["content"], turns[:-1]


def _text(content: Any, number: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{number}]: pllm reads text parts only")
            parts.append(part["text"])
        return "\n".join(parts)
    raise ApiError(400, f"messages[{number}].content must be a string or a list of text parts")


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def usage(reply: dict[str, Any]) -> dict[str, int]:
    """Prompt tokens as the model counted them; completion tokens as the pieces the model streamed."""
    prompt = int(reply.get("prompt", {}).get("tokens", {}).get("prompt_total", 0))
    completion = int(reply.get("completion_pieces", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(reply: dict[str, Any], max_tokens: int) -> str:
    return "length" if int(reply.get("completion_pieces", 0)) >= max_tokens else "stop"


def completion(ident: str, created: int, model: str, reply: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """A chat.completion object for the whole reply."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": str(reply.get("answer", ""))},
                "logprobs": None,
                "finish_reason": finish_reason(reply, max_tokens),
            }
        ],
        "usage": usage(reply),
        "pllm_sources": list(reply.get("sources", [])),
    }


def chunk(
    ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat.completion.chunk object: one piece of a streamed reply."""
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def model_list(created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(name, created) for name in MODELS]}


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "pllm", "description": MODELS[name][0]}


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: {...}` and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
