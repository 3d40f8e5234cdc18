"""`pllm serve --http`: the OpenAI-compatible endpoint, on the standard library's ThreadingHTTPServer.

    GET  /v1/models              the models (openai_api.MODELS)
    GET  /v1/models/ID           one of them
    POST /v1/chat/completions    an answer, whole or streamed as server-sent events

Every request needs `Authorization: Bearer TOKEN` (the token in the home's serve-token file); anything else is
answered 401. A completion becomes an "ask" request for the server's one worker, in the same bounded queue as
the socket's requests: a full queue answers 429, and an answer being streamed is never cut off by another
request. No CORS headers are sent, so a web page in a browser cannot read the answers.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from pllm_cli import __version__
from pllm_cli.errors import PllmError
from pllm_cli.server import openai_api, protocol
from pllm_cli.server.jobs import ClientGone, Job
from pllm_cli.server.openai_api import ApiError, ChatRequest
from pllm_cli.server.protocol import Message

if TYPE_CHECKING:
    from pllm_cli.server.server import Server

log = logging.getLogger("pllm.serve")
MAX_BODY = 8 * 1024 * 1024  # bytes; a long conversation fits, a runaway client does not


class HttpListener(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: Server, token: str) -> None:
        self.owner = owner
        self.token = token
        self.created = int(time.time())
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        address, port = self.server_address[0], self.server_address[1]
        host = address.decode() if isinstance(address, bytes) else str(address)
        return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: HttpListener
    protocol_version = "HTTP/1.1"
    server_version = f"pllm/{__version__}"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            self._send_json(200, openai_api.model_list(self.server.created))
        elif path.startswith("/v1/models/") and path.removeprefix("/v1/models/") in openai_api.MODELS:
            self._send_json(200, openai_api.model_entry(path.removeprefix("/v1/models/"), self.server.created))
        elif path.startswith("/v1/models/"):
            self._send_error(ApiError(404, f"The model {path.removeprefix('/v1/models/')!r} does not exist"))
        else:
            self._send_error(ApiError(404, f"no such endpoint: GET {path}"))

    def do_POST(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/chat/completions":
            self._send_error(ApiError(404, f"no such endpoint: POST {path}"))
            return
        try:
            request = openai_api.parse_chat_request(self._body())
        except ApiError as failure:
            self._send_error(failure)
            return
        self._complete(request)

    # the pieces --------------------------------------------------------------------------------------
    def _authorized(self) -> bool:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.server.token.encode()):
            return True
        log.info("http: refused a request without the right token")
        failure = ApiError(
            401,
            "a bearer token is required: the one in the serve-token file of the pllm home (pllm serve --token)",
            code="invalid_api_key",
        )
        self._send_error(failure, {"WWW-Authenticate": 'Bearer realm="pllm"'})
        return False

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ApiError(411, "Content-Length is required")
        if int(length) > MAX_BODY:
            raise ApiError(413, f"the request is larger than {MAX_BODY} bytes")
        return self.rfile.read(int(length))

    def _complete(self, request: ChatRequest) -> None:
        owner = self.server.owner
        answer = _Answer(self, request, owner.app.config.max_tokens)
        config = {**owner.app.config.as_dict(), **request.settings}
        message = protocol.request(
            "ask",
            persona=owner.app.paths.persona,
            config=config,
            options=request.options.to_dict(),
            question=request.question,
            history=request.history,
        )
        job = Job(message, self.connection, writer=answer.write)
        try:
            owner.submit_and_wait(job)
        except PllmError as refused:  # the queue is full, or the server is stopping
            self._send_error(openai_api.api_error(refused))
            return
        answer.finish()

    def _send_json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status >= 400:
            self.send_header("Connection", "close")  # an unread request body must not be taken for the next
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, failure: ApiError, headers: dict[str, str] | None = None) -> None:
        self._send_json(failure.status, failure.body(), headers)


class _Answer:
    """One completion's answer. The worker thread calls `write` with the server's messages for it (begin,
    piece..., end, or error); a streamed answer is written as it comes, a whole one by `finish` on the
    connection's thread once the worker is done."""

    def __init__(self, handler: _Handler, request: ChatRequest, default_max_tokens: int) -> None:
        self.handler = handler
        self.request = request
        self.max_tokens = int(request.settings.get("max_tokens", default_max_tokens))
        self.ident = openai_api.completion_id()
        self.created = int(time.time())
        self.reply: dict[str, Any] | None = None
        self.failure: PllmError | None = None
        self.streaming = False  # the event stream's headers are sent

    def write(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "error":
            self.failure = protocol.to_error(message)
            if self.streaming:
                self._event(openai_api.api_error(self.failure).body())
                self._event("[DONE]")
            return
        if kind == "end":
            self.reply = dict(message.get("data") or {})
        if not self.request.stream:
            return
        if kind == "begin":
            self._begin_stream()
            self._event(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "piece":
            self._event(self._chunk({"content": str(message.get("text", ""))}))
        elif kind == "end" and self.reply is not None:
            reason = openai_api.finish_reason(self.reply, self.max_tokens)
            self._event(self._chunk({}, reason, pllm_sources=list(self.reply.get("sources", []))))
            if self.request.include_usage:
                self._event({**self._chunk({}), "choices": [], "usage": openai_api.usage(self.reply)})
            self._event("[DONE]")

    def finish(self) -> None:
        """On the connection's thread, after the worker: the whole answer, or the error if none was streamed."""
        if self.streaming:
            return
        if self.failure is not None:
            self.handler._send_error(openai_api.api_error(self.failure))
        elif self.reply is not None:
            model, reply = self.request.model, self.reply
            self.handler._send_json(200, openai_api.completion(self.ident, self.created, model, reply, self.max_tokens))
        else:  # the client left while it waited: nothing to say, to no one
            self.handler.close_connection = True

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return openai_api.chunk(self.ident, self.created, self.request.model, delta, finish, **extra)

    def _begin_stream(self) -> None:
        handler = self.handler
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "no-cache")
            handler.send_header("Connection", "close")  # the stream ends when the connection does
            handler.end_headers()
            handler.wfile.flush()
        except OSError as exc:
            raise ClientGone(str(exc)) from None
        handler.close_connection = True
        self.streaming = True

    def _event(self, data: dict[str, Any] | str) -> None:
        try:
            self.handler.wfile.write(openai_api.sse(data))
            self.handler.wfile.flush()
        except OSError as exc:  # the client is gone: the worker stops generating
            raise ClientGone(str(exc)) from None
