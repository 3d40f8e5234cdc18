"""Cutting documents into chunks that respect their structure.

Prose is packed paragraph by paragraph under its heading path; chat is cut into windows of consecutive
turns of one conversation, each line keeping its time and speaker, and a window never spans a long pause. A
turn is a burst: the messages one person sends before the other answers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from pllm_cli.ingest.document import Document, Message, Section
from pllm_cli.memory.records import Chunk, Turn

TEXT_CHUNK_WORDS = 110  # ~1.5 wordpieces a word: stays within MiniLM's 256-wordpiece window
# Small windows: retrieval is judged by what fits in a few hundred prompt tokens. On LoCoMo hybrid evidence
# recall within 512 tokens (`pllm eval retrieval`, docs/retrieval.md): windows of 6 turns / 120 words 62.1,
# 8 / 50 67.8; with the turn before searched along and neighbours added when packing, 8 / 50 74.8, 3 / 50 77.1,
# 3 / 40 78.3, 1 turn 78.8 (single turns would leave the profile without exchanges to read). On chats typed
# as real people type (bench/messy_chats.py: bursts of short messages, slang, typos) counting a burst as one
# turn took 69.7 to 72.4, and searching with the whole burst before a window (not its last message) to 74.3.
CHAT_CHUNK_WORDS = 40
CHAT_CHUNK_TURNS = 3
CHAT_CONTEXT_TURNS = 1  # turns before a window that are embedded and indexed with it (not shown)
CHAT_CONTEXT_MESSAGES = 4  # at most this many messages of that turn (a burst of short ones)
CHAT_PAUSE = timedelta(hours=6)
# Part of each file's content key: a new version re-reads every file at the next ingest. 3: chat turns and
# e-mail headers stored as structured fields (a multi-line message is one turn, whatever its lines say).
CHUNKING_VERSION = 4  # 4: a burst of one speaker's messages counts as one turn

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_long(paragraph: str, limit: int) -> Iterator[str]:
    """Split an over-long paragraph at sentence ends, then at word boundaries."""
    words: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        sentence_words = sentence.split()
        if words and len(words) + len(sentence_words) > limit:
            yield " ".join(words)
            words = []
        while len(sentence_words) > limit:
            yield " ".join(sentence_words[:limit])
            sentence_words = sentence_words[limit:]
        words.extend(sentence_words)
    if words:
        yield " ".join(words)


def pack_paragraphs(text: str, limit: int = TEXT_CHUNK_WORDS) -> list[str]:
    """Group paragraphs into pieces of at most `limit` words (long paragraphs are split)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        parts = [paragraph] if len(paragraph.split()) <= limit else list(_split_long(paragraph, limit))
        for part in parts:
            words = len(part.split())
            if current and size + words > limit:
                pieces.append("\n\n".join(current))
                current, size = [], 0
            current.append(part)
            size += words
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def _parsed(message: Message) -> datetime | None:
    try:
        return datetime.fromisoformat(message.time) if message.time else None
    except ValueError:
        return None


def _pause_between(a: Message, b: Message) -> bool:
    ta, tb = _parsed(a), _parsed(b)
    if ta is None or tb is None or (ta.tzinfo is None) != (tb.tzinfo is None):
        return False
    return abs(tb - ta) > CHAT_PAUSE


def chat_windows(
    messages: Iterable[Message], max_words: int = CHAT_CHUNK_WORDS, max_turns: int = CHAT_CHUNK_TURNS
) -> Iterator[list[Message]]:
    """Windows of consecutive messages of one conversation, cut at size limits and long pauses.

    A turn is what one person says before the other answers: a burst of short messages from one speaker
    counts once against `max_turns` (people type a thought in three messages; the window should hold the
    exchange, not a third of one side of it). `max_words` still bounds the window."""
    window: list[Message] = []
    words = turns = 0
    for message in messages:
        if not message.text.strip():
            continue
        size = len(message.text.split())
        new_turn = not window or message.speaker != window[-1].speaker
        if window and (
            message.conversation != window[-1].conversation
            or (new_turn and turns >= max_turns)
            or words + size > max_words
            or _pause_between(window[-1], message)
        ):
            yield window
            window, words, turns = [], 0, 0
            new_turn = True
        window.append(message)
        words += size
        turns += new_turn
    if window:
        yield window


def last_turns(messages: Sequence[Message], turns: int, limit: int) -> list[Message]:
    """The messages of the last `turns` turns (runs of one speaker), at most `limit` of them."""
    start = len(messages)
    for _ in range(turns):
        if start == 0:
            break
        speaker = messages[start - 1].speaker
        while start > 0 and messages[start - 1].speaker == speaker and len(messages) - start < limit:
            start -= 1
    return list(messages[start:])


def _section_chunks(document: Document, section: Section, position: int) -> Iterator[Chunk]:
    for offset, piece in enumerate(pack_paragraphs(section.text)):
        chunk = Chunk(
            id="",
            source=document.source,
            position=position + offset,
            kind="text",
            body=piece,
            section=section.heading if section.mail is None else "",
            mail=section.mail,
            start_time=section.time,
            end_time=section.time,
        )
        yield replace(chunk, id=Chunk.make_id(document.source, chunk.position, chunk.text))


def by_conversation(messages: Iterable[Message]) -> list[Message]:
    """Messages grouped by conversation (in order of first appearance), file order kept within each:
    an export that interleaves chats still gets windows of one conversation's consecutive turns."""
    groups: dict[str, list[Message]] = {}
    for message in messages:
        groups.setdefault(message.conversation, []).append(message)
    return [message for group in groups.values() for message in group]


def is_from_user(message: Message, me: Collection[str]) -> bool:
    """The source's word if it has one (ChatGPT/Claude roles), else whether the speaker is one of the user's names."""
    if message.from_user is not None:
        return message.from_user
    return message.speaker.strip().casefold() in {name.casefold() for name in me}


def _turn(message: Message, me: Collection[str]) -> Turn:
    return Turn(message.id, message.speaker, message.text.strip(), message.time, is_from_user(message, me))


def chunk_document(document: Document, me: Collection[str] = (), start: int = 0) -> list[Chunk]:
    """Chunks of `document`; `me` holds the user's names, so that chat turns record whether the user wrote them.
    Positions count from `start` (a part of a large file goes on from the parts before it)."""
    chunks: list[Chunk] = []
    for section in document.sections:
        chunks.extend(_section_chunks(document, section, start + len(chunks)))
    previous: list[Message] = []
    for window in chat_windows(by_conversation(document.messages)):
        same = previous and previous[-1].conversation == window[0].conversation
        same = same and not _pause_between(previous[-1], window[0])
        context = (
            tuple(_turn(m, me) for m in last_turns(previous, CHAT_CONTEXT_TURNS, CHAT_CONTEXT_MESSAGES)) if same else ()
        )
        previous = window
        chunk = Chunk(
            id="",
            source=document.source,
            position=start + len(chunks),
            kind="chat",
            conversation=window[0].conversation,
            turns=tuple(_turn(m, me) for m in window),
            context=context,
            start_time=window[0].time,
            end_time=window[-1].time,
        )
        chunks.append(replace(chunk, id=Chunk.make_id(document.source, chunk.position, chunk.text)))
    return chunks
