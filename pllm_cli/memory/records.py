"""The records memory stores and returns: chunks made of structured chat turns or prose (with e-mail headers),
rendered as text only where text is needed (the prompt, the CLI, the embedding and the lexical index)."""

from __future__ import annotations

import email.utils
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

# Every format a reader can produce: readers, the profile and forgetting all name formats from this one list.
Format = Literal[
    "markdown", "text", "html", "pdf", "docx", "email", "mbox", "chat-jsonl", "chatgpt", "claude", "whatsapp",
    "telegram",
]  # fmt: skip
FORMATS: tuple[Format, ...] = get_args(Format)
MAIL_FORMATS: frozenset[Format] = frozenset({"email", "mbox"})
ChunkKind = Literal["text", "chat"]
# In a source's sha256, after the file's key: how far a large file ingested in parts has got (ingest/pipeline.py).
PARTIAL = "+partial@"


def format_time(iso: str) -> str:
    """'2026-02-03T19:04:00+01:00' -> '2026-02-03 19:04' (local time as written by the source)."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def spoken_time(iso: str) -> str:
    """'2026-02-03T19:04:00+01:00' -> '3 February 2026 19:04': the stamp shown on chat messages. Dates as people
    write them are what a small model repeats in an answer ("on 3 February 2026"), unlike 2026-02-03."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{moment.day} {moment.strftime('%B %Y %H:%M')}"


@dataclass(frozen=True)
class Turn:
    """One chat message as memory keeps it. `time` is ISO 8601 as the source gave it, or ""."""

    message_id: str
    speaker: str
    text: str
    time: str = ""
    by_user: bool = False

    def render(self, *, stamp: bool = True) -> str:
        """'[3 February 2026 19:04] Zoe: text' (without the stamp if asked, or if the turn has no time)."""
        when = spoken_time(self.time) if stamp else ""
        return f"[{when}] {self.speaker}: {self.text}" if when else f"{self.speaker}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        return cls(**data)


@dataclass(frozen=True)
class Mail:
    """An e-mail's headers, as the message gave them."""

    sender: str  # "Zoe Park <zoe@example.com>"
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: str = ""  # ISO 8601, or "" if the message had none that parses
    subject: str = ""
    message_id: str = ""

    def sent_by(self, name: str) -> bool:
        """Whether `name` is the sender: their display name, their address or the address's local part."""
        return _names_address(self.sender, name)

    def heading(self) -> str:
        """The line shown above an e-mail's text in the prompt and the CLI, and embedded with it."""
        recipients = ", ".join(self.to)
        when = format_time(self.date)
        return f"Email from {self.sender} to {recipients}, {when}: {self.subject or '(no subject)'}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["to"], data["cc"] = list(self.to), list(self.cc)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mail:
        return cls(**{**data, "to": tuple(data.get("to", ())), "cc": tuple(data.get("cc", ()))})


def _names_address(header: str, name: str) -> bool:
    wanted = name.strip().casefold()
    if not wanted:
        return False
    display, address = email.utils.parseaddr(header)
    candidates = {display.strip().casefold(), address.casefold(), address.split("@", 1)[0].casefold()}
    if not display and not address:
        candidates.add(header.strip().casefold())
    return wanted in candidates - {""}


@dataclass(frozen=True)
class Chunk:
    """A piece of memory: prose under a heading (an e-mail has its headers in `mail`), or consecutive chat
    turns of one conversation with the turn before them as context (searched with them, not shown)."""

    id: str
    source: str
    position: int
    kind: ChunkKind
    body: str = ""  # prose: the text under its heading
    section: str = ""  # prose: the heading path ("Title > Heading > Subheading")
    mail: Mail | None = None  # an e-mail's headers
    conversation: str = ""  # chat
    turns: tuple[Turn, ...] = ()  # chat
    context: tuple[Turn, ...] = ()  # chat: the turn before the chunk, searched with it but not shown
    start_time: str = ""
    end_time: str = ""

    @staticmethod
    def make_id(source: str, position: int, text: str) -> str:
        digest = hashlib.sha256(f"{source}\0{position}\0{text}".encode()).hexdigest()
        return digest[:32]

    @property
    def heading(self) -> str:
        if self.mail is not None:
            return self.mail.heading()
        return self.conversation if self.kind == "chat" else self.section

    @property
    def text(self) -> str:
        """What a reader sees: the heading and the prose, or the turns as "[time] speaker: text" lines."""
        if self.kind == "chat":
            return "\n".join(turn.render() for turn in self.turns)
        heading = self.heading
        return f"{heading}\n\n{self.body}" if heading else self.body

    @property
    def plain_text(self) -> str:
        """The words people wrote: the prose, or the messages without times and speakers."""
        return "\n".join(turn.text for turn in self.turns) if self.kind == "chat" else self.body

    @property
    def embedding_text(self) -> str:
        """What is embedded and indexed for BM25. Chat: the turn before the chunk, then its turns, without
        time stamps, which are noise to the embedding model (LoCoMo dense recall 49.4 -> 51.8 without them).
        The turn before makes an answer findable by its question (docs/retrieval.md)."""
        if self.kind != "chat":
            return self.text
        return "\n".join(turn.render(stamp=False) for turn in (*self.context, *self.turns))

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(turn.speaker for turn in self.turns))

    @property
    def message_ids(self) -> tuple[str, ...]:
        if self.kind == "chat":
            return tuple(turn.message_id for turn in self.turns)
        return (self.mail.message_id,) if self.mail is not None and self.mail.message_id else ()

    @property
    def user_message_ids(self) -> tuple[str, ...]:
        return tuple(turn.message_id for turn in self.turns if turn.by_user)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: structured fields only (no rendered text)."""
        return {
            "id": self.id,
            "source": self.source,
            "position": self.position,
            "kind": self.kind,
            "body": self.body,
            "section": self.section,
            "mail": self.mail.to_dict() if self.mail is not None else None,
            "conversation": self.conversation,
            "turns": [turn.to_dict() for turn in self.turns],
            "context": [turn.to_dict() for turn in self.context],
            "start_time": self.start_time,
            "end_time": self.end_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        values = dict(data)
        values["mail"] = Mail.from_dict(values["mail"]) if values.get("mail") else None
        values["turns"] = tuple(Turn.from_dict(t) for t in values.get("turns", ()))
        values["context"] = tuple(Turn.from_dict(t) for t in values.get("context", ()))
        return cls(**values)

    def to_view(self) -> dict[str, Any]:
        """For --json output: the structured fields and, for reading, the rendered text."""
        data = self.to_dict()
        data.update(
            text=self.text,
            heading=self.heading,
            speakers=list(self.speakers),
            message_ids=list(self.message_ids),
            user_message_ids=list(self.user_message_ids),
        )
        return data


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # per retrieval mode, for --json and debugging

    def to_dict(self) -> dict[str, Any]:
        data = self.chunk.to_view()
        data["chunk_id"] = data.pop("id")
        data["score"] = round(self.score, 6)
        return data


@dataclass(frozen=True)
class SourceRecord:
    source: str
    sha256: str
    format: str
    chunks: int
    messages: int
    ingested_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
