"""pllm memory forget (by conversation, speaker, date or source) and ingest --prune leave no trace: not the text,
not the vector, in any file under PLLM_HOME; a forget cut short at any step leaves a whole memory; readers in
other processes keep working while the vector store is swapped; memories written before generations open."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
from conftest import TESTS_DIR, FakeEmbedder

from pllm_cli.errors import ExitCode
from pllm_cli.memory.generations import POINTER
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths

MESSAGES = [
    ("family", "m1", "Maya", "2024-01-10T09:00:00+01:00", "the secret family recipe uses saffron"),
    ("family", "m2", "Elin", "2024-01-10T09:05:00+01:00", "Elin says the marzipan comes from Mamma"),
    ("work", "m3", "Karin", "2024-03-01T10:00:00+01:00", "Karin wants the rain garden drawings by Friday"),
    ("work", "m4", "Maya", "2024-03-01T10:02:00+01:00", "Maya will send the drawings on Thursday"),
]
EMBEDDING_MODEL = FakeEmbedder().name


def write_chat(path: Path, messages: list[tuple[str, str, str, str, str]] = MESSAGES) -> Path:
    rows = [dict(zip(("conversation", "id", "speaker", "time", "text"), m, strict=True)) for m in messages]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def chat(tmp_path: Path, run: Any, fake_models: Any) -> Path:
    path = write_chat(tmp_path / "chat.jsonl")
    assert run("ingest", str(path)).exit_code == 0
    return path


@pytest.fixture
def memory_dir(home: Path) -> Path:
    return Paths(home).memory_dir


def files_under(home: Path) -> Iterator[Path]:
    """Every file under PLLM_HOME, hidden ones, SQLite's -wal and -shm and Chroma's index files included."""
    return (path for path in sorted(home.rglob("*")) if path.is_file())


def on_disk(run: Any) -> bytes:
    home = Path(json.loads(run("status", "--json").stdout)["paths"]["home"])
    return b"".join(p.read_bytes() for p in files_under(home))


def searchable(run: Any, query: str) -> str:
    """The texts of every hit for `query`."""
    hits = json.loads(run("memory", "search", query, "--json", "--k", "10").stdout)["hits"]
    return "\n".join(hit["text"] for hit in hits)


def opened(memory_dir: Path) -> ChromaStore:
    return ChromaStore(memory_dir, EMBEDDING_MODEL)


def stored_vectors(memory_dir: Path) -> dict[bytes, str]:
    """float32 bytes of the vector of every chunk in SQLite (the fake embedder is deterministic) -> its text."""
    store = opened(memory_dir)
    try:
        embedder = FakeEmbedder()
        chunks = list(store.index.iter_chunks())
        vectors = embedder.embed([c.embedding_text for c in chunks]) if chunks else []
        return {
            numpy.asarray(v, dtype=numpy.float32).tobytes(): c.embedding_text
            for v, c in zip(vectors, chunks, strict=True)
        }
    finally:
        store.close()


def holds_vector(blob: bytes, vector: Any) -> bool:
    """Whether `blob` holds `vector` as float32: its exact bytes, or at any byte offset 64 values each within
    1e-6 of it (Chroma's HNSW keeps a cosine vector normalized again, which can change the last bit)."""
    if vector.tobytes() in blob:
        return True
    anchor = int(numpy.argmax(numpy.abs(vector)))
    with numpy.errstate(all="ignore"):
        for shift in range(min(4, len(blob) - len(vector.tobytes()) + 1)):
            values = numpy.frombuffer(blob, dtype=numpy.float32, count=(len(blob) - shift) // 4, offset=shift)
            for hit in numpy.nonzero(numpy.abs(values - vector[anchor]) < 1e-6)[0]:
                start = int(hit) - anchor
                window = values[start : start + len(vector)] if start >= 0 else values[:0]
                if len(window) == len(vector) and bool(numpy.all(numpy.abs(window - vector) < 1e-6)):
                    return True
    return False


def traces(home: Path, texts: list[str], vectors: list[bytes]) -> list[str]:
    """'file: what' for every forgotten text or vector found in a file under `home`."""
    found = []
    for path in files_under(home):
        blob = path.read_bytes()
        found += [f"{path.relative_to(home)}: text {text!r}" for text in texts if text.encode() in blob]
        found += [
            f"{path.relative_to(home)}: vector {number}"
            for number, vector in enumerate(vectors)
            if holds_vector(blob, numpy.frombuffer(vector, dtype=numpy.float32))
        ]
    return found


def chroma_ids(store: ChromaStore) -> set[str]:
    return set(store.collection.get(include=[])["ids"])


def sqlite_ids(store: ChromaStore) -> set[str]:
    return {chunk.id for chunk in store.index.iter_chunks()}


def generations(memory_dir: Path) -> list[str]:
    return sorted(p.name for p in memory_dir.iterdir() if p.is_dir() and p.name.startswith("chroma"))


# --- no trace ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "gone", "kept"),
    [
        (["--conversation", "family"], ["saffron", "marzipan"], ["rain garden", "Thursday"]),
        (["--speaker", "karin"], ["rain garden drawings by Friday"], ["saffron", "Thursday"]),
        (["--before", "2024-02-01"], ["saffron", "marzipan"], ["rain garden", "Thursday"]),
    ],
)
def test_forget_leaves_no_trace_and_survives_reingest(
    chat: Path, run: Any, home: Path, memory_dir: Path, args: list[str], gone: list[str], kept: list[str]
) -> None:
    before = stored_vectors(memory_dir)
    result = run("memory", "forget", *args, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    [rule] = data["rules"]
    assert rule["sources"][0]["rebuilt"] is True
    assert data["vector_store_rebuilt"]["generation"] == "chroma-1"
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert forgotten, "the forget changed some vectors"
    for _ in range(2):  # now, and after ingesting the unchanged file again with --redact (a forced rebuild)
        assert traces(home, gone, forgotten) == []
        blobs = on_disk(run)
        for text in gone:
            assert text not in searchable(run, text)
        for text in kept:
            assert text.encode() in blobs
            assert text in searchable(run, text)
        assert run("ingest", str(chat), "--redact").exit_code == 0
    store = opened(memory_dir)
    try:
        assert chroma_ids(store) == sqlite_ids(store)
    finally:
        store.close()


def test_forget_a_source_leaves_no_trace(chat: Path, run: Any, home: Path, memory_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.md"
    other.write_text("# Garden\n\nThe quince tree needs pruning in February.\n", encoding="utf-8")
    assert run("ingest", str(other)).exit_code == 0
    before = stored_vectors(memory_dir)
    result = run("memory", "forget", str(chat), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["forgotten"] == [{"source": str(chat), "chunks": 2}]
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert len(forgotten) == 2
    assert traces(home, [m[4] for m in MESSAGES], forgotten) == []
    assert "quince" in searchable(run, "quince tree")
    assert generations(memory_dir) == ["chroma-1"]


def test_prune_leaves_no_trace(chat: Path, run: Any, home: Path, memory_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.md"
    other.write_text("# Garden\n\nThe quince tree needs pruning in February.\n", encoding="utf-8")
    assert run("ingest", str(other)).exit_code == 0
    before = stored_vectors(memory_dir)
    chat.unlink()
    result = run("ingest", str(other), "--prune", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["pruned"] == 1
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert len(forgotten) == 2
    assert traces(home, [m[4] for m in MESSAGES], forgotten) == []
    assert "quince" in searchable(run, "quince tree")


def test_forget_when_the_file_is_gone_drops_the_chunks(chat: Path, run: Any, home: Path, memory_dir: Path) -> None:
    before = stored_vectors(memory_dir)
    chat.unlink()
    result = run("memory", "forget", "--conversation", "family", "--json")
    [rule] = json.loads(result.stdout)["rules"]
    assert rule["sources"][0]["rebuilt"] is False
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert forgotten
    assert traces(home, ["saffron", "marzipan"], forgotten) == []


def test_forget_by_speaker_when_the_file_is_gone_leaves_no_trace_in_the_next_window(
    tmp_path: Path, run: Any, fake_models: Any, home: Path
) -> None:
    """Each chat window is searched with the turn before it: forgetting that turn clears it there too."""
    long = "Karin wants the quince orchard drawings " + "and more words " * 12
    rows = [
        {"conversation": "work", "id": "k1", "speaker": "Karin", "time": "2024-03-01T10:00:00", "text": long},
        {"conversation": "work", "id": "k2", "speaker": "Maya", "time": "2024-03-01T10:01:00", "text": "sure, Friday"},
    ]
    path = tmp_path / "work.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert run("ingest", str(path)).exit_code == 0
    assert "quince" in json.dumps(json.loads(run("memory", "search", "Friday", "--json").stdout))  # the context
    memory_dir = Paths(home).memory_dir
    before = stored_vectors(memory_dir)
    path.unlink()
    assert run("memory", "forget", "--speaker", "karin").exit_code == 0
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert len(forgotten) == 2  # Karin's window, and Maya's, which had Karin's turn as its context
    assert traces(home, ["quince"], forgotten) == []
    assert "sure, Friday" in searchable(run, "Friday")


def test_forget_needs_something_to_forget(run: Any) -> None:
    assert run("memory", "forget").exit_code == ExitCode.INPUT
    assert run("memory", "forget", "--before", "last week").exit_code == ExitCode.INPUT


def many_chunks(memory_dir: Path, sources: int, per_source: int) -> None:
    """Chunks written straight through the store: enough of them (over Chroma's sync_threshold of 1,000) that
    Chroma saves its HNSW index to data_level0.bin, not only its log in chroma.sqlite3."""
    from pllm_cli.memory.records import Chunk, SourceRecord

    store, embedder = opened(memory_dir), FakeEmbedder()
    try:
        for number in range(sources):
            source = f"/notes/n{number}.md"
            texts = [
                f"note {number} line {line} about {number * per_source + line} things" for line in range(per_source)
            ]
            chunks = [
                Chunk(id=Chunk.make_id(source, n, t), source=source, position=n, body=t, kind="text")
                for n, t in enumerate(texts)
            ]
            record = SourceRecord(source, f"sha{number}", "markdown", len(chunks), 0, "2026-03-01T10:00:00+00:00")
            store.replace_source(record, chunks, embedder.embed(texts))
    finally:
        store.close()


def test_forget_leaves_no_vector_in_a_saved_hnsw_index(
    run: Any, fake_models: Any, home: Path, memory_dir: Path
) -> None:
    many_chunks(memory_dir, sources=11, per_source=110)
    before = stored_vectors(memory_dir)
    [data_level0] = memory_dir.glob("chroma/*/data_level0.bin")
    data_level0 = Path(shutil.copy(data_level0, memory_dir.parent.parent.parent.parent / "data_level0.bin"))
    assert run("memory", "forget", "/notes/n3.md").exit_code == 0
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert {before[vector][:7] for vector in forgotten} == {"note 3 "}
    assert len(forgotten) > 100  # (a few of note 3's bag-of-words vectors equal another note's)
    assert holds_vector(data_level0.read_bytes(), numpy.frombuffer(forgotten[0], dtype=numpy.float32))
    assert traces(home, ["note 3 line"], forgotten) == []
    store = opened(memory_dir)
    try:
        assert chroma_ids(store) == sqlite_ids(store) and len(sqlite_ids(store)) == 1100
    finally:
        store.close()
    # 1,000 vectors saved as they came in, the last 100 once they were all in: a reader has nothing to apply
    index_files = {p: p.read_bytes() for p in memory_dir.glob("chroma-1/*/*")}
    assert "note 7 line 5 " in searchable(run, "note 7 line 5 about 775 things")
    assert {p: p.read_bytes() for p in memory_dir.glob("chroma-1/*/*")} == index_files


def test_a_reader_leaves_the_rebuilt_index_files_alone(chat: Path, run: Any, memory_dir: Path) -> None:
    """The rebuild saves the index with every vector in, so a reader opening it has nothing to apply and
    writes nothing into the index files (from memory that might hold anything)."""
    assert run("memory", "forget", "--speaker", "karin").exit_code == 0
    index_files = {p: p.read_bytes() for p in memory_dir.glob("chroma-1/*/*")}
    assert index_files, "the rebuilt generation has its HNSW files"
    assert "Thursday" in searchable(run, "Thursday drawings")
    assert {p: p.read_bytes() for p in memory_dir.glob("chroma-1/*/*")} == index_files


# --- generations on disk ---------------------------------------------------------------------------


def test_a_memory_without_generations_opens_and_moves_to_them_on_a_forget(
    chat: Path, run: Any, memory_dir: Path
) -> None:
    """Memories written before generations have a plain chroma/ and no pointer: generation 0."""
    assert generations(memory_dir) == ["chroma"] and not (memory_dir / POINTER).exists()
    assert "Thursday" in searchable(run, "Thursday drawings")
    assert run("memory", "forget", "--conversation", "family").exit_code == 0
    assert generations(memory_dir) == ["chroma-1"]
    assert (memory_dir / POINTER).read_text() == "chroma-1\n"
    assert "Thursday" in searchable(run, "Thursday drawings")
    assert run("memory", "forget", "--speaker", "karin").exit_code == 0
    assert generations(memory_dir) == ["chroma-2"]
    for path in memory_dir.rglob("*"):  # the rebuilt store is as private as the rest
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


def test_leftover_generations_go_when_the_store_opens(chat: Path, run: Any, memory_dir: Path) -> None:
    assert run("memory", "forget", "--speaker", "karin").exit_code == 0
    (memory_dir / "chroma" / "old").mkdir(parents=True)  # older than the live one: a crash after the switch
    (memory_dir / "chroma-2" / "half").mkdir(parents=True)  # newer: a build that died
    (memory_dir / f".{POINTER}.123.tmp").write_text("chroma-2\n")  # a pointer written, never renamed
    assert "Thursday" in searchable(run, "Thursday drawings")
    assert generations(memory_dir) == ["chroma-1"]
    assert not list(memory_dir.glob(".*.tmp"))


def test_a_failed_rebuild_keeps_the_old_store_and_the_next_write_finishes_it(
    chat: Path, run: Any, home: Path, memory_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pllm_cli.memory import rebuild

    before = stored_vectors(memory_dir)
    real_send = rebuild._send

    def short_batch(stream: Any, message: dict[str, Any], payload: bytes = b"") -> None:
        real_send(stream, message, payload[:-4])  # the child reads 4 bytes of the next message: it fails

    monkeypatch.setattr(rebuild, "_send", short_batch)
    result = run("memory", "forget", "--conversation", "family")
    assert result.exit_code == ExitCode.STORE
    assert "Error: rebuilding the vector store failed: " in result.stderr
    assert generations(memory_dir) == ["chroma"]  # the old one, live and whole; the new one removed
    assert "Thursday" in searchable(run, "Thursday drawings")
    assert "saffron" not in searchable(run, "saffron recipe")
    monkeypatch.setattr(rebuild, "_send", real_send)
    assert run("ingest", str(chat)).exit_code == 0  # the next write finishes the forget
    assert generations(memory_dir) == ["chroma-1"]
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert traces(home, ["saffron", "marzipan"], forgotten) == []


# --- crashes and readers in other processes --------------------------------------------------------

CRASH = """
import os, sys
from pathlib import Path
sys.path[:0] = [{root!r}, {tests!r}]
import importlib
from conftest import FakeEmbedder
from pllm_cli.ingest.pipeline import IngestOptions, forget_memory
from pllm_cli.memory.forgetting import ForgetRule
from pllm_cli.memory.store import ChromaStore

module, name, when = sys.argv[2:5]
owner = importlib.import_module(module)
*path, attribute = name.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, attribute)

def crash(*args, **kwargs):
    if when == "before":
        os._exit(77)
    result = original(*args, **kwargs)
    if when == "after" or (when == "after-first" and args[-1]):  # _send: after the first batch with a payload
        os._exit(77)
    return result

setattr(owner, attribute, crash)
store = ChromaStore(Path(sys.argv[1]), FakeEmbedder().name)
forget_memory(store, FakeEmbedder(), IngestOptions(), sources=[sys.argv[5]], rules=[ForgetRule("speaker", "karin")])
os._exit(0)
"""

# Each step of a forget, in order: the process dies just before or just after it.
CRASH_POINTS = [
    ("pllm_cli.memory.store", "ChromaStore.mark_forgetting", "after"),
    ("pllm_cli.memory.index", "ChunkIndex.remove_source", "after"),  # SQLite first, the vectors still there
    ("pllm_cli.memory.index", "ChunkIndex.replace_source", "before"),  # the rule: new vectors, old SQLite rows
    ("pllm_cli.memory.index", "ChunkIndex.compact", "before"),
    ("pllm_cli.memory.index", "ChunkIndex.compact", "after"),
    ("pllm_cli.memory.rebuild", "_send", "after-first"),  # the child half fed (it dies of the cut pipe)
    ("pllm_cli.memory.generations", "fsync_tree", "before"),  # the child done, nothing switched
    ("pllm_cli.memory.generations", "write_private_text", "before"),
    ("pllm_cli.memory.generations", "write_private_text", "after"),  # switched, the mark not yet cleared
    ("pllm_cli.memory.generations", "Generations.remove_leftovers", "before"),  # the old one not deleted yet
]


@pytest.mark.parametrize(("module", "name", "when"), CRASH_POINTS, ids=[f"{n}-{w}" for _, n, w in CRASH_POINTS])
def test_a_forget_cut_short_at_any_step_leaves_a_whole_store(
    tmp_path: Path, run: Any, fake_models: Any, home: Path, memory_dir: Path, module: str, name: str, when: str
) -> None:
    chat = write_chat(tmp_path / "chat.jsonl")
    note = tmp_path / "note.md"
    note.write_text("# Recipe\n\nThe secret family recipe uses cardamom.\n", encoding="utf-8")
    assert run("ingest", str(chat), str(note)).exit_code == 0
    before = stored_vectors(memory_dir)
    script = CRASH.format(root=str(TESTS_DIR.parent), tests=str(TESTS_DIR))
    crashed = subprocess.run(
        [sys.executable, "-c", script, str(memory_dir), module, name, when, str(note)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crashed.returncode == 77, crashed.stderr
    store = opened(memory_dir)  # it opens, on one whole generation, and finds what remains
    try:
        live = store.generations.live()
        assert live.is_dir() and generations(memory_dir)[0] in (live.name, "chroma")
        assert sqlite_ids(store) <= chroma_ids(store) | set(store.index.get(sqlite_ids(store)))
    finally:
        store.close()
    for text in ("Thursday", "saffron"):
        assert text in searchable(run, text)
    assert run("ingest", str(chat)).exit_code == 0  # the next write completes the forget
    store = opened(memory_dir)
    try:
        assert chroma_ids(store) == sqlite_ids(store)
        assert not store.forget_pending()
        note_removed = store.source(str(note)) is None
    finally:
        store.close()
    assert note_removed == (name != "ChromaStore.mark_forgetting")  # only a crash before removing it keeps it
    assert len(generations(memory_dir)) == 1
    forgotten = [vector for vector in before if vector not in stored_vectors(memory_dir)]
    assert traces(home, ["rain garden drawings", *(["cardamom"] if note_removed else [])], forgotten) == []
    for text in ("Thursday", "saffron"):
        assert text in searchable(run, text)


READER = """
import json, sys, traceback
from pathlib import Path
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import FakeEmbedder
from pllm_cli.memory.store import ChromaStore

memory, stop = Path(sys.argv[1]), Path(sys.argv[2])
embedder = FakeEmbedder()
store = ChromaStore(memory, embedder.name)
vector = embedder.embed(["The quince tree needs pruning in February."])[0]
searches, misses, errors, seen = 0, 0, [], []
(memory.parent / "reader-ready").write_text("")
while True:
    done = stop.exists()  # a last search after the last forget
    try:
        hits = store.search(vector, "quince tree pruning", 3, mode="dense")
        misses += not any("quince" in hit.chunk.text for hit in hits)
        seen += [store._generation.name] if store._generation.name not in seen else []
    except Exception:
        errors.append(traceback.format_exc())
    searches += 1
    if done:
        break
print(json.dumps({{"searches": searches, "misses": misses, "errors": errors, "generations": seen}}))
"""


def test_readers_in_other_processes_keep_working_across_switches(
    chat: Path, run: Any, memory_dir: Path, tmp_path: Path
) -> None:
    """A reader searching all the time, for a note no forget touches: it finds it at every search, on each
    generation in turn (a search that meets a deleted generation is done again on the new one)."""
    note = tmp_path / "note.md"
    note.write_text("# Garden\n\nThe quince tree needs pruning in February.\n", encoding="utf-8")
    assert run("ingest", str(note)).exit_code == 0
    stop = tmp_path / "stop"
    script = READER.format(root=str(TESTS_DIR.parent), tests=str(TESTS_DIR))
    reader = subprocess.Popen(
        [sys.executable, "-c", script, str(memory_dir), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (memory_dir.parent / "reader-ready").exists() and reader.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for args in (["--conversation", "family"], ["--speaker", "karin"], ["--before", "2020-01-01"]):
            assert run("memory", "forget", *args).exit_code == 0
        stop.write_text("")
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == [] and report["misses"] == 0, report
    assert report["generations"] == ["chroma", "chroma-1", "chroma-2", "chroma-3"][-len(report["generations"]) :]
    assert report["generations"][-1] == "chroma-3" and report["searches"] > 10
    assert generations(memory_dir) == ["chroma-3"]
