"""Whose a chat chunk's turns are."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import replace

from pllm_cli.memory.records import Chunk, Turn


def chat_turns(chunk: Chunk, me: Collection[str]) -> list[Turn]:
    """The turns of a chat chunk. A turn is the user's when ingest recorded it so, or when its speaker is one
    of `me` (so naming yourself after an ingest works too)."""
    if chunk.kind != "chat":
        return []
    names = {name.casefold() for name in me if name}
    own = any(turn.by_user for turn in chunk.turns)
    return [
        replace(
            turn,
            by_user=turn.by_user or turn.speaker.casefold() in names or (turn.speaker.casefold() == "user" and own),
        )
        for turn in chunk.turns
    ]


def user_messages(chunks: Iterable[Chunk], me: Collection[str]) -> Iterator[Turn]:
    """Every turn the user wrote in `chunks`."""
    for chunk in chunks:
        yield from (turn for turn in chat_turns(chunk, me) if turn.by_user and turn.text)
