"""`pllm ask`, `chat` and `memory search` through a running `pllm serve`, shaped as the objects the CLI renders
when it runs them itself (chat.Conversation and chat.Answer; look_up's dicts). If the server goes away before
answering, the command goes on in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pllm_cli.chat import Answer, ChatSession, Conversation
from pllm_cli.profile.refresh import Progress
from pllm_cli.runtime import ChatMessage
from pllm_cli.server import protocol
from pllm_cli.server.client import ServerClient, ServerUnavailable, find_server
from pllm_cli.server.protocol import Message
from pllm_cli.sessions import SessionOptions, open_session

if TYPE_CHECKING:
    from pllm_cli.context import AppContext


class RemoteReply:
    """An answer streamed from the server: its pieces as they come, then the Reply.to_dict the server made."""

    def __init__(self, messages: Iterator[Message], begun: dict[str, Any], on_done: Callable[[RemoteReply], None]):
        self._messages = messages
        self._data = begun  # the reply before its text: question, sources, prompt
        self._on_done = on_done
        self.question = str(begun.get("question", ""))
        self.text = ""
        self.finished = False

    def __iter__(self) -> Iterator[str]:
        try:
            for message in self._messages:
                if message.get("type") == "piece":
                    text = str(message.get("text", ""))
                    self.text += text
                    yield text
                elif message.get("type") == "end":
                    self._data = dict(message.get("data") or {})
                    self.text = str(self._data.get("answer", self.text))
                    self.finished = True
                    self._on_done(self)
        finally:
            close = getattr(self._messages, "close", None)
            if close is not None:
                close()  # the connection: a server still answering stops

    def to_dict(self) -> dict[str, Any]:
        return self._data if self.finished else {**self._data, "answer": self.text}


class RemoteSession:
    """A conversation run by the server; the history is kept here and sent with each question."""

    def __init__(
        self, client: ServerClient, app: AppContext, options: SessionOptions, local: Callable[[], ChatSession]
    ) -> None:
        self.client = client
        self._fields = {"persona": app.paths.persona, "config": app.config.as_dict(), "options": options.to_dict()}
        self._make_local = local
        self._local: ChatSession | None = None
        self._model_name = ""
        self._profile_text = ""
        self._last: RemoteReply | None = None
        self.history: list[ChatMessage] = []

    @property
    def model_name(self) -> str:
        return self._local.model_name if self._local else self._model_name

    @property
    def profile_text(self) -> str:
        return self._local.profile_text if self._local else self._profile_text

    @property
    def last(self) -> Answer | None:
        return self._local.last if self._local else self._last

    def open(self) -> None:
        """Check, as `pllm chat` does before its first question, that memory and the models can be used."""
        try:
            data = self.client.call(protocol.request("open", **self._fields))
        except ServerUnavailable:
            self._fall_back()
            return
        self._model_name, self._profile_text = str(data.get("model", "")), str(data.get("profile", ""))

    def ask(self, question: str) -> Answer:
        if self._local is not None:
            return self._local.ask(question)
        history = [turn.to_dict() for turn in self.history]
        messages = self.client.exchange(protocol.request("ask", **self._fields, question=question, history=history))
        try:
            first = next(messages)
        except ServerUnavailable:
            return self._fall_back().ask(question)
        reply = RemoteReply(messages, dict(first.get("data") or {}), self._remember)
        self._last = reply
        return reply

    def remember_partial(self) -> None:
        """Keep an answer interrupted with Ctrl-C in the history, as far as it got."""
        if self._local is not None:
            self._local.remember_partial()
        elif self._last is not None and not self._last.finished:
            self._last.finished = True
            self._remember(self._last)

    def _remember(self, reply: RemoteReply) -> None:
        self.history += [ChatMessage("user", reply.question), ChatMessage("assistant", reply.text)]

    def _fall_back(self) -> ChatSession:
        """The server went away: this process goes on, with the conversation so far."""
        local = self._make_local()
        local.history = list(self.history)
        self._local = local
        return local


def start_conversation(app: AppContext, options: SessionOptions, *, chat: bool = False) -> Conversation:
    """The running server's session if there is one that can take it, else one in this process. For `chat`
    the session is checked at once (empty memory and the like fail before the first question)."""
    client = find_server(app)
    if client is None:
        return open_session(app, app.config, options)
    session = RemoteSession(client, app, options, lambda: open_session(app, app.config, options))
    if chat:
        session.open()
    return session


def remote_search(
    client: ServerClient, app: AppContext, query: str | list[str], *, k: int, mode: str, tokens: int | None
) -> Iterator[dict[str, Any]] | None:
    """`memory search` by the server: one result per query, as look_up gives them; None if the server went
    away before answering (the caller searches itself)."""
    many = isinstance(query, list)
    message = protocol.request(
        "search",
        persona=app.paths.persona,
        config=app.config.as_dict(),
        query=None if many else query,
        queries=query if many else None,
        k=k,
        mode=mode,
        tokens=tokens,
    )
    messages = client.exchange(message)
    try:
        first = next(messages)
    except ServerUnavailable:
        return None
    return _results(first, messages)


def _results(first: Message, rest: Iterator[Message]) -> Iterator[dict[str, Any]]:
    try:
        message: Message | None = first
        while message is not None and message.get("type") == "item":
            yield dict(message.get("data") or {})
            message = next(rest, None)
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def remote_refresh(
    client: ServerClient,
    app: AppContext,
    *,
    wait: float,
    rebuild: bool,
    on_begin: Callable[[], None],
    on_progress: Callable[[Progress], None] | None,
) -> dict[str, Any] | None:
    """`profile refresh` by the server (it takes the profile lock, waiting up to `wait` seconds): its report as
    RefreshReport.to_dict, after `on_begin` once the lock is held and `on_progress` after each chunk read; None
    if the server went away before it began (the caller refreshes itself)."""
    message = protocol.request(
        "refresh", persona=app.paths.persona, config=app.config.as_dict(), wait=wait, rebuild=rebuild
    )
    messages = client.exchange(message)
    try:
        next(messages)  # begin: the lock is held
    except ServerUnavailable:
        return None
    on_begin()
    for received in messages:
        data = dict(received.get("data") or {})
        if received.get("type") == "item" and on_progress is not None:
            on_progress(Progress(int(data["done"]), int(data["total"]), int(data["statements"])))
        elif received.get("type") == "end":
            return data
    return None  # pragma: no cover - exchange ends with "end" or raises
