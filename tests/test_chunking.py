"""Chunking: prose packed under its heading path, chat cut into windows of one conversation."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from conftest import EXAMPLES

from pllm_cli.ingest.chunking import (
    CHAT_CHUNK_TURNS,
    TEXT_CHUNK_WORDS,
    chat_windows,
    chunk_document,
    last_turns,
    pack_paragraphs,
)
from pllm_cli.ingest.document import Document, Message, Section
from pllm_cli.ingest.readers import read_document
from pllm_cli.memory.records import Chunk, Mail, Turn


def message(number: int, time: str, speaker: str = "Maya", conversation: str = "family", text: str = "") -> Message:
    return Message(conversation, f"m{number:04d}", speaker, time, text or f"message number {number}")


def chat_document(messages: list[Message]) -> Document:
    return Document(source="/notes/chat.jsonl", format="chat-jsonl", title="chat", messages=messages)


def test_text_chunks_start_with_their_heading_path() -> None:
    path = EXAMPLES / "notes" / "elin-gift-ideas.md"
    chunks = chunk_document(read_document(path, path.read_bytes()))
    assert chunks, "a note gives chunks"
    for chunk in chunks:
        assert chunk.kind == "text"
        assert chunk.source == str(path)
        assert chunk.text.startswith(chunk.heading + "\n\n")
    hagi = [c for c in chunks if "Hagi-ware" in c.text]
    assert [c.heading for c in hagi] == ["Gift ideas for Elin > What she's into right now"]
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chunk_ids_are_stable_and_depend_on_source_position_and_text() -> None:
    document = Document("/n/a.md", "markdown", "a", sections=[Section("A", "one"), Section("A > B", "two")])
    first, second = chunk_document(document), chunk_document(document)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == 2
    moved = Document("/n/b.md", "markdown", "a", sections=document.sections)
    assert {c.id for c in chunk_document(moved)}.isdisjoint(c.id for c in first)
    edited = Document("/n/a.md", "markdown", "a", sections=[Section("A", "one"), Section("A > B", "two!")])
    edited_ids = [c.id for c in chunk_document(edited)]
    assert edited_ids[0] == first[0].id and edited_ids[1] != first[1].id


def test_long_paragraph_is_split_and_no_word_is_lost() -> None:
    sentences = [f"Sentence {n} has exactly seven words here." for n in range(100)]  # 700 words
    paragraph = " ".join(sentences)
    pieces = pack_paragraphs(paragraph)
    assert len(pieces) >= 700 // TEXT_CHUNK_WORDS
    assert all(len(p.split()) <= TEXT_CHUNK_WORDS for p in pieces)
    assert " ".join(pieces).split() == paragraph.split()
    # split at sentence ends when it can
    assert all(p.endswith("here.") for p in pieces)


def test_run_on_sentence_is_split_at_word_boundaries() -> None:
    words = [f"w{n}" for n in range(400)]
    pieces = pack_paragraphs(" ".join(words), limit=100)
    assert [len(p.split()) for p in pieces] == [100, 100, 100, 100]
    assert " ".join(pieces).split() == words


def test_short_paragraphs_are_packed_together() -> None:
    text = "First paragraph.\n\nSecond paragraph.\n\n\n\nThird one."
    assert pack_paragraphs(text) == ["First paragraph.\n\nSecond paragraph.\n\nThird one."]
    assert pack_paragraphs(text, limit=3) == ["First paragraph.", "Second paragraph.", "Third one."]


def test_section_chunks_carry_mail_headers_and_time() -> None:
    when = "2026-02-10T08:47:12+01:00"
    mail = Mail("Zoe <zoe@example.com>", ("Maya <maya@example.com>",), (), when, "hi", "<x@y>")
    section = Section("hi", "body", time=when, mail=mail)
    [chunk] = chunk_document(Document("/m/a.eml", "email", "hi", sections=[section]))
    assert chunk.mail == mail and chunk.body == "body"
    assert chunk.message_ids == ("<x@y>",)
    assert chunk.start_time == chunk.end_time == when
    assert chunk.text == "Email from Zoe <zoe@example.com> to Maya <maya@example.com>, 2026-02-10 08:47: hi\n\nbody"
    assert Chunk.from_dict(chunk.to_dict()) == chunk


def test_chat_chunk_lines_keep_time_and_speaker_and_ids() -> None:
    messages = [
        message(1, "2026-01-27T18:42:00+01:00", "Mamma", text="Hej allihopa!"),
        message(2, "2026-01-27T18:45:00+01:00", "Elin", text="plenty of time\n😅"),
        message(3, "", "Maya", text="no time here"),
    ]
    [chunk] = chunk_document(chat_document(messages))
    assert chunk.kind == "chat"
    assert chunk.text.splitlines() == [
        "[27 January 2026 18:42] Mamma: Hej allihopa!",
        "[27 January 2026 18:45] Elin: plenty of time",
        "😅",
        "Maya: no time here",
    ]
    assert chunk.message_ids == ("m0001", "m0002", "m0003")
    assert chunk.speakers == ("Mamma", "Elin", "Maya")
    assert chunk.conversation == chunk.heading == "family"
    assert chunk.start_time == "2026-01-27T18:42:00+01:00"
    assert chunk.end_time == ""
    assert chunk.turns[1] == Turn("m0002", "Elin", "plenty of time\n😅", "2026-01-27T18:45:00+01:00", False)
    assert Chunk.from_dict(chunk.to_dict()) == chunk


def test_chat_window_splits_at_a_long_pause() -> None:
    messages = [
        message(1, "2026-02-01T08:00:00+01:00"),
        message(2, "2026-02-01T13:59:00+01:00"),  # 5 h 59 min later: same window
        message(3, "2026-02-01T20:00:00+01:00"),  # 6 h 1 min later: new window
        message(4, "2026-02-01T20:05:00+01:00"),
    ]
    windows = list(chat_windows(messages))
    assert [[m.id for m in w] for w in windows] == [["m0001", "m0002"], ["m0003", "m0004"]]


def test_chat_windows_hold_one_conversation_even_when_the_file_interleaves() -> None:
    messages = [
        message(1, "2026-02-01T08:00:00+01:00", conversation="family"),
        message(2, "2026-02-01T08:01:00+01:00", conversation="maya-jonas"),
        message(3, "2026-02-01T08:02:00+01:00", conversation="maya-jonas"),
        message(4, "2026-02-01T08:03:00+01:00", conversation="family"),
    ]
    chunks = chunk_document(chat_document(messages))
    assert [c.message_ids for c in chunks] == [("m0001", "m0004"), ("m0002", "m0003")]
    assert [c.conversation for c in chunks] == ["family", "maya-jonas"]


def turns_of(messages: list[Message] | tuple[Turn, ...]) -> int:
    """How many turns (runs of one speaker's messages) a window holds."""
    return sum(1 for n, m in enumerate(messages) if n == 0 or m.speaker != messages[n - 1].speaker)


def test_chat_window_size_limits_and_empty_messages() -> None:
    speakers = itertools.cycle(["Maya", "Elin"])
    messages = [message(n, f"2026-02-01T08:{n:02d}:00+01:00", next(speakers)) for n in range(1, 15)]
    messages.insert(3, message(99, "2026-02-01T08:03:30+01:00", text="   "))
    windows = list(chat_windows(messages))
    assert all(len(w) <= CHAT_CHUNK_TURNS for w in windows)
    assert [m.id for w in windows for m in w] == [f"m{n:04d}" for n in range(1, 15)]  # the blank one is gone
    long_texts = [message(n, "", text="word " * 50) for n in range(1, 4)]
    assert [len(w) for w in chat_windows(long_texts, max_words=120)] == [2, 1]


def test_a_burst_of_short_messages_counts_as_one_turn() -> None:
    """People type one thought as several messages: a window holds whole exchanges, bounded by words."""
    said = ["Maya", "Maya", "Maya", "Elin", "Elin", "Maya", "Elin", "Maya", "Maya"]
    messages = [message(n, f"2026-02-01T08:{n:02d}:00+01:00", who, text="ok so") for n, who in enumerate(said)]
    windows = list(chat_windows(messages))
    assert [[m.speaker for m in w] for w in windows] == [said[:6], said[6:]]
    assert all(turns_of(w) <= CHAT_CHUNK_TURNS for w in windows)
    monologue = [message(n, f"2026-02-01T09:{n:02d}:00+01:00", text="word " * 9) for n in range(10)]
    assert [len(w) for w in chat_windows(monologue)] == [4, 4, 2]  # one speaker: the word limit cuts


def test_last_turns_take_a_whole_burst_within_a_limit() -> None:
    said = ["Elin", "Maya", "Maya", "Maya"]
    messages = [message(n, "", who) for n, who in enumerate(said)]
    assert [m.id for m in last_turns(messages, 1, 4)] == ["m0001", "m0002", "m0003"]
    assert [m.id for m in last_turns(messages, 1, 2)] == ["m0002", "m0003"]
    assert [m.id for m in last_turns(messages, 2, 4)] == ["m0000", "m0001", "m0002", "m0003"]
    assert last_turns([], 1, 4) == []


def test_example_chat_chunks_cover_every_message_once() -> None:
    path = EXAMPLES / "chats" / "family.jsonl"
    document = read_document(path, path.read_bytes())
    chunks = chunk_document(document)
    ids = [i for c in chunks for i in c.message_ids]
    assert sorted(ids) == sorted(m.id for m in document.messages) and len(ids) == len(set(ids))
    for conversation in {m.conversation for m in document.messages}:  # file order kept within a conversation
        in_chunks = [i for c in chunks if c.conversation == conversation for i in c.message_ids]
        assert in_chunks == [m.id for m in document.messages if m.conversation == conversation]
    for chunk in chunks:
        assert turns_of(chunk.turns) <= CHAT_CHUNK_TURNS
        assert re.match(r"\[\d{1,2} \w+ 2026 \d\d:\d\d\] ", chunk.text)
        assert len({m.conversation for m in document.messages if m.id in chunk.message_ids}) == 1


def test_chunking_a_document_with_sections_and_messages(tmp_path: Path) -> None:
    document = Document(
        "/x", "mixed", "x", sections=[Section("Top", "prose")], messages=[message(1, "2026-02-01T08:00:00Z")]
    )
    chunks = chunk_document(document)
    assert [(c.kind, c.position) for c in chunks] == [("text", 0), ("chat", 1)]


def test_a_chat_window_is_searched_with_the_turn_before_it() -> None:
    speakers = itertools.cycle(["Maya", "Elin"])
    messages = [
        message(n, f"2026-02-01T08:0{n}:00+01:00", next(speakers), text=f"turn {n} " + "word " * 15)
        for n in range(1, 7)
    ]
    chunks = chunk_document(chat_document(messages))
    assert len(chunks) > 1 and chunks[0].context == ()
    for before, chunk in itertools.pairwise(chunks):
        assert chunk.context == before.turns[-1:]
        assert chunk.embedding_text.startswith(f"{before.turns[-1].speaker}: turn ")
        assert "[2026" not in chunk.embedding_text  # stamps are not embedded


def test_no_context_across_a_long_pause_or_from_another_conversation() -> None:
    messages = [
        message(1, "2026-02-01T08:00:00+01:00", conversation="family"),
        message(2, "2026-02-01T08:01:00+01:00", conversation="work"),
        message(3, "2026-02-01T20:00:00+01:00", conversation="work"),  # after a 6 h pause
    ]
    chunks = chunk_document(chat_document(messages))
    assert [c.message_ids for c in chunks] == [("m0001",), ("m0002",), ("m0003",)]
    assert [c.context for c in chunks] == [(), (), ()]
