"""Conversations and mail kept as structured records (issue 11, part 2): each bug that came from rendering
them as text and parsing it back, and the migration of a memory written by pllm 0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder

from pllm_cli.ingest.pipeline import IngestOptions, ingest_paths
from pllm_cli.memory.forgetting import ForgetRule
from pllm_cli.memory.migrations import SCHEMA_VERSION
from pllm_cli.memory.records import Chunk, Mail, Turn
from pllm_cli.memory.store import ChromaStore
from pllm_cli.profile.extract import statements

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_MEMORY = FIXTURES / "memory-0.1"  # written by pllm 0.1 (commit 1baad2e): see its README.md

ZOE_CHAT = [
    {"conversation": "zoe", "id": "z1", "speaker": "Zoe", "time": "", "text": "Dinner on Friday at the usual place?"},
    {
        "conversation": "zoe",
        "id": "z2",
        "speaker": "Maya",
        "time": "",
        "text": "Yes, see you then.\nPS: I moved to Lisbon in January for my new job",
    },
    {"conversation": "zoe", "id": "z3", "speaker": "Zoe", "time": "", "text": "Lisbon! Tell me everything on Friday."},
]
SENT_TO_ZOE = """From: Maya Berg <maya@example.org>
To: Zoe Park <zoe@example.org>
Subject: New address
Date: Tue, 03 Feb 2026 09:00:00 +0100
Message-ID: <sent-1@example.org>

I moved to Lisbon last month and I love the light here.
"""
FROM_ZOE = """From: Zoe Park <zoe@example.org>
To: Maya Berg <maya@example.org>
Subject: Friday
Date: Wed, 04 Feb 2026 18:30:00 +0100
Message-ID: <zoe-1@example.org>

Looking forward to Friday, I will bring the photos from Porto.
"""


def write_inputs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoe.jsonl").write_text("\n".join(json.dumps(row) for row in ZOE_CHAT) + "\n", encoding="utf-8")
    (folder / "sent.eml").write_text(SENT_TO_ZOE, encoding="utf-8")
    (folder / "from-zoe.eml").write_text(FROM_ZOE, encoding="utf-8")
    (folder / "zoe-birthday.md").write_text("# Zoe's birthday\n\nBuy her a Hagi tea bowl in March.\n", encoding="utf-8")
    return folder


def chunks_by_name(store: ChromaStore) -> dict[str, Chunk]:
    return {Path(chunk.source).name: chunk for chunk in store.index.iter_chunks()}


def self_statements(store: ChromaStore) -> list[tuple[str, tuple[str, ...]]]:
    """(sentence, message ids) of what the profile would read as the user's own statements."""
    formats = {record.source: record.format for record in store.sources()}
    found = []
    for chunk in store.index.iter_chunks():
        for statement in statements(chunk, ["Maya"], source_format=formats[chunk.source], ingested_at="2026-03-01"):
            if statement.origin == "self":
                found.append((statement.text, statement.evidence.message_ids))
    return found


@pytest.fixture
def ingested(tmp_path: Path, store: ChromaStore, fake_embedder: FakeEmbedder) -> ChromaStore:
    report = ingest_paths(
        [write_inputs(tmp_path / "inputs")], store, fake_embedder, options=IngestOptions(me=("Maya",))
    )
    assert not report.failed
    return store


def test_an_undated_multi_line_message_is_one_turn_of_its_writer(ingested: ChromaStore) -> None:
    """It used to become a turn by a speaker "PS", and the user's "I moved to Lisbon" was lost to the profile."""
    chat = chunks_by_name(ingested)["zoe.jsonl"]
    assert [(t.message_id, t.speaker, t.by_user) for t in chat.turns] == [
        ("z1", "Zoe", False),
        ("z2", "Maya", True),
        ("z3", "Zoe", False),
    ]
    assert chat.turns[1].text == "Yes, see you then.\nPS: I moved to Lisbon in January for my new job"
    assert ("PS: I moved to Lisbon in January for my new job", ("z2",)) in self_statements(ingested)


def test_the_profile_reads_the_mail_the_user_sent(ingested: ChromaStore) -> None:
    """The profile listed the format "mail"; the readers write "email" and "mbox"."""
    mine = [text for text, _ in self_statements(ingested)]
    assert "I moved to Lisbon last month and I love the light here." in mine
    assert not any("photos from Porto" in text for text in mine)  # Zoe's mail is not the user's


