"""The wire format of `pllm serve`: JSON Lines over a Unix socket, one request per connection.

The client sends one line, a JSON object with `"v": VERSION` and an `op`:

    {"v": 1, "op": "status"}
    {"v": 1, "op": "stop"}
    {"v": 1, "op": "open", "persona": P, "config": C, "options": O}
    {"v": 1, "op": "ask", "persona": P, "config": C, "options": O, "question": "...", "history": [H, ...]}
    {"v": 1, "op": "search", "persona": P, "config": C, "query": "..." or null, "queries": [...] or null,
     "k": 8, "mode": "hybrid", "tokens": null}
    {"v": 1, "op": "refresh", "persona": P, "config": C, "wait": 0.0, "rebuild": false}

C is the client's settled configuration (Config.as_dict), O the ask options (no_memory, no_profile, seed), H a
chat turn {"role": "user" | "assistant", "content": "..."}. The server answers with lines of its own, each
with "v" and a "type", and closes the connection after the last:

    {"v": 1, "type": "begin", "data": {...}}    ask: the question was taken, the prompt built (Reply.to_dict);
                                                refresh: the profile lock is held
    {"v": 1, "type": "piece", "text": "..."}    ask: the next piece of the answer, as the model makes it
    {"v": 1, "type": "item", "data": {...}}     search: one query's result (the --json object);
                                                refresh: progress {"done", "total", "statements"}
    {"v": 1, "type": "end", "data": {...}}      the request is done: its whole result
    {"v": 1, "type": "error", "message": "...", "hint": "..." or null, "exit_code": N}

An error ends the answer, whenever it comes; its exit code is one of ExitCode (docs/exit-codes.md).
"""

from __future__ import annotations

import json
from typing import Any

from pllm_cli.errors import ExitCode, PllmError

VERSION = 1
MAX_LINE = 64 * 1024 * 1024  # a request with 100,000 queries from stdin fits; a runaway client does not

Message = dict[str, Any]


class ProtocolError(Exception):
    """A line that is not a message of this protocol's version."""


def encode(message: Message) -> bytes:
    return json.dumps({"v": VERSION, **message}, ensure_ascii=False).encode("utf-8") + b"\n"


def decode(line: bytes) -> Message:
    """The message on one line; ProtocolError if it is not a JSON object of this version."""
    if not line.endswith(b"\n"):
        raise ProtocolError("the connection closed in the middle of a message" if line else "no message")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    if message.get("v") != VERSION:
        raise ProtocolError(f"protocol version {message.get('v')!r}, not {VERSION}")
    return message


def request(op: str, **fields: Any) -> Message:
    return {"op": op, **fields}


def begin(data: dict[str, Any]) -> Message:
    return {"type": "begin", "data": data}


def piece(text: str) -> Message:
    return {"type": "piece", "text": text}


def item(data: dict[str, Any]) -> Message:
    return {"type": "item", "data": data}


def end(data: dict[str, Any]) -> Message:
    return {"type": "end", "data": data}


def error(failure: PllmError) -> Message:
    return {"type": "error", "message": failure.message, "hint": failure.hint, "exit_code": int(failure.exit_code)}


def to_error(message: Message) -> PllmError:
    """The PllmError an error message stands for, as the server raised it."""
    try:
        code = ExitCode(int(message.get("exit_code", ExitCode.INTERNAL)))
    except (TypeError, ValueError):
        code = ExitCode.INTERNAL
    hint = message.get("hint")
    return PllmError(str(message.get("message", "")), hint=str(hint) if hint else None, exit_code=code)


MODEL_SETTINGS = ("model", "embedding_model", "context_size", "threads", "model_url")


def model_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide which models are loaded and how: a server serves only clients that agree."""
    return {key: config.get(key) for key in MODEL_SETTINGS}
