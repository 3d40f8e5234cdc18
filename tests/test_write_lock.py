"""One writer at a time (issue 11, section 4): every command that changes a memory holds the persona's memory
lock; readers never take it and keep working while a writer writes; an ingest killed at any point leaves a
memory the next ingest completes, with Chroma and SQLite agreeing on every chunk.

In-process tests use the fake models (conftest.fake_models). Tests with several real processes start
tests/pllm_with_fakes.py (pllm with the fake embedder, so a process starts in about a second), and the
two-ingests test runs once more with the real bundled embedder through `python -m pllm_cli`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, TESTS_DIR, FakeEmbedder

from pllm_cli.errors import BusyError, ExitCode
from pllm_cli.ingest.pipeline import IngestOptions
from pllm_cli.locking import exclusive, memory_lock
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths

FAKE_PLLM = TESTS_DIR / "pllm_with_fakes.py"
NOTES, CHATS, MAIL = EXAMPLES / "notes", EXAMPLES / "chats", EXAMPLES / "mail"


def assert_busy(result: Any, *words: str) -> None:
    """Exit 10 with one line of error and one of hint (after one saying it waits, if it did), nothing on stdout."""
    assert result.exit_code == ExitCode.BUSY, (result.exit_code, result.stdout, result.stderr)
    *waited, error, hint = result.stderr.splitlines()
    assert waited == [] or (len(waited) == 1 and " is changing this memory: waiting up to " in waited[0]), waited
    assert error.startswith("Error: another pllm ") and "is changing this memory" in error, error
    assert hint.startswith("Hint: ") and "--wait SECONDS" in hint and "PLLM_LOCK_WAIT" in hint, hint
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert result.stdout == ""


def ok(result: Any) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


@contextmanager
def memory_held(home: Path, persona: str = "default") -> Iterator[None]:
    """The memory lock, held as another pllm would hold it."""
    with exclusive(Paths(home, persona).memory_lock_file, "changing this memory"):
        yield


@contextmanager
def released_after(path: Path, seconds: float) -> Iterator[None]:
    """The lock at `path` held by another thread, let go `seconds` after the block starts."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(path, "changing this memory"):
            held.set()
            release.wait(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    try:
        yield
    finally:
        release.set()
        thread.join(5)


def rows(home: Path, persona: str = "default") -> dict[str, list[tuple[Any, ...]]]:
    """What the SQLite side of a memory holds (read-only: no lock, like any reader)."""
    database = Paths(home, persona).memory_dir / "index.sqlite3"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return {
            table: sorted(db.execute(f"SELECT {columns} FROM {table}"))
            for table, columns in [
                ("sources", "source, sha256, chunks"),
                ("chunks", "id, source"),
                ("forget_rules", "kind, value"),
                ("failures", "source"),
            ]
        }


# --- (c) every command that writes memory takes the lock ----------------------------------------------


@pytest.fixture
def memory(run: Any, fake_models: Any, home: Path) -> Any:
    """The example person's notes and chats in memory, `me` = Maya; `run` with the fake models."""
    ok(run("config", "set", "me", "Maya"))
    ok(run("ingest", NOTES, CHATS))
    return run


WRITERS = {
    "ingest": ["ingest", MAIL],
    "ingest --prune": ["ingest", "--prune", NOTES],
    "ingest --redact": ["ingest", "--redact", NOTES],
    "memory forget SOURCE": ["memory", "forget", NOTES / "recipes.md"],
    "memory forget --conversation": ["memory", "forget", "--conversation", "family-group"],
    "memory forget --speaker": ["memory", "forget", "--speaker", "Mamma"],
    "memory forget --before": ["memory", "forget", "--before", "2026-02-01"],
    "memory forget, every form": [
        "memory",
        "forget",
        NOTES / "recipes.md",
        "--speaker",
        "Elin",
        "--before",
        "2026-01-28",
    ],
    "profiles remove": ["profiles", "remove", "default", "--yes"],
}


@pytest.mark.parametrize("argv", WRITERS.values(), ids=WRITERS.keys())
def test_a_command_that_changes_memory_is_busy_while_another_holds_the_lock(
    memory: Any, home: Path, argv: list[Any]
) -> None:
    before = rows(home)
    with memory_held(home):
        started = time.monotonic()
        result = memory(*argv)
        assert time.monotonic() - started < 5, "busy at once, not after a wait"
        assert_busy(result)
        assert rows(home) == before, "nothing was written"
    ok(memory(*argv))  # the same command once the lock is free: it was the lock that stopped it


WRITERS_WITH_JSON = {name: argv for name, argv in WRITERS.items() if argv[0] != "profiles"}


@pytest.mark.parametrize("argv", WRITERS_WITH_JSON.values(), ids=WRITERS_WITH_JSON.keys())
def test_json_output_stays_empty_when_busy(memory: Any, home: Path, argv: list[Any]) -> None:
    with memory_held(home):
        assert_busy(memory(*argv, "--json"))


def test_the_lock_is_per_persona(memory: Any, home: Path) -> None:
    with memory_held(home, "work"):
        ok(memory("ingest", MAIL))  # the default persona's memory is free
        assert_busy(memory("--profile", "work", "ingest", MAIL))


def test_profiles_remove_also_waits_for_the_profile(memory: Any, home: Path) -> None:
    with exclusive(Paths(home).profile_lock_file, "changing this profile"):
        result = memory("profiles", "remove", "default", "--yes")
    assert result.exit_code == ExitCode.BUSY and "is changing this persona's profile" in result.stderr, result.stderr
    assert Paths(home).persona_dir.exists()


def test_the_store_is_closed_before_the_lock_is_let_go(
    memory: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's last touches of its files (SQLite's checkpoint, permissions) happen under the lock."""
    closed_under_lock: list[bool] = []
    close = ChromaStore.close

    def recording_close(store: ChromaStore) -> None:
        try:
            with exclusive(Paths(home).memory_lock_file, "checking"):
                closed_under_lock.append(False)
        except BusyError:
            closed_under_lock.append(True)
        close(store)

    monkeypatch.setattr(ChromaStore, "close", recording_close)
    ok(memory("ingest", MAIL))
    ok(memory("memory", "forget", "--speaker", "Mamma"))
    assert closed_under_lock == [True, True]


def test_wait_gives_up_after_the_time_given(memory: Any, home: Path) -> None:
    with memory_held(home):
        started = time.monotonic()
        result = memory("ingest", MAIL, "--wait", "0.5")
        waited = time.monotonic() - started
    assert_busy(result, "after waiting 0.5 s")
    assert 0.5 <= waited < 5


def test_wait_completes_once_the_other_lets_go(memory: Any, home: Path) -> None:
    with released_after(Paths(home).memory_lock_file, 0.5):
        started = time.monotonic()
        result = ok(memory("ingest", MAIL, "--wait", "30", "--json"))
        assert time.monotonic() - started >= 0.4
    assert json.loads(result.stdout)["summary"]["added"] == 4
    assert "another pllm (pid " in result.stderr and "waiting up to 30 s for it" in result.stderr


def test_quiet_says_nothing_while_it_waits(memory: Any, home: Path) -> None:
    with released_after(Paths(home).memory_lock_file, 0.3):
        result = ok(memory("--quiet", "memory", "forget", "--speaker", "Mamma", "--wait", "30"))
    assert result.stderr == ""


def test_the_wait_comes_from_the_environment_or_the_config_file(
    memory: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with released_after(Paths(home).memory_lock_file, 0.3):
        monkeypatch.setenv("PLLM_LOCK_WAIT", "30")
        ok(memory("ingest", MAIL))
    with memory_held(home):
        assert_busy(memory("ingest", MAIL, "--wait", "0"), "is changing this memory")  # the flag wins
        monkeypatch.delenv("PLLM_LOCK_WAIT")
        ok(memory("config", "set", "lock_wait", "0.3"))
        assert_busy(memory("memory", "forget", "--speaker", "Mamma"), "after waiting 0.3 s")
    with released_after(Paths(home).memory_lock_file, 0.3):
        ok(memory("config", "set", "lock_wait", "30"))
        ok(memory("memory", "forget", "--speaker", "Mamma"))


def test_a_bad_wait_is_a_usage_error(memory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory("ingest", MAIL, "--wait", "-1").exit_code == ExitCode.USAGE
    monkeypatch.setenv("PLLM_LOCK_WAIT", "soon")
    result = memory("ingest", MAIL)
    assert result.exit_code == ExitCode.USAGE and "PLLM_LOCK_WAIT" in result.stderr, result.stderr
    result = memory("memory", "stats")  # like any PLLM_* setting: a bad value is an error everywhere
    assert result.exit_code == ExitCode.CONFIG and "lock_wait must be float" in result.stderr, result.stderr


READERS = {
    "memory search": ["memory", "search", "running plan"],
    "memory search --tokens": ["memory", "search", "running plan", "--tokens", "200"],
    "memory stats": ["memory", "stats"],
    "memory sources": ["memory", "sources"],
    "status": ["status"],
    "ask": ["ask", "what is my running plan?"],
    "profile refresh": ["profile", "refresh"],  # reads memory, writes only the profile (its own lock)
    "profiles list": ["profiles", "list"],
}


@pytest.mark.parametrize("argv", READERS.values(), ids=READERS.keys())
def test_readers_do_not_take_the_memory_lock(memory: Any, home: Path, argv: list[str]) -> None:
    with memory_held(home):
        ok(memory(*argv))


def test_an_ingest_runs_beside_a_profile_refresh(memory: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile lock (a refresh of several minutes) does not keep a memory writer out."""
    import pllm_cli.cli.memory

    monkeypatch.setattr(pllm_cli.cli.memory, "PROFILE_WAIT_SECONDS", 0.2)
    with exclusive(Paths(home).profile_lock_file, "changing this profile"):
        ok(memory("ingest", MAIL))
        ok(memory("memory", "forget", NOTES / "recipes.md"))  # its facts wait for the next refresh


def test_chat_reads_while_memory_is_locked(memory: Any, home: Path) -> None:
    with memory_held(home):
        result = ok(memory("chat", input="what is my running plan?\n/sources\n"))
    assert "Karin Ek" in result.stdout  # the fake model's canned answer


# --- the lock itself ---------------------------------------------------------------------------------


def test_a_lock_file_deleted_by_its_holder_is_not_a_lock_on_nothing(tmp_path: Path) -> None:
    """`profiles remove` deletes the folder holding the locks while it holds them: one who waited meanwhile
    must end up holding the lock file now at that path, not the deleted one nobody else can see."""
    path = tmp_path / "persona" / "memory.lock"
    got, release = threading.Event(), threading.Event()

    def waiter() -> None:
        with exclusive(path, "changing this memory", wait=10):
            got.set()
            release.wait(10)

    with exclusive(path, "changing this memory"):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)  # the waiter has opened the file and is polling
        shutil.rmtree(path.parent)
    try:
        assert got.wait(5)
        assert path.read_text() == str(os.getpid()), "the waiter locked (and wrote its pid in) the new file"
        with pytest.raises(BusyError), exclusive(path, "changing this memory"):
            pass
    finally:
        release.set()
        thread.join(5)


