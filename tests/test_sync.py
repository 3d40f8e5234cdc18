"""Keeping memory in step with the user's files: renames, .pllmignore, failure status, the user's own messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.cli.memory import source_statuses
from pllm_cli.ingest.pipeline import IngestOptions, discover_files, ingest_paths

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)


def chat_file(path: Path, speakers: list[str]) -> Path:
    lines = [
        {"conversation": "c", "id": f"m{n}", "speaker": s, "time": f"2026-02-01T08:{n:02d}:00+01:00", "text": f"hi {n}"}
        for n, s in enumerate(speakers)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


class CountingEmbedder:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0
        self.name, self.dimension = inner.name, inner.dimension

    def embed(self, texts: Any) -> Any:
        self.calls += len(texts)
        return self.inner.embed(texts)

    embed_documents = embed


def test_a_renamed_file_is_moved_not_embedded_again(tmp_path: Path, store: Any, fake_embedder: Any) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "old.md").write_text("# Plan\n\nLong run on Sunday.\n", encoding="utf-8")
    ingest_paths([folder], store, fake_embedder)
    before = {c.id for c in store.index.iter_chunks()}
    (folder / "old.md").rename(folder / "new.md")
    counting = CountingEmbedder(fake_embedder)
    report = ingest_paths([folder], store, counting)
    assert [f.status for f in report.files] == ["moved"]
    assert counting.calls == 0
    assert [r.source for r in store.sources()] == [str(folder / "new.md")]
    assert {c.id for c in store.index.iter_chunks()} == before
    assert all(c.source == str(folder / "new.md") for c in store.index.iter_chunks())
    assert store.collection.get(where={"source": str(folder / "new.md")})["ids"]
    assert not store.collection.get(where={"source": str(folder / "old.md")})["ids"]
    hits = store.search(fake_embedder.embed(["long run"])[0], "long run", 3)
    assert hits and hits[0].chunk.source == str(folder / "new.md")


def test_a_copy_is_ingested_on_its_own(tmp_path: Path, store: Any, fake_embedder: Any) -> None:
    (tmp_path / "a.md").write_text("# A\n\nsame text\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# A\n\nsame text\n", encoding="utf-8")
    report = ingest_paths([tmp_path / "a.md", tmp_path / "b.md"], store, fake_embedder)
    assert [f.status for f in report.files] == ["added", "added"]


def test_pllmignore_applies_below_its_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "drafts").mkdir(parents=True)
    (tmp_path / "a" / "keep.md").write_text("x", encoding="utf-8")
    (tmp_path / "a" / "drafts" / "d.md").write_text("x", encoding="utf-8")
    (tmp_path / "a" / "private.txt").write_text("x", encoding="utf-8")
    (tmp_path / "top.txt").write_text("x", encoding="utf-8")
    (tmp_path / "a" / ".pllmignore").write_text("drafts/\n*.txt\n", encoding="utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p, _ in discover_files([tmp_path])]
    assert sorted(found) == ["a/keep.md", "top.txt"]


def test_failures_are_remembered_until_the_file_is_fixed(tmp_path: Path, store: Any, fake_embedder: Any) -> None:
    bad = tmp_path / "chat.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    ingest_paths([bad], store, fake_embedder)
    [row] = source_statuses(store.sources(), store.index.failures())
    assert row["status"] == "failed" and "line 1" in row["reason"]
    chat_file(bad, ["Maya"])
    ingest_paths([bad], store, fake_embedder)
    [row] = source_statuses(store.sources(), store.index.failures())
    assert row["status"] == "indexed" and row["messages"] == 1 and row["reason"] == ""
    bad.unlink()
    [row] = source_statuses(store.sources(), store.index.failures())
    assert row["status"] == "missing"


def test_the_users_own_messages_are_marked_by_any_of_their_names(
    tmp_path: Path, store: Any, fake_embedder: Any
) -> None:
    chat_file(tmp_path / "c.jsonl", ["Maya", "Elin", "maya l", "Jonas"])
    ingest_paths([tmp_path], store, fake_embedder, options=IngestOptions(me=("Maya", "Maya L")))
    chunks = list(store.index.iter_chunks())
    assert [i for c in chunks for i in c.message_ids] == ["m0", "m1", "m2", "m3"]
    assert [i for c in chunks for i in c.user_message_ids] == ["m0", "m2"]


def test_exports_are_recognised_by_content_in_a_folder(tmp_path: Path, store: Any, fake_embedder: Any) -> None:
    import shutil

    folder = tmp_path / "downloads"
    shutil.copytree(Path(__file__).parent / "fixtures" / "exports", folder)
    (folder / "package.json").write_text('{"name": "not-a-chat", "version": "1.0.0"}', encoding="utf-8")
    (folder / "notes.txt").write_text("Plain note: buy oat milk.\n", encoding="utf-8")
    report = ingest_paths([folder], store, fake_embedder, options=IngestOptions(me=("Maya",)))
    status = {Path(f.path).name: (f.status, f.format) for f in report.files}
    assert status["package.json"][0] == "skipped" and not report.failed
    assert status["notes.txt"] == ("added", "text")
    assert status["chatgpt_export.zip"] == ("added", "chatgpt")
    assert status["claude_conversations.json"] == ("added", "claude")
    assert status["telegram_result.json"] == ("added", "telegram")
    assert status["WhatsApp Chat - Noa.zip"] == ("added", "whatsapp")
    chatgpt = [c for c in store.index.iter_chunks() if c.source.endswith("chatgpt_export.zip")]
    assert any(c.user_message_ids for c in chatgpt)  # the `user` role is the user, whatever `me` says
