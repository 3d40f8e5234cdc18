"""The turns of a chat chunk ("[time] speaker: text" lines, continuation lines joined), and whose they are."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from pllm_cli.memory.records import CHAT_LINE, Chunk

_TURN = CHAT_LINE


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    time: str  # as the chunk shows it ("2026-01-27 21:15"), or ""
    message_id: str  # "" when the chunk's ids do not line up with its turns
    by_user: bool


def chat_turns(chunk: Chunk, me: Collection[str]) -> list[Turn]:
    """The turns of a chat chunk. A turn is the user's when the chunk recorded it at ingest, or when its
    speaker is one of `me` (so naming yourself after an ingest works too)."""
    if chunk.kind != "chat":
        return []
    lines = chunk.text.splitlines()
    stamped = any((m := _TURN.match(line)) is not None and m["time"] is not None for line in lines)
    names = {name.casefold() for name in me if name}
    raw: list[list[str]] = []
    for line in lines:
        match = _TURN.match(line)
        if match and (match["time"] is not None) == stamped:
            raw.append([match["time"] or "", match["speaker"].strip(), match["text"]])
        elif raw:
            raw[-1][2] += "\n" + line
    ids = chunk.message_ids if len(chunk.message_ids) == len(raw) else ("",) * len(raw)
    own = set(chunk.user_message_ids)
    return [
        Turn(
            speaker=speaker,
            text=text.strip(),
            time=time,
            message_id=message_id,
            by_user=(bool(message_id) and message_id in own)
            or speaker.casefold() in names
            or (speaker.casefold() == "user" and bool(own)),
        )
        for (time, speaker, text), message_id in zip(raw, ids, strict=True)
    ]


def user_messages(chunks: Iterable[Chunk], me: Collection[str]) -> Iterator[Turn]:
    """Every turn the user wrote in `chunks`."""
    for chunk in chunks:
        yield from (turn for turn in chat_turns(chunk, me) if turn.by_user and turn.text)