def test_memory_lock_names_the_persona_lock_file(tmp_path: Path) -> None:
    paths = Paths(tmp_path, "work")
    assert paths.memory_lock_file == tmp_path / "personas" / "work" / "memory.lock"
    assert paths.memory_lock_file.parent == paths.memory_dir.parent != paths.memory_dir
    with memory_lock(paths):
        assert paths.memory_lock_file.read_text() == str(os.getpid())
        with pytest.raises(BusyError, match="is changing this memory"), memory_lock(paths):
            pass
    with memory_lock(paths):
        pass


# --- real processes ----------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLLM_")}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def pllm_process() -> Iterator[Any]:
    """pllm_process(home, *argv, real=False, env={}): pllm started as a process of its own (with the fake
    embedder unless `real`); any still running at the end of the test is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(home: Path, *argv: Any, real: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        program = [sys.executable, "-m", "pllm_cli"] if real else [sys.executable, str(FAKE_PLLM)]
        process = subprocess.Popen(
            [*program, "--home", str(home), *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(**(env or {})),
            cwd=TESTS_DIR.parent,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@dataclass
class MemoryView:
    """A memory as a reader sees it, read from a copy (the live one may be changing)."""

    sources: dict[str, tuple[str, int]]  # source -> (content key, chunks)
    chunks: dict[str, str]  # chunk id -> source, in SQLite
    chroma: dict[str, str]  # chunk id -> source, in Chroma's metadata
    vectors_match: bool  # every Chroma vector is the (fake) embedding of its chunk's text in SQLite
    bm25_rows: int
    bm25_misaligned: int
    dense_hits: list[str]


def look(home: Path, scratch: Path, check_vectors: bool = True) -> MemoryView:
    memory = Paths(home).memory_dir
    copy = scratch / f"copy-{time.monotonic_ns()}"
    shutil.copytree(memory, copy)  # a fresh path: this process's Chroma has nothing of it cached
    with closing(sqlite3.connect(copy / "index.sqlite3")) as db:
        model = db.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()[0]
    store = ChromaStore(copy, embedding_model=model)
    try:
        found = store.collection.get(include=["metadatas", "embeddings"])
        chroma = {i: m["source"] for i, m in zip(found["ids"], found["metadatas"], strict=True)}
        chunks = dict(store.index.db.execute("SELECT id, source FROM chunks"))
        vectors_match = True
        if check_vectors:
            import numpy

            texts = store.index.get(list(chunks))
            fake = FakeEmbedder()
            for chunk_id, vector in zip(found["ids"], found["embeddings"], strict=True):
                if chunk_id in texts:
                    expected = numpy.asarray(fake.vector(texts[chunk_id].embedding_text), dtype=numpy.float32)
                    vectors_match &= bool(numpy.allclose(vector, expected, atol=1e-6))
        dense = [i for i, _ in store.dense_search([1.0] * 64, 10)] if check_vectors and chroma else []
        return MemoryView(
            sources={r.source: (r.sha256, r.chunks) for r in store.sources()},
            chunks=chunks,
            chroma=chroma,
            vectors_match=vectors_match,
            bm25_rows=int(store.index.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]),
            bm25_misaligned=store.index.misaligned(),
            dense_hits=dense,
        )
    finally:
        store.close()
        shutil.rmtree(copy)


def assert_consistent(view: MemoryView, files: list[Path] | None = None) -> None:
    """Chroma and SQLite agree on every chunk id (and its source); each source's chunk count is right; with
    `files`, memory holds exactly these files (none lost, none twice), each at its current content."""
    moved = [i for i in view.chroma.keys() & view.chunks.keys() if view.chroma[i] != view.chunks[i]]
    assert view.chroma == view.chunks, (
        f"in Chroma only: {sorted(set(view.chroma) - set(view.chunks))[:5]}; "
        f"in SQLite only: {sorted(set(view.chunks) - set(view.chroma))[:5]}; other source in Chroma: {moved[:5]}"
    )
    assert view.vectors_match
    assert view.bm25_rows == len(view.chunks) and view.bm25_misaligned == 0
    assert set(view.dense_hits) <= set(view.chunks)
    per_source: dict[str, int] = {}
    for source in view.chunks.values():
        per_source[source] = per_source.get(source, 0) + 1
    assert per_source == {s: n for s, (_, n) in view.sources.items() if n}
    if files is not None:
        keys = {str(f): IngestOptions().content_key(f.read_bytes()) for f in files}
        assert set(view.sources) == set(keys), set(view.sources) ^ set(keys)
        assert {s: key for s, (key, _) in view.sources.items()} == keys, "every file at its current content"


def test_two_ingests_at_once(tmp_path: Path, pllm_process: Any) -> None:
    _two_ingests_at_once(tmp_path, pllm_process, real=False)


@pytest.mark.e2e
def test_two_ingests_at_once_with_the_real_embedder(tmp_path: Path, pllm_process: Any) -> None:
    _two_ingests_at_once(tmp_path, pllm_process, real=True)


def _two_ingests_at_once(tmp_path: Path, pllm_process: Any, real: bool) -> None:
    """Two ingests started together: one writes, the other exits 10 at once; a third with --wait, started
    while the first still writes, waits for it and then completes (finding everything already in)."""
    home = tmp_path / "home"
    folder = tmp_path / "files"
    if real:
        shutil.copytree(NOTES, folder)  # seconds of embedding, after seconds of loading torch and MiniLM
    else:
        write_corpus(folder, 150, random.Random(1))  # about 8 s of writes with the fake embedder
    files = sorted(folder.iterdir())
    started = time.monotonic()
    pair = [pllm_process(home, "ingest", folder, "--json", real=real) for _ in range(2)]
    while all(p.poll() is None for p in pair) and time.monotonic() - started < 120:
        time.sleep(0.02)
    loser = next(p for p in pair if p.poll() is not None)
    winner = next(p for p in pair if p is not loser)
    loser_seconds = time.monotonic() - started
    assert winner.poll() is None, "they overlapped: the first to end did while the other was still writing"
    waiter = pllm_process(home, "ingest", folder, "--json", "--wait", "600", real=real)
    code, out, err = finish(loser)
    assert code == ExitCode.BUSY, (code, out, err)
    assert out == "" and "Traceback" not in err
    error, hint = err.splitlines()
    assert error.startswith("Error: another pllm") and error.endswith("is changing this memory"), error
    if "(pid " in error:  # unless it looked in the instant between the other's flock and its writing its pid
        assert f"(pid {winner.pid})" in error
    assert "--wait SECONDS" in hint
    assert loser_seconds < 20, "busy at once"
    assert winner.poll() is None, "the waiter started while the first still held the lock"

    code, out, err = finish(winner)
    winner_ended = time.monotonic()
    assert code == 0, (code, err)
    assert json.loads(out)["summary"]["added"] == len(files)
    code, out, err = finish(waiter)
    assert code == 0, (code, err)
    assert time.monotonic() >= winner_ended
    assert json.loads(out)["summary"]["unchanged"] == len(files), "it waited, then found everything in"
    assert f"another pllm (pid {winner.pid}) is changing this memory: waiting up to 600 s" in err, err
    assert_consistent(look(home, tmp_path, check_vectors=not real), files)


def test_readers_work_while_an_ingest_is_mid_write(tmp_path: Path, pllm_process: Any) -> None:
    """An ingest paused half-way through writing a source (its vectors in Chroma, its rows not yet in SQLite,
    the lock held): search, stats, sources and status work from other processes and see the memory as it was;
    writers are busy; killed there, the ingest leaves a memory the next ingest completes."""
    home = tmp_path / "home"
    first, second = tmp_path / "first", tmp_path / "second"
    write_corpus(first, 20, random.Random(2))
    write_corpus(second, 20, random.Random(3), word="zephyr")
    code, _, err = finish(pllm_process(home, "ingest", first))
    assert code == 0, err
    before = look(home, tmp_path)

    paused = tmp_path / "paused"
    env = {"PLLM_TEST_WRITE_PAUSE": "120", "PLLM_TEST_PAUSED": str(paused)}
    writer = pllm_process(home, "ingest", second, "--json", env=env)
    deadline = time.monotonic() + 60
    while not paused.exists() and time.monotonic() < deadline and writer.poll() is None:
        time.sleep(0.02)
    assert paused.exists(), finish(writer)
    during = look(home, tmp_path, check_vectors=False)
    assert len(during.chroma) > len(during.chunks) == len(before.chunks), "mid-write: Chroma has the new vectors"

    readers = {
        "search": pllm_process(home, "memory", "search", "zephyr coffee", "--json"),
        "lexical": pllm_process(home, "memory", "search", "zephyr", "--mode", "lexical", "--json"),
        "stats": pllm_process(home, "memory", "stats", "--json"),
        "sources": pllm_process(home, "memory", "sources", "--json"),
        "status": pllm_process(home, "status", "--json"),
    }
    writers = {
        "ingest": pllm_process(home, "ingest", first),
        "forget": pllm_process(home, "memory", "forget", "--before", "2030-01-01"),
    }
    results = {name: finish(process, 120) for name, process in {**readers, **writers}.items()}
    assert writer.poll() is None, "all of that happened while the ingest was paused mid-write"
    for name in readers:
        assert results[name][0] == 0, (name, results[name])
    hits = json.loads(results["search"][1])["hits"]
    assert hits and all(hit["source"].startswith(str(first)) for hit in hits), "what SQLite holds, not half a file"
    assert json.loads(results["lexical"][1])["hits"] == [], "no word of the file being written is found yet"
    assert json.loads(results["stats"][1])["chunks"] == len(before.chunks)
    for name in writers:
        code, out, err = results[name]
        assert code == ExitCode.BUSY and f"(pid {writer.pid}) is changing this memory" in err, (name, code, err)

    writer.send_signal(signal.SIGKILL)
    assert writer.wait(30) == -signal.SIGKILL
    code, out, err = finish(pllm_process(home, "ingest", first, second, "--json"))
    assert code == 0, err
    assert json.loads(out)["summary"]["added"] == 20
    assert_consistent(look(home, tmp_path), sorted(first.iterdir()) + sorted(second.iterdir()))


# --- (b) an ingest killed with SIGKILL at random points ---------------------------------------------------

WORDS = (
    "run coffee lisbon project deadline trombone garden city river bread winter summer friend letter music "
    "book train market planting tram harbour sister rehearsal kanji recipe"
).split()


def write_note(path: Path, rng: random.Random, word: str = "") -> None:
    """A note of three to five paragraphs (a chunk each) of random words; `word` in every paragraph."""
    paragraphs = [
        " ".join([word] * bool(word) + [rng.choice(WORDS) for _ in range(60)]) + "." for _ in range(rng.randint(3, 5))
    ]
    path.write_text(f"# {path.stem}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def write_corpus(folder: Path, files: int, rng: random.Random, word: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        write_note(folder / f"note-{number:03d}.md", rng, word)


def change_files(folder: Path, rng: random.Random, round_: int) -> None:
    """A round's work for the ingest: 12 notes edited (their last chunk changes), one renamed, one deleted,
    one added; with --prune the deleted one leaves memory."""
    files = sorted(folder.iterdir())
    for path in rng.sample(files, 12):
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"\nEdited in round {round_}: {' '.join(rng.choice(WORDS) for _ in range(12))}.\n")
    renamed, deleted = rng.sample(files, 2)
    renamed.rename(folder / f"renamed-{round_:02d}.md")
    deleted.unlink()
    write_note(folder / f"added-{round_:02d}.md", rng)


def write_times(process: subprocess.Popen[str], database: Path, target: dict[str, str]) -> tuple[float, float, float]:
    """Seconds until the first commit of `process` to `database` shows, until its sources are `target` (the
    last source written; what follows is the vector store's rebuild for the pruned file), and until it ends."""
    started, first, last = time.monotonic(), 0.0, 0.0
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        version = db.execute("PRAGMA data_version").fetchone()[0]  # changes when another connection commits
        while process.poll() is None:
            now = db.execute("PRAGMA data_version").fetchone()[0]
            if now != version:
                version = now
                first = first or time.monotonic() - started
                if not last and dict(db.execute("SELECT source, sha256 FROM sources")) == target:
                    last = time.monotonic() - started
            time.sleep(0.005)
    finally:
        db.close()
    ended = time.monotonic() - started
    code, _, err = finish(process)
    assert code == 0, err
    return first or ended, last or ended, ended


def wait_for_first_write(process: subprocess.Popen[str], database: Path) -> bool:
    """Wait until `process` first commits to `database` (True), or ends without committing (False)."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        version = db.execute("PRAGMA data_version").fetchone()[0]
        while process.poll() is None:
            if db.execute("PRAGMA data_version").fetchone()[0] != version:
                return True
            time.sleep(0.002)
    finally:
        db.close()
    return False


KILLS = 25
KILL_SEED = 20260611
LANDED = (
    "before the first write",
    "mid-write, inside one source's write",
    "mid-write, between two sources",
    "after the last write",
    "ended before the kill",
)


@pytest.mark.slow
def test_ingest_killed_at_random_points(tmp_path: Path, pllm_process: Any) -> None:
    """KILLS times: change some files, start `ingest --prune`, SIGKILL it after a random delay (seeded) aimed
    before its first write, at its writes or after them (as timed in an uncut ingest); then the next ingest
    completes, and memory holds each file exactly once at its current content, with Chroma and SQLite agreeing
    on every chunk id (and its source and vector). Where each kill landed is seen in memory afterwards."""
    rng = random.Random(KILL_SEED)
    home, folder = tmp_path / "home", tmp_path / "files"
    write_corpus(folder, 60, rng)

    def ingest(**kwargs: Any) -> subprocess.Popen[str]:
        return pllm_process(home, "ingest", "--prune", folder, "--json", **kwargs)

    code, _, err = finish(ingest())
    assert code == 0, err
    change_files(folder, rng, -1)  # one uncut round: when it first writes, writes its last source, and ends
    target = {str(f): IngestOptions().content_key(f.read_bytes()) for f in sorted(folder.iterdir())}
    first_write, last_write, uncut = write_times(ingest(), Paths(home).memory_dir / "index.sqlite3", target)
    before = look(home, tmp_path)
    assert_consistent(before, sorted(folder.iterdir()))

    # Kills aim, in turn, a little before the first write, at the writes (twice as often) and at the start of
    # the vector store's rebuild after them. A kill at the writes is timed from this round's own first commit,
    # not from its start: how long an ingest takes to load its models varies far more between runs (and
    # machines) than how long its writes take. An ingest that ends before its kill does not count, and another
    # round is run instead.
    database = Paths(home).memory_dir / "index.sqlite3"
    writes, rebuild = last_write - first_write, uncut - last_write
    landed = dict.fromkeys(LANDED, 0)
    round_ = 0
    while round_ - landed["ended before the kill"] < KILLS and round_ < 2 * KILLS:
        change_files(folder, rng, round_)
        target = {str(f): IngestOptions().content_key(f.read_bytes()) for f in sorted(folder.iterdir())}
        process = ingest()
        aim = ("before", "writes", "writes", "after")[round_ % 4]
        if aim == "before":
            time.sleep(rng.uniform(0.8, 1.0) * first_write)
        elif wait_for_first_write(process, database):
            time.sleep(rng.uniform(0.0, writes) if aim == "writes" else writes + rng.uniform(0.0, 0.25 * rebuild))
        process.send_signal(signal.SIGKILL)  # nothing, if it has ended
        killed = process.wait(30) == -signal.SIGKILL
        round_ += 1

        cut = look(home, tmp_path, check_vectors=False)
        if not killed:
            landed["ended before the kill"] += 1
        elif cut.chroma != cut.chunks:  # its vectors in Chroma, its rows not yet in SQLite (or the reverse)
            landed["mid-write, inside one source's write"] += 1
        elif cut.sources == before.sources and cut.chunks == before.chunks:
            landed["before the first write"] += 1
        elif {s: key for s, (key, _) in cut.sources.items()} == target:
            landed["after the last write"] += 1
        else:
            landed["mid-write, between two sources"] += 1

        code, _, err = finish(ingest())
        assert code == 0, (round_, err)
        before = look(home, tmp_path)
        assert_consistent(before, sorted(folder.iterdir()))
    timing = (
        f"seed {KILL_SEED}; uncut: first write at {first_write:.1f} s, last source at {last_write:.1f} s, "
        f"end at {uncut:.1f} s"
    )
    print(f"\n{round_} ingests, killed at random ({timing}): {landed}")
    assert round_ - landed["ended before the kill"] >= 20, landed
    assert landed["mid-write, inside one source's write"] + landed["mid-write, between two sources"] >= KILLS // 4
