"""Retrieval on a real memory (Chroma + SQLite on disk, fake embedder): time awareness, neighbours, packing,
and the index's time columns, including those of a memory written before they existed."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.ingest.pipeline import IngestOptions, ingest_paths
from pllm_cli.memory import index as index_module
from pllm_cli.memory import store as store_module
from pllm_cli.memory.index import ChunkIndex, _informative, fts_terms
from pllm_cli.memory.migrations import SCHEMA_VERSION
from pllm_cli.memory.passages import passage_tokens
from pllm_cli.memory.records import Chunk, SourceRecord
from pllm_cli.memory.retrieval import Retriever, Techniques

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)

# Two sessions that say nearly the same thing, months apart; chatter around each.
SESSIONS = {
    "2026-01-10T19:00:00": ["we had ramen at Ichiran tonight", "it was great, let's go again", "agreed"],
    "2026-03-03T19:00:00": ["we had ramen at Ichiran tonight again", "still great", "next time sushi"],
}


def chat_export(path: Path) -> Path:
    rows = []
    for day, texts in SESSIONS.items():
        start = datetime.fromisoformat(day)
        for n, text in enumerate(texts):
            speaker = "Maya" if n % 2 == 0 else "Elin"
            time = start.replace(minute=n).isoformat()
            rows.append(
                {"conversation": "elin", "id": f"{day[:10]}.{n}", "speaker": speaker, "time": time, "text": text}
            )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def memory(tmp_path: Path, store: Any, fake_embedder: Any) -> Any:
    report = ingest_paths([chat_export(tmp_path / "elin.jsonl")], store, fake_embedder, options=IngestOptions())
    assert not report.failed
    return store


@pytest.mark.parametrize("exact_period", [300, 0], ids=["vectors-of-the-period", "filtered-wide-pool"])
@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_a_question_naming_a_time_finds_that_period_first(
    memory: Any, fake_embedder: Any, mode: Any, exact_period: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "EXACT_PERIOD", exact_period)  # 0: every period counts as large
    retriever = Retriever(memory, fake_embedder, mode, now=datetime(2026, 3, 20))
    for question, day in [
        ("where did we have ramen on 3 March 2026?", "2026-03-03"),
        ("where did we have ramen in January 2026?", "2026-01-10"),
        ("where did we have ramen in January?", "2026-01-10"),
        ("where did we have ramen earlier this month?", "2026-03-03"),
    ]:
        assert retriever.search(question, 3)[0].chunk.start_time.startswith(day), question


def test_without_time_awareness_the_period_is_not_favoured(memory: Any, fake_embedder: Any) -> None:
    plain = Retriever(memory, fake_embedder, "lexical", techniques=Techniques(time_aware=False))
    aware = Retriever(memory, fake_embedder, "lexical", now=datetime(2026, 3, 20))
    question = "ramen Ichiran tonight in January"
    assert plain.periods(question) == []
    assert plain.search(question, 1)[0].chunk.start_time.startswith("2026-03-03")  # more matching words
    assert aware.search(question, 1)[0].chunk.start_time.startswith("2026-01-10")


def test_recall_packs_passages_with_neighbouring_turns_within_the_budget(memory: Any, fake_embedder: Any) -> None:
    retriever = Retriever(memory, fake_embedder, "hybrid", now=datetime(2026, 3, 20))
    cost = passage_tokens
    passages = retriever.recall("what was next time going to be? sushi", 1000, cost)
    assert passages and sum(cost(p) for p in passages) <= 1000
    ids = [i for p in passages for i in p.message_ids]
    assert len(ids) == len(set(ids)), "no turn twice"
    assert "2026-03-03.2" in passages[0].message_ids
    small = retriever.recall("sushi", 12, cost)
    assert sum(cost(p) for p in small) <= 12


def test_neighbours_are_the_chunks_around_in_the_same_source(memory: Any) -> None:
    chunks = list(memory.index.iter_chunks())
    assert len(chunks) >= 2
    before, after = memory.neighbours(chunks[1])
    assert before == chunks[0] and (after is None or after.position == 2)
    assert memory.neighbours(chunks[0])[0] is None


def test_the_latest_time_and_period_filters_use_wall_clock_time(memory: Any) -> None:
    assert memory.latest_time() == datetime(2026, 3, 3, 19, 2)
    march = [(datetime(2026, 3, 1), datetime(2026, 4, 1))]
    ids = memory.index.ids_in_periods(march, 100)
    assert ids and all(c.start_time.startswith("2026-03") for c in memory.index.get(ids).values())
    assert memory.index.lexical_search("ramen", 10, march) and all(
        i in ids for i, _ in memory.index.lexical_search("ramen", 10, march)
    )
    assert memory.index.lexical_search("ramen", 10, [(datetime(2025, 1, 1), datetime(2025, 2, 1))]) == []


def test_a_memory_from_before_the_time_columns_gets_them_filled(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE chunks (id TEXT PRIMARY KEY, source TEXT NOT NULL, position INTEGER NOT NULL, "
        "text TEXT NOT NULL, meta TEXT NOT NULL)"
    )
    meta = {"kind": "chat", "start_time": "2026-02-03T19:04:00+01:00", "end_time": "2026-02-03T19:09:00+01:00"}
    db.execute("INSERT INTO chunks VALUES ('c1', '/a.jsonl', 0, '[2026-02-03 19:04] Maya: hi', ?)", (json.dumps(meta),))
    db.commit()
    db.close()
    index = ChunkIndex(path)
    try:
        row = index.db.execute("SELECT start_at, end_at FROM chunks WHERE id = 'c1'").fetchone()
        assert row == ("2026-02-03T19:04:00", "2026-02-03T19:09:00")
        assert index.latest_time() == datetime(2026, 2, 3, 19, 9)
    finally:
        index.close()


def test_a_memory_whose_bm25_rows_had_their_own_rowids_gets_them_aligned(tmp_path: Path) -> None:
    """Schema 1 let chunks_fts rowids differ from the chunks'; a period filter and deletions rely on them."""
    path = tmp_path / "index.sqlite3"
    old = ChunkIndex(path)
    old.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE chunks_fts")
    db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(id UNINDEXED, text)")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    days = {"c1": "2026-01-10T19:00:00", "c2": "2026-03-03T19:00:00"}
    for position, (chunk_id, day) in enumerate(days.items()):
        meta = json.dumps({"kind": "chat", "start_time": day, "end_time": day})
        row = (chunk_id, position, meta, day, day)
        db.execute("INSERT INTO chunks VALUES (?, '/a.jsonl', ?, 'ramen', ?, ?, ?)", row)
    db.execute("INSERT INTO chunks_fts (rowid, id, text) VALUES (7, 'c2', 'ramen again'), (9, 'c1', 'ramen')")
    db.close()
    index = ChunkIndex(path)
    try:
        pairs = index.db.execute("SELECT c.id FROM chunks c JOIN chunks_fts f ON f.rowid = c.rowid AND f.id = c.id")
        assert sorted(row[0] for row in pairs) == ["c1", "c2"]
        march = [(datetime(2026, 3, 1), datetime(2026, 4, 1))]
        assert [i for i, _ in index.lexical_search("ramen", 10, march)] == ["c2"]
        index.remove_chunks(["c2"])
        assert [i for i, _ in index.lexical_search("ramen", 10)] == ["c1"]
        assert index.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        index.close()


