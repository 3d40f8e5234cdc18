"""The memory store: a real Chroma on disk plus the SQLite index, with the deterministic fake embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pllm_cli.errors import ExitCode, NotFoundError, StoreError
from pllm_cli.memory.index import fts_query
from pllm_cli.memory.records import Chunk, SourceRecord, Turn
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore, fuse

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)

NOTES = {
    "/notes/elin.md": [
        "Elin collects Hagi tea bowls from Japan",
        "Elin goes bouldering three times a week",
    ],
    "/notes/running.md": [
        "Half marathon training plan with long runs on Sunday",
        "Race day is 16 May, start group seven",
        "Interval sessions on Tuesday at the track",
    ],
    "/notes/work.md": ["My manager is Karin Ek and the deadline is 30 June"],
}


def make_chunks(source: str, texts: list[str]) -> list[Chunk]:
    return [
        Chunk(id=Chunk.make_id(source, n, t), source=source, position=n, kind="text", body=t)
        for n, t in enumerate(texts)
    ]


def put(store: ChromaStore, embedder: Any, source: str, texts: list[str], sha: str = "sha") -> list[Chunk]:
    chunks = make_chunks(source, texts)
    record = SourceRecord(source, sha, "markdown", len(chunks), 0, "2026-03-01T10:00:00+00:00")
    store.replace_source(record, chunks, embedder.embed([c.text for c in chunks]))
    return chunks


@pytest.fixture
def filled(store: ChromaStore, fake_embedder: Any) -> ChromaStore:
    for source, texts in NOTES.items():
        put(store, fake_embedder, source, texts)
    return store


def fts_rows(store: ChromaStore, source: str | None = None) -> int:
    if source is None:
        return int(store.index.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
    ids = [c.id for c in make_chunks(source, NOTES[source])]
    marks = ",".join("?" * len(ids))
    return int(store.index.db.execute(f"SELECT count(*) FROM chunks_fts WHERE id IN ({marks})", ids).fetchone()[0])


def sqlite_chunks(store: ChromaStore, source: str) -> int:
    return int(store.index.db.execute("SELECT count(*) FROM chunks WHERE source = ?", (source,)).fetchone()[0])


def chroma_ids(store: ChromaStore, source: str | None = None) -> set[str]:
    where = {"source": source} if source else None
    return set(store.collection.get(where=where, include=[])["ids"])


def test_counts_and_sources(filled: ChromaStore) -> None:
    assert filled.count() == 6
    assert filled.collection.count() == 6
    assert fts_rows(filled) == 6
    assert [r.source for r in filled.sources()] == sorted(NOTES)
    record = filled.source("/notes/running.md")
    assert record is not None and record.chunks == 3 and record.sha256 == "sha"
    assert filled.source("/notes/nothing.md") is None


def test_replace_source_replaces_every_chunk(filled: ChromaStore, fake_embedder: Any) -> None:
    old = {c.id for c in make_chunks("/notes/running.md", NOTES["/notes/running.md"])}
    new = put(filled, fake_embedder, "/notes/running.md", ["Marathon plan changed to a ten k"], sha="sha2")
    assert filled.count() == 4
    assert chroma_ids(filled, "/notes/running.md") == {new[0].id}
    assert old.isdisjoint(chroma_ids(filled))
    assert old.isdisjoint(filled.index.get(old))
    assert sqlite_chunks(filled, "/notes/running.md") == 1
    assert filled.source("/notes/running.md").sha256 == "sha2"  # type: ignore[union-attr]
    # the old text is gone from the lexical index too
    assert filled.index.lexical_search("interval track", 10) == []
    # other sources untouched
    assert sqlite_chunks(filled, "/notes/elin.md") == 2 and len(chroma_ids(filled, "/notes/elin.md")) == 2


def test_remove_source_leaves_no_trace(filled: ChromaStore) -> None:
    assert filled.remove_source("/notes/elin.md") == 2
    assert filled.source("/notes/elin.md") is None
    assert sqlite_chunks(filled, "/notes/elin.md") == 0
    assert fts_rows(filled, "/notes/elin.md") == 0
    assert chroma_ids(filled, "/notes/elin.md") == set()
    assert filled.collection.count() == filled.count() == fts_rows(filled) == 4
    assert filled.remove_source("/notes/elin.md") == 0  # again: nothing left to remove


def test_lexical_search(filled: ChromaStore, fake_embedder: Any) -> None:
    hits = filled.search(fake_embedder.vector("bouldering"), "who goes bouldering?", 3, mode="lexical")
    assert hits[0].chunk.body == "Elin goes bouldering three times a week"
    assert set(hits[0].scores) == {"lexical"}
    # stemming and diacritics: "races" finds "Race", "Kárin" finds "Karin"
    assert filled.search([], "races", 1, mode="lexical")[0].chunk.text.startswith("Race day")
    assert "Karin" in filled.search([], "Kárin", 1, mode="lexical")[0].chunk.text


def test_lexical_search_ignores_query_syntax(filled: ChromaStore) -> None:
    for query in ['AND OR NOT "', "tea*", "NEAR(tea bowls)", "-", "C++ e-mail: what's {x}", "_", ""]:
        filled.search([], query, 5, mode="lexical")  # must not raise
    assert fts_query('bowls "tea" AND') == '"bowls" OR "tea"'  # function words dropped
    assert fts_query("who was it") == '"who" OR "was" OR "it"'  # unless nothing else is left


def test_dense_search(filled: ChromaStore, fake_embedder: Any) -> None:
    text = "Elin collects Hagi tea bowls from Japan"
    hits = filled.search(fake_embedder.vector(text), "", 3, mode="dense")
    assert hits[0].chunk.body == text
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert set(hits[0].scores) == {"dense"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_search_fuses_both(filled: ChromaStore, fake_embedder: Any) -> None:
    query = "manager deadline"
    hits = filled.search(fake_embedder.vector(query), query, 2, mode="hybrid")
    assert hits[0].chunk.source == "/notes/work.md"
    assert set(hits[0].scores) == {"dense", "lexical"}
    assert len(hits) == 2
    fused = fuse({"a": [("x", 9.0), ("y", 1.0)], "b": [("y", 5.0)]})
    assert fused["y"] > fused["x"]


def test_search_returns_at_most_k(filled: ChromaStore, fake_embedder: Any) -> None:
    for k in (1, 3, 6, 50):
        hits = filled.search(fake_embedder.vector("the"), "the", k, mode="hybrid")
        assert len(hits) == min(k, 6)
        assert len({h.chunk.id for h in hits}) == len(hits)


def test_chunk_metadata_round_trips(store: ChromaStore, fake_embedder: Any) -> None:
    chunk = Chunk(
        id="c1",
        source="/c/chat.jsonl",
        position=0,
        kind="chat",
        conversation="maya-jonas",
        turns=(Turn("m0014", "Jonas", "coffee?", "2026-02-01T07:02:00+01:00"),),
        context=(Turn("m0013", "Maya", "morning!", "2026-02-01T07:01:00+01:00", by_user=True),),
        start_time="2026-02-01T07:02:00+01:00",
        end_time="2026-02-01T07:02:00+01:00",
    )
    record = SourceRecord("/c/chat.jsonl", "s", "chat-jsonl", 1, 1, "2026-03-01T10:00:00+00:00")
    store.replace_source(record, [chunk], fake_embedder.embed([chunk.text]))
    [hit] = store.search(fake_embedder.vector("coffee"), "coffee", 1)
    assert hit.chunk == chunk
    data = hit.to_dict()
    assert data["chunk_id"] == "c1" and data["message_ids"] == ["m0014"] and "id" not in data


def test_reopen_keeps_data(tmp_path: Path, fake_embedder: Any) -> None:
    first = ChromaStore(tmp_path / "m", fake_embedder.name)
    put(first, fake_embedder, "/notes/work.md", NOTES["/notes/work.md"])
    first.close()
    again = ChromaStore(tmp_path / "m", fake_embedder.name)
    assert again.count() == 1
    assert again.search(fake_embedder.vector("manager"), "manager", 1)[0].chunk.source == "/notes/work.md"
    again.close()


def test_other_embedding_model_on_reopen_is_store_error(tmp_path: Path, fake_embedder: Any) -> None:
    first = ChromaStore(tmp_path / "m", fake_embedder.name)
    put(first, fake_embedder, "/notes/work.md", NOTES["/notes/work.md"])
    first.close()
    with pytest.raises(StoreError) as raised:
        ChromaStore(tmp_path / "m", "all-MiniLM-L6-v2")
    assert "'fake-embedder'" in raised.value.message and "'all-MiniLM-L6-v2'" in raised.value.message
    assert raised.value.hint and str(tmp_path / "m") in raised.value.hint
    assert raised.value.exit_code == ExitCode.STORE


def test_vectors_of_another_dimension_are_store_error(filled: ChromaStore) -> None:
    chunks = make_chunks("/notes/new.md", ["x"])
    record = SourceRecord("/notes/new.md", "s", "markdown", 1, 0, "t")
    with pytest.raises(StoreError, match="vectors of 3 dimensions do not fit a memory of 64"):
        filled.replace_source(record, chunks, [[0.1, 0.2, 0.3]])
    assert filled.source("/notes/new.md") is None


def test_retriever(filled: ChromaStore, fake_embedder: Any) -> None:
    retriever = Retriever(filled, fake_embedder)
    retriever.require_memories()
    [first, second] = retriever.search_many(["Hagi tea bowls", "interval track"], 2)
    assert first[0].chunk.source == "/notes/elin.md"
    assert second[0].chunk.source == "/notes/running.md"
    assert fake_embedder.calls[-1] == ["Hagi tea bowls", "interval track"], "one embedding call for the batch"
    calls = len(fake_embedder.calls)
    retriever.mode = "lexical"
    assert retriever.search("bouldering", 1)[0].chunk.source == "/notes/elin.md"
    assert len(fake_embedder.calls) == calls, "lexical search does not embed"


def test_retriever_on_empty_memory(tmp_path: Path, fake_embedder: Any) -> None:
    empty = ChromaStore(tmp_path / "empty", fake_embedder.name)
    with pytest.raises(NotFoundError) as raised:
        Retriever(empty, fake_embedder).require_memories()
    assert raised.value.hint and "pllm ingest" in raised.value.hint
    assert raised.value.exit_code == ExitCode.NOT_FOUND
    assert empty.search(fake_embedder.vector("x"), "x", 3) == []
    empty.close()
