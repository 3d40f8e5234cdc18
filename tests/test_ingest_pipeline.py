"""The ingest pipeline with a real store and the fake embedder: incremental, prunable, and a bad file
never costs the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES

from pllm_cli.errors import StoreError
from pllm_cli.ingest.pipeline import IngestEvent, discover_files, ingest_paths
from pllm_cli.memory.store import ChromaStore

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "running.md").write_text("# Running\n\n## Plan\n\nLong run on Sunday, 16 km.\n", encoding="utf-8")
    (folder / "sub" / "shopping.txt").write_text("Oat milk, cardamom, lentils.\n", encoding="utf-8")
    lines = [
        {
            "conversation": "fam",
            "id": f"m{n}",
            "speaker": "Maya",
            "time": f"2026-02-01T08:0{n}:00+01:00",
            "text": f"message {n} about the party",
        }
        for n in range(1, 4)
    ]
    (folder / "chat.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    (folder / ".hidden.md").write_text("# secret\n\nnot for memory\n", encoding="utf-8")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    return folder


def by_name(report: Any) -> dict[str, Any]:
    return {Path(f.path).name: f for f in report.files}


def chroma_count(store: ChromaStore) -> int:
    return int(store.collection.count())


def test_first_ingest_adds_every_supported_file(notes: Path, store: ChromaStore, fake_embedder: Any) -> None:
    events: list[IngestEvent] = []
    report = ingest_paths([notes], store, fake_embedder, on_event=events.append)
    files = by_name(report)
    assert set(files) == {"running.md", "shopping.txt", "chat.jsonl"}  # hidden and .jpg left out
    assert {f.status for f in report.files} == {"added"}
    assert files["chat.jsonl"].format == "chat-jsonl" and files["running.md"].format == "markdown"
    assert report.chunks_written == store.count() == chroma_count(store) == sum(f.chunks for f in report.files)
    assert events[0] == IngestEvent("planned", total=3)
    assert [e.kind for e in events[1:]] == ["file"] * 3
    data = report.to_dict()
    summary = {"added": 3, "updated": 0, "moved": 0, "unchanged": 0, "skipped": 0, "failed": 0, "pruned": 0}
    assert data["summary"] == summary
    assert store.source(str(notes / "chat.jsonl")).messages == 3  # type: ignore[union-attr]


def test_second_ingest_is_all_unchanged(notes: Path, store: ChromaStore, fake_embedder: Any) -> None:
    ingest_paths([notes], store, fake_embedder)
    count, embedded = store.count(), len(fake_embedder.calls)
    report = ingest_paths([notes], store, fake_embedder)
    assert {f.status for f in report.files} == {"unchanged"}
    assert report.chunks_written == 0
    assert store.count() == chroma_count(store) == count
    assert len(fake_embedder.calls) == embedded, "nothing is embedded again"


def test_changed_file_is_updated_and_its_old_chunks_are_gone(
    notes: Path, store: ChromaStore, fake_embedder: Any
) -> None:
    ingest_paths([notes], store, fake_embedder)
    source = str(notes / "running.md")
    old_ids = set(store.index.chunk_ids(source))
    (notes / "running.md").write_text("# Running\n\n## Plan\n\nIntervals on Tuesday instead.\n", encoding="utf-8")
    report = ingest_paths([notes], store, fake_embedder)
    files = by_name(report)
    assert files["running.md"].status == "updated"
    assert files["shopping.txt"].status == files["chat.jsonl"].status == "unchanged"
    new_ids = set(store.index.chunk_ids(source))
    assert new_ids and old_ids.isdisjoint(new_ids)
    assert old_ids.isdisjoint(store.collection.get(ids=list(old_ids), include=[])["ids"])
    texts = [c.text for c in store.index.get(new_ids).values()]
    assert any("Intervals on Tuesday" in t for t in texts)
    assert store.index.lexical_search("Sunday", 5) == []
    assert store.count() == chroma_count(store)


def test_prune_forgets_deleted_files(notes: Path, store: ChromaStore, fake_embedder: Any) -> None:
    ingest_paths([notes], store, fake_embedder)
    (notes / "sub" / "shopping.txt").unlink()
    kept = ingest_paths([notes], store, fake_embedder)
    assert "pruned" not in {f.status for f in kept.files}
    assert store.source(str(notes / "sub" / "shopping.txt")) is not None, "without --prune it stays"
    report = ingest_paths([notes], store, fake_embedder, prune=True)
    pruned = [f for f in report.files if f.status == "pruned"]
    assert [Path(f.path).name for f in pruned] == ["shopping.txt"]
    assert pruned[0].chunks == 1
    assert store.source(str(notes / "sub" / "shopping.txt")) is None
    assert store.index.lexical_search("cardamom", 5) == []
    assert store.count() == chroma_count(store)


def test_one_bad_file_fails_alone_and_nothing_is_lost(notes: Path, store: ChromaStore, fake_embedder: Any) -> None:
    ingest_paths([notes], store, fake_embedder)
    before = store.count()
    (notes / "latin1.md").write_bytes("Smörgås".encode("latin-1"))
    (notes / "broken.jsonl").write_text('{"conversation": "x"\n', encoding="utf-8")
    (notes / "new.md").write_text("A brand new note about kayaking.\n", encoding="utf-8")
    # a file that was fine before and is now broken keeps its old memories
    (notes / "running.md").write_bytes(b"\x00\x01binary now")
    report = ingest_paths([notes], store, fake_embedder)
    files = by_name(report)
    assert files["new.md"].status == "added"
    assert files["latin1.md"].status == "failed" and "not valid UTF-8" in files["latin1.md"].reason
    assert files["latin1.md"].hint
    assert files["broken.jsonl"].status == "failed" and "line 1" in files["broken.jsonl"].reason
    assert files["running.md"].status == "failed" and "binary" in files["running.md"].reason
    assert len(report.failed) == 3
    assert store.source(str(notes / "latin1.md")) is None
    assert store.count() == before + files["new.md"].chunks == chroma_count(store)
    assert store.index.lexical_search("Sunday", 5), "the old version of running.md is still remembered"


def test_missing_path_is_reported_and_others_go_in(notes: Path, store: ChromaStore, fake_embedder: Any) -> None:
    report = ingest_paths([notes / "nope.md", notes / "running.md"], store, fake_embedder)
    statuses = [(Path(f.path).name, f.status, f.reason) for f in report.files]
    assert statuses == [("nope.md", "failed", "no such file or folder"), ("running.md", "added", "")]


def test_exclude_patterns(notes: Path) -> None:
    found = {p.name for p, _ in discover_files([notes], exclude=["sub/*"])}
    assert found == {"running.md", "chat.jsonl"}
    found = {p.name for p, _ in discover_files([notes], exclude=["*.jsonl", "sub"])}
    assert found == {"running.md"}


def test_embedder_failure_is_not_blamed_on_the_file(notes: Path, store: ChromaStore) -> None:
    class Broken:
        name = "fake-embedder"
        dimension = 64

        def embed(self, texts: list[str]) -> list[list[float]]:
            raise StoreError("disk full")

        embed_documents = embed

    with pytest.raises(StoreError, match="disk full"):
        ingest_paths([notes], store, Broken())  # type: ignore[arg-type]


def test_the_whole_example_corpus(tmp_path: Path, store: ChromaStore, fake_embedder: Any) -> None:
    corpus = tmp_path / "examples"
    shutil.copytree(EXAMPLES, corpus)
    report = ingest_paths([corpus], store, fake_embedder)
    assert report.failed == []
    formats = {f.format for f in report.files}
    assert formats == {"markdown", "text", "html", "pdf", "email", "mbox", "chat-jsonl"}
    assert store.count() == chroma_count(store) == report.chunks_written