@pytest.fixture
def notes(tmp_path: Path) -> Any:
    """Ten dated notes, all about ramen; sushi in one of March, tea in two of January."""
    index = ChunkIndex(tmp_path / "notes.sqlite3")
    texts = ["ramen and tea", "ramen and tea"] + ["ramen again"] * 7 + ["ramen then sushi"]
    chunks = [
        Chunk(Chunk.make_id("/notes.md", n, text), "/notes.md", n, "text", text, start_time=day, end_time=day)
        for n, text in enumerate(texts)
        for day in [f"2026-01-1{n}T10:00:00" if n < 2 else f"2026-03-0{n}T10:00:00"]
    ]
    index.replace_source(SourceRecord("/notes.md", "x", "markdown", len(chunks), 0, "now"), chunks)
    yield index
    index.close()


def test_a_slow_query_leaves_out_words_most_of_the_memory_holds(notes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    terms = fts_terms("ramen sushi tea")
    assert _informative(notes.db, terms, 1) == terms  # a fast query keeps every word
    monkeypatch.setattr(index_module, "SLOW_QUERY", 1)
    assert _informative(notes.db, terms, 3) == ['"sushi"', '"tea"']  # ramen, in every note, is left out
    assert _informative(notes.db, terms, 4) == terms  # sushi and tea match too few notes for 4
    assert _informative(notes.db, ['"ramen"'], 1) == ['"ramen"']  # the only word is kept
    assert len(notes.lexical_search("ramen sushi tea", 4)) == 4


def test_a_period_is_searched_with_every_word(notes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The words left out of a slow query may be the only ones the period holds."""
    monkeypatch.setattr(index_module, "SLOW_QUERY", 1)
    march = [(datetime(2026, 3, 2), datetime(2026, 3, 8))]  # ramen again, no sushi
    assert notes.lexical_search("ramen sushi", 1, march)  # pruned to sushi, it would find nothing


def test_bm25_rows_stay_with_their_chunks_through_compaction_and_repair(memory: Any) -> None:
    index = memory.index
    first = next(index.iter_chunks())
    index.remove_chunks([first.id])
    index.compact()
    assert index.misaligned() == 0
    index.db.execute("UPDATE chunks SET rowid = rowid + 1000")  # what a dump and restore may do
    assert index.misaligned() > 0
    index.compact()
    assert index.misaligned() == 0
    march = [(datetime(2026, 3, 1), datetime(2026, 4, 1))]
    assert [i for i, _ in index.lexical_search("ramen", 10, march)] == index.ids_in_periods(march, 10)


def test_a_stray_bm25_row_does_not_block_the_next_ingest(tmp_path: Path, memory: Any, fake_embedder: Any) -> None:
    """A row left by an older pllm still running takes the rowid the next chunk gets: it is replaced."""
    index = memory.index
    next_rowid = index.db.execute("SELECT max(rowid) + 1 FROM chunks").fetchone()[0]
    index.db.execute("INSERT INTO chunks_fts (rowid, id, text) VALUES (?, 'stray', 'stray words')", (next_rowid,))
    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps({"conversation": "k", "id": "1", "speaker": "Karin", "time": "2026-03-04T10:00:00", "text": "tea"})
        + "\n"
    )
    assert not ingest_paths([other], memory, fake_embedder).failed
    assert index.lexical_search("stray", 10) == [] and index.misaligned() == 0


def test_a_newer_memory_keeps_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    ChunkIndex(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.close()
    index = ChunkIndex(path)
    try:
        assert index.get_meta("schema_version") == str(SCHEMA_VERSION + 1)
    finally:
        index.close()


def test_bm25_in_the_background_ranks_as_in_the_foreground(memory: Any) -> None:
    march = [(datetime(2026, 3, 1), datetime(2026, 4, 1))]
    for periods in ([], march):
        later = memory.index.lexical_search_later("ramen tonight", 10, periods)
        assert later.result() == memory.index.lexical_search("ramen tonight", 10, periods)
    memory.index.close()
    assert memory.index._worker is None and memory.index._reader is None


def test_a_file_cut_by_an_older_chunking_is_read_again(tmp_path: Path, store: Any, fake_embedder: Any) -> None:
    path = chat_export(tmp_path / "elin.jsonl")
    ingest_paths([path], store, fake_embedder)
    record = store.source(str(path))
    old = record.__class__(**{**record.to_dict(), "sha256": record.sha256.split("+")[0]})  # a 0.2 key
    store.index.db.execute("UPDATE sources SET sha256 = ? WHERE source = ?", (old.sha256, old.source))
    again = ingest_paths([path], store, fake_embedder)
    assert [f.status for f in again.files] == ["updated"]
    assert [f.status for f in ingest_paths([path], store, fake_embedder).files] == ["unchanged"]
