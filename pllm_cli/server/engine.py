"""What `pllm serve` does for each request, with the models and memories it holds.

One thread only (the server's worker) calls an Engine: SQLite connections belong to the thread that opened them,
and llama.cpp answers one prompt at a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pllm_cli.config import Config, config_from_values
from pllm_cli.context import AppContext
from pllm_cli.errors import ConfigError, InputError
from pllm_cli.memory.lookup import look_up, look_up_many
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import SEARCH_MODES
from pllm_cli.personas import check_name
from pllm_cli.profile.manage import refresh_profile
from pllm_cli.profile.refresh import Progress
from pllm_cli.profile.state import ProfileFiles
from pllm_cli.runtime import ChatMessage
from pllm_cli.server import protocol
from pllm_cli.server.protocol import Message, ProtocolError
from pllm_cli.sessions import SessionOptions, open_session

Send = Callable[[Message], None]
MemoryStamp = tuple[int, int, int] | None


class Engine:
    """The embedder and chat model of `app` (the server's own context: its config names the models served),
    and one context per persona asked for, each sharing them."""

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self._contexts: dict[str, AppContext] = {app.paths.persona: app}
        self._stamps: dict[str, MemoryStamp] = {}
        self._refreshing: set[str] = set()  # personas whose store a refresh below this request is using

    def load(self) -> float:
        """Load both models and run each once; the seconds it took. ModelError if one cannot be loaded."""
        started = time.perf_counter()
        self.app.embedder.embed(["a first question"])
        self.app.model.count_tokens("a first question")  # loads the GGUF file
        return time.perf_counter() - started

    def open_memory(self) -> None:
        """Open the server's own persona's memory, if it has one, before the first request needs it."""
        app = self._context(self.app.paths.persona)
        if app.paths.memory_dir.exists():
            app.store.count()

    @property
    def models(self) -> dict[str, Any]:
        """The settings that name the models this server runs (a client with others runs in its own process)."""
        return protocol.model_settings(self.app.config.as_dict())

    def handle(self, message: Message, send: Send, between: Callable[[], None] = lambda: None) -> str:
        """Run one request, sending what it produces; a short note for the log. PllmError for expected
        failures, ProtocolError for a malformed request. A refresh calls `between` after each statement the model
        restates and each chunk it reads: the server runs the requests waiting behind it there."""
        op = message.get("op")
        config = self._config(message)
        app = self._context(_text(message, "persona"))
        if op == "open":
            session = open_session(app, config, SessionOptions.from_dict(_mapping(message, "options")))
            send(protocol.end({"model": session.model_name, "profile": session.profile_text}))
            return "opened a chat"
        if op == "ask":
            return self._ask(app, config, message, send)
        if op == "search":
            return self._search(app, message, send)
        if op == "refresh":
            return self._refresh(app, config, message, send, between)
        raise ProtocolError(f"unknown op {op!r}")

    def _refresh(
        self, app: AppContext, config: Config, message: Message, send: Send, between: Callable[[], None]
    ) -> str:
        """`pllm profile refresh`; the server holds the profile lock already (Server._lock_for)."""
        send(protocol.begin({}))

        def progress(step: Progress) -> None:
            send(protocol.item(asdict(step)))
            between()

        persona = app.paths.persona
        self._refreshing.add(persona)
        try:
            report = refresh_profile(
                ProfileFiles(app.paths),
                app.store.index,
                app.embedder,
                app.model,
                name=config.display_name,
                me=config.me_names,
                rebuild=bool(message.get("rebuild", False)),
                on_progress=progress,
                between=between,
            )
        finally:
            self._refreshing.discard(persona)
        send(protocol.end(report.to_dict()))
        return f"refreshed the profile: {report.chunks_read} chunks read, version {report.version}"

    def _ask(self, app: AppContext, config: Config, message: Message, send: Send) -> str:
        session = open_session(app, config, SessionOptions.from_dict(_mapping(message, "options")))
        history = message.get("history") or []
        if not isinstance(history, list):
            raise ProtocolError("history must be a list")
        session.history = [ChatMessage(_text(turn, "role"), _text(turn, "content")) for turn in history]
        reply = session.ask(_text(message, "question"))
        send(protocol.begin(reply.to_dict()))
        pieces = iter(reply)
        try:
            for text in pieces:
                send(protocol.piece(text))
        finally:  # a client that went away stops the model now, not whenever the reply is collected
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
            reply.close()
        send(protocol.end(reply.to_dict()))
        return f"answered in {reply.completion_tokens} pieces"

    def _search(self, app: AppContext, message: Message, send: Send) -> str:
        mode = _text(message, "mode")
        if mode not in SEARCH_MODES:
            raise InputError(f"unknown search mode {mode!r}", hint="use one of: " + ", ".join(SEARCH_MODES))
        retriever = Retriever(app.store, app.embedder, mode)
        k, tokens = _integer(message, "k"), message.get("tokens")
        if tokens is not None:
            tokens = _integer(message, "tokens")
        queries = message.get("queries")
        if queries is None:
            send(protocol.item(look_up(retriever, _text(message, "query"), k=k, tokens=tokens)))
            send(protocol.end({"queries": 1}))
            return "searched 1 query"
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise ProtocolError("queries must be a list of strings")
        count = 0
        for found in look_up_many(retriever, queries, k=k, tokens=tokens):
            send(protocol.item(found))
            count += 1
        send(protocol.end({"queries": count}))
        return f"searched {count} queries"

    def _config(self, message: Message) -> Config:
        """The client's settings, checked again; ConfigError if they name other models than this server's."""
        config = config_from_values(_mapping(message, "config"), "the client's settings")
        if protocol.model_settings(config.as_dict()) != self.models:
            raise ConfigError(
                "this pllm server runs other models than the command asks for",
                hint="run it with --no-server, or restart `pllm serve` with the same settings",
            )
        return config

    def _context(self, persona: str) -> AppContext:
        """The persona's context; its memory store reopened if another process changed that memory since."""
        check_name(persona)
        if persona not in self._contexts:
            self._contexts[persona] = self.app.for_persona(persona)
        self._close_if_changed(persona)
        store = self._contexts[persona].__dict__.get("store")  # open already: cached_property
        if store is not None:  # memory on a server: what other machines wrote since (memory/mirror.py)
            store.sync(only_if_changed=True)
        return self._contexts[persona]

    def let_go_of_changed_memory(self) -> None:
        """Close every store whose memory another process changed (the next request opens it again)."""
        for persona in self._contexts:
            self._close_if_changed(persona)

    def _close_if_changed(self, persona: str) -> None:
        """Chroma keeps its index in memory, and the files of a generation a forget deleted stay on disk while
        they are open: a store whose memory changed is closed, to be opened afresh."""
        if persona in self._refreshing:
            return  # a refresh is reading this store: it is closed after it
        app, stamp = self._contexts[persona], memory_stamp(self._contexts[persona])
        if persona in self._stamps and self._stamps[persona] != stamp:
            app.close()
        self._stamps[persona] = stamp

    def close(self) -> None:
        for app in self._contexts.values():
            app.close()


def memory_stamp(app: AppContext) -> MemoryStamp:
    """Changes whenever a writer of this memory (ingest, forget, profiles remove) takes or lets go of its lock:
    it writes its pid into the lock file, and empties it when done."""
    try:
        stat = os.stat(app.paths.memory_lock_file)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _mapping(message: Message, key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"{key} must be an object")
    return value


def _text(message: Message, key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    return value


def _integer(message: Message, key: str) -> int:
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProtocolError(f"{key} must be a positive integer")
    return value
