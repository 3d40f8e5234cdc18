"""The records memory stores and returns."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

_CHAT_STAMP = re.compile(r"^\[[^\]\n]*\] ", re.MULTILINE)
# A chat line: "[time] speaker: text"; the lines that follow up to the next such line continue its text.
CHAT_LINE = re.compile(r"^(?:\[(?P<time>[^\]\n]*)\] )?(?P<speaker>[^:\n\[]{1,80}): (?P<text>.*)$")


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    position: int
    text: str
    kind: str  # "text" or "chat"
    heading: str = ""
    conversation: str = ""
    speakers: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    user_message_ids: tuple[str, ...] = ()  # the messages of this chunk the user wrote
    start_time: str = ""
    end_time: str = ""
    context: str = ""  # chat: the turn before the chunk, searched with it but not shown

    @staticmethod
    def make_id(source: str, position: int, text: str) -> str:
        digest = hashlib.sha256(f"{source}\0{position}\0{text}".encode()).hexdigest()
        return digest[:32]

    @property
    def embedding_text(self) -> str:
        """What is embedded and indexed for BM25. Chat: the turn before the chunk, then its turns, without the
        "[2026-02-03 19:04] " stamps, which are noise to the embedding model (LoCoMo dense recall 49.4 -> 51.8
        without them). The turn before makes an answer findable by its question (docs/retrieval.md)."""
        if self.kind != "chat":
            return self.text
        return _CHAT_STAMP.sub("", f"{self.context}\n{self.text}" if self.context else self.text)

    def turn_texts(self) -> list[str]:
        """A chat chunk's turns as they are written ("[time] speaker: text", continuation lines included),
        one per message id when they line up; otherwise the whole text as one piece."""
        if self.kind != "chat":
            return [self.text]
        lines = self.text.splitlines()
        stamped = any((m := CHAT_LINE.match(line)) is not None and m["time"] is not None for line in lines)
        turns: list[str] = []
        for line in lines:
            match = CHAT_LINE.match(line)
            if (match and (match["time"] is not None) == stamped) or not turns:
                turns.append(line)
            else:
                turns[-1] += "\n" + line
        return turns if len(turns) == len(self.message_ids) else [self.text]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["speakers"] = list(self.speakers)
        data["message_ids"] = list(self.message_ids)
        data["user_message_ids"] = list(self.user_message_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        values = dict(data)
        values["speakers"] = tuple(values.get("speakers", ()))
        values["message_ids"] = tuple(values.get("message_ids", ()))
        values["user_message_ids"] = tuple(values.get("user_message_ids", ()))
        return cls(**values)


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # per retrieval mode, for --json and debugging

    def to_dict(self) -> dict[str, Any]:
        data = self.chunk.to_dict()
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