def test_forget_by_speaker_for_a_gone_file_keeps_mail_to_them_and_notes_about_them(
    tmp_path: Path, ingested: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    """The SQL copy of the rule matched the name anywhere in a heading: a mail *to* Zoe and a note headed
    "Zoe's birthday" were deleted with Zoe's own messages."""
    from pllm_cli.ingest.pipeline import forget_by_rule

    shutil.rmtree(tmp_path / "inputs")  # every file is gone: the rule works on the stored chunks
    results = forget_by_rule(ForgetRule("speaker", "zoe"), ingested, fake_embedder, IngestOptions(me=("Maya",)))
    assert {Path(r.source).name: r.rebuilt for r in results} == {"from-zoe.eml": False, "zoe.jsonl": False}
    left = chunks_by_name(ingested)
    assert set(left) == {"sent.eml", "zoe-birthday.md", "zoe.jsonl"}
    assert [t.message_id for t in left["zoe.jsonl"].turns] == ["z2"]  # Maya's message stays
    assert left["sent.eml"].mail is not None and left["sent.eml"].mail.to == ("Zoe Park <zoe@example.org>",)
    assert ingested.source(str(tmp_path / "inputs" / "zoe.jsonl")).messages == 1  # type: ignore[union-attr]
    hits = ingested.search(fake_embedder.vector("Lisbon"), "Lisbon", 10)
    assert all(t.speaker != "Zoe" for hit in hits for t in (*hit.chunk.turns, *hit.chunk.context))


def test_the_rule_is_one_rule_for_files_present_and_gone(
    tmp_path: Path, ingested: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    """Forgetting with the files present (re-read) and gone (stored chunks) leaves the same messages."""
    from pllm_cli.ingest.pipeline import forget_by_rule

    other = ChromaStore(tmp_path / "other", embedding_model=fake_embedder.name)
    try:
        folder = write_inputs(tmp_path / "copy")
        ingest_paths([folder], other, fake_embedder, options=IngestOptions(me=("Maya",)))
        shutil.rmtree(tmp_path / "inputs")
        rule = ForgetRule("speaker", "Zoe Park")  # an e-mail sender by display name
        forget_by_rule(rule, ingested, fake_embedder, IngestOptions(me=("Maya",)))
        forget_by_rule(rule, other, fake_embedder, IngestOptions(me=("Maya",)))
        assert (
            set(chunks_by_name(ingested)) == set(chunks_by_name(other)) == {"sent.eml", "zoe-birthday.md", "zoe.jsonl"}
        )
    finally:
        other.close()


def test_mail_sender_rules() -> None:
    mail = Mail("Zoe Park <zoe@example.org>", ("Maya <maya@example.org>",))
    assert all(mail.sent_by(name) for name in ("Zoe Park", "zoe park", "zoe@example.org", "zoe"))
    assert not any(mail.sent_by(name) for name in ("Maya", "maya@example.org", "Park Zoe", "", "zo"))
    assert ForgetRule("speaker", "zoe").drops_mail(mail)
    assert not ForgetRule("speaker", "maya").drops_mail(mail)  # a recipient is not the sender


def test_redact_masks_speakers_and_conversation_titles(
    tmp_path: Path, store: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    """A WhatsApp export names an unsaved contact by phone number: in its title and on every message."""
    number = "+44 7700 900123"
    chat = tmp_path / f"WhatsApp Chat with {number}.txt"
    chat.write_text(
        f"12/03/2024, 09:15 - {number}: Hi Maya, it is Tom from the climbing gym\n"
        "12/03/2024, 09:17 - Maya: Hi Tom! See you on Thursday\n",
        encoding="utf-8",
    )
    report = ingest_paths([chat], store, fake_embedder, options=IngestOptions(me=("Maya",), redact=True))
    assert not report.failed, report.files
    [chunk] = store.index.iter_chunks()
    shown = json.dumps({**chunk.to_view(), "source": ""}, ensure_ascii=False)  # the file's path is its identity
    assert "7700" not in shown and "900123" not in shown
    assert "[phone]" in chunk.conversation and chunk.turns[0].speaker == "[phone]"
    indexed = " ".join(row[0] for row in store.index.db.execute("SELECT text FROM chunks_fts"))
    assert "900123" not in indexed


def test_records_round_trip_through_the_store(ingested: ChromaStore) -> None:
    for chunk in ingested.index.iter_chunks():
        assert Chunk.from_dict(chunk.to_dict()) == chunk
        assert chunk.id == Chunk.make_id(chunk.source, chunk.position, chunk.text)
    stored = ingested.index.db.execute("SELECT text, meta FROM chunks").fetchall()
    chat_rows = [meta for text, meta in stored if json.loads(meta)["kind"] == "chat"]
    assert chat_rows and all('"turns"' in meta for meta in chat_rows)
    assert all(text == "" for text, meta in stored if json.loads(meta)["kind"] == "chat")  # no rendered copy


# --- a memory written by pllm 0.1 ------------------------------------------------------------------------


@pytest.fixture
def old_memory(tmp_path: Path) -> Any:
    directory = tmp_path / "memory"
    shutil.copytree(OLD_MEMORY, directory, ignore=shutil.ignore_patterns("README.md", "make.py"))
    store = ChromaStore(directory, embedding_model=FakeEmbedder().name)
    yield store
    store.close()


def test_a_memory_written_by_0_1_is_structured_on_first_open(old_memory: ChromaStore) -> None:
    assert old_memory.index.migrated == [3]
    assert old_memory.index.get_meta("schema_version") == str(SCHEMA_VERSION)
    chunks = chunks_by_name(old_memory)
    zoe = chunks["zoe.jsonl"]
    assert [(t.message_id, t.speaker, t.by_user) for t in zoe.turns] == [
        ("z1", "Zoe", False),
        ("z2", "Maya", True),  # "PS" is not one of the chunk's speakers: a line of Maya's message
        ("z3", "Zoe", False),
    ]
    assert zoe.turns[1].text == "Yes, see you then.\nPS: I moved to Lisbon in January for my new job"
    elin = next(c for c in old_memory.index.iter_chunks() if c.source.endswith("elin.jsonl") and c.position == 0)
    assert elin.turns[1] == Turn(
        "e2", "Maya", "I am! I will bake cardamom buns.\nNote: a double batch", "2026-01-27T18:45", True
    )
    sent, received = chunks["sent.eml"], chunks["from-zoe.eml"]
    assert sent.mail is not None and sent.mail.sender == "Maya Berg <maya@example.org>"
    assert sent.mail.to == ("Zoe Park <zoe@example.org>",) and sent.mail.subject == "New address"
    assert sent.mail.message_id == "<sent-1@example.org>" and sent.body.startswith("I moved to Lisbon")
    assert received.mail is not None and received.mail.sent_by("zoe")
    note = chunks["zoe-birthday.md"]
    assert (note.mail, note.section, note.body) == (None, "Zoe's birthday", "Buy her a Hagi tea bowl in March.")
    assert note.text == "Zoe's birthday\n\nBuy her a Hagi tea bowl in March."


def test_a_migrated_memory_searches_forgets_and_feeds_the_profile(old_memory: ChromaStore) -> None:
    from pllm_cli.ingest.pipeline import forget_by_rule

    embedder = FakeEmbedder()
    hits = old_memory.search(embedder.vector("tea bowl"), "Hagi tea bowl", 3)
    assert Path(hits[0].chunk.source).name == "zoe-birthday.md"
    assert ("PS: I moved to Lisbon in January for my new job", ("z2",)) in self_statements(old_memory)
    assert "I moved to Lisbon last month and I love the light here." in [t for t, _ in self_statements(old_memory)]
    forget_by_rule(ForgetRule("speaker", "zoe"), old_memory, embedder, IngestOptions(me=("Maya",)))
    assert set(chunks_by_name(old_memory)) == {"sent.eml", "zoe-birthday.md", "zoe.jsonl", "elin.jsonl"}
    assert all(t.speaker != "Zoe" for c in old_memory.index.iter_chunks() for t in (*c.turns, *c.context))


def test_the_migration_keeps_what_a_newer_pllm_wrote_meanwhile(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    """Two processes may open an old memory at once: the second finds the step done and does nothing."""
    directory = tmp_path / "memory"
    shutil.copytree(OLD_MEMORY, directory, ignore=shutil.ignore_patterns("README.md", "make.py"))
    first = ChromaStore(directory, embedding_model=fake_embedder.name)
    second = ChromaStore(directory, embedding_model=fake_embedder.name)
    try:
        assert first.index.migrated == [3] and second.index.migrated == []
        assert list(first.index.iter_chunks()) == list(second.index.iter_chunks())
    finally:
        first.close()
        second.close()
