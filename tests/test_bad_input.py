"""Bad input never stops an ingest or a command (issue 16): file names that are not UTF-8, FIFOs and devices,
queries that are not UTF-8, an unusable home, a chat line with an impossible date, a large file, NUL bytes,
a bad embedding_model, control characters in names. Each case fails cleanly, alone, and says why."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TESTS_DIR, FakeEmbedder

from pllm_cli.errors import ExitCode, InputError
from pllm_cli.ingest.pipeline import IngestReport, ingest_paths
from pllm_cli.ingest.readers import read_document
from pllm_cli.memory.store import ChromaStore

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)

LATIN1_NAME = os.fsdecode(b"caf\xe9.md")  # a file name that is not UTF-8, as Python sees it


def assert_clean_error(result: Any, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Error: " in result.stderr and "Hint: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in result.stderr


def agree(store: ChromaStore) -> int:
    """SQLite and Chroma hold the same chunks; their number."""
    ids = {chunk_id for chunk_id, _ in store.index.chunk_sources()}
    assert set(store.collection.get(include=[])["ids"]) == ids
    assert sum(r.chunks for r in store.sources()) == len(ids)
    return len(ids)


def ingest_within(seconds: int, *args: Any, **kwargs: Any) -> IngestReport:
    """ingest_paths under an alarm: a hang (on a FIFO's open) fails the test instead of stopping the suite."""

    def hang(signum: int, frame: Any) -> None:
        raise AssertionError(f"ingest still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        return ingest_paths(*args, **kwargs)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "b.md").write_text("# B\n\nBeekeeping on Saturdays.\n", encoding="utf-8")
    (folder / "z.md").write_text("# Z\n\nZucchini soup recipe.\n", encoding="utf-8")
    return folder


# --- 1. file names that are not UTF-8 ----------------------------------------------------------------


def test_non_utf8_file_name_is_ingested_and_the_files_after_it_too(
    folder: Path, store: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    (folder / LATIN1_NAME).write_text("# Cafe\n\nHazelnut latte.\n", encoding="utf-8")
    report = ingest_paths([folder], store, fake_embedder)
    assert [(Path(f.path).name, f.status) for f in report.files] == [
        ("b.md", "added"),
        ("caf\\xe9.md", "added"),  # stored under its name with the byte escaped
        ("z.md", "added"),
    ]
    assert agree(store) == 3
    again = ingest_paths([folder], store, fake_embedder, prune=True)  # found again: unchanged, not pruned
    assert {f.status for f in again.files} == {"unchanged"}
    hits = store.search(fake_embedder.vector("hazelnut latte"), "hazelnut latte", 1)
    assert hits[0].chunk.source.endswith("caf\\xe9.md")


def test_non_utf8_file_name_through_the_cli_text_and_json(run: Any, fake_models: Any, folder: Path) -> None:
    (folder / LATIN1_NAME).write_text("Hazelnut latte.\n", encoding="utf-8")
    result = run("ingest", folder)
    assert result.exit_code == 0, result.stderr
    assert "caf\\xe9.md (1 chunks)" in result.stderr
    data = json.loads(run("ingest", "--json", folder).stdout)  # valid JSON
    assert data["summary"]["unchanged"] == 3
    assert "caf\\xe9.md" in run("memory", "sources").stdout
    forgotten = run("memory", "forget", folder / LATIN1_NAME)  # the raw name works, as the shell gives it
    assert forgotten.exit_code == 0, forgotten.stderr


def test_control_characters_in_file_names_are_escaped_when_printed(run: Any, fake_models: Any, folder: Path) -> None:
    (folder / "two\nlines\x1b[31m.md").write_text("Red herring.\n", encoding="utf-8")
    result = run("ingest", folder)
    assert result.exit_code == 0, result.stderr
    assert "two\\nlines\\x1b[31m.md (1 chunks)" in result.stderr
    assert "\x1b" not in result.stderr and not any(line.startswith("lines") for line in result.stderr.splitlines())
    assert "two\\nlines" in run("memory", "sources").stdout
    assert json.loads(run("ingest", "--json", folder).stdout)["files"][1]["path"].endswith("two\nlines\x1b[31m.md")


# --- 2. FIFOs, sockets, devices ------------------------------------------------------------------------


def test_fifo_socket_and_device_are_skipped_unopened_with_their_reason(
    folder: Path, store: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    os.mkfifo(folder / "pipe.md")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.txt"))
    try:
        report = ingest_within(30, [folder, Path("/dev/null"), folder / "pipe.md"], store, fake_embedder)
    finally:
        server.close()
    fifo = ("pipe.md", "skipped", "not a regular file: a named pipe (FIFO)")
    assert [(Path(f.path).name, f.status, f.reason) for f in report.files] == [
        ("b.md", "added", ""),
        fifo,
        ("sock.txt", "skipped", "not a regular file: a socket"),
        ("z.md", "added", ""),
        ("null", "skipped", "not a regular file: a character device"),
        fifo,  # named on the command line
    ]
    assert agree(store) == 2


def test_a_file_swapped_for_a_fifo_after_the_check_is_still_not_waited_on(tmp_path: Path) -> None:
    from pllm_cli.ingest import files

    fifo = tmp_path / "p.md"
    os.mkfifo(fifo)
    real_stat = os.stat

    def looks_regular(path: Any, *args: Any, **kwargs: Any) -> Any:  # the check sees a file, open meets a FIFO
        info = real_stat(path, *args, **kwargs)
        return os.stat_result((stat.S_IFREG | 0o644, *tuple(info)[1:]))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files.os, "stat", looks_regular)
        with pytest.raises(files.NotRegularFile, match="FIFO"):
            files.open_regular(fifo)


# --- 3. queries that are not UTF-8 ---------------------------------------------------------------------


def test_query_and_question_not_utf8_are_clean_input_errors(run: Any, fake_models: Any, folder: Path) -> None:
    assert run("ingest", folder).exit_code == 0
    assert_clean_error(run("memory", "search", "hazel\udcffnut"), ExitCode.INPUT, "the query is not valid UTF-8")
    assert_clean_error(run("memory", "search", "-", input="ok\nhazel\udcffnut\n"), ExitCode.INPUT, "not valid UTF-8")
    assert_clean_error(run("ask", "caf\udce9?"), ExitCode.INPUT, "the question is not valid UTF-8")
    assert_clean_error(run("ask", input="caf\udce9?"), ExitCode.INPUT, "stdin, line 1, is not valid UTF-8")


def test_stdin_bytes_not_utf8_in_a_real_process(tmp_path: Path, folder: Path, home: Path) -> None:
    """Real argv and stdin bytes, as a shell passes them: printf '\\xff\\n' | pllm memory search -."""
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR.parent)}
    fakes = [sys.executable, str(TESTS_DIR / "pllm_with_fakes.py")]
    assert subprocess.run([*fakes, "ingest", str(folder)], env=env, capture_output=True).returncode == 0
    cases: list[tuple[list[str | bytes], bytes]] = [
        (["memory", "search", "-"], b"\xff\n"),
        (["memory", "search", b"hazel\xffnut"], b""),
        (["ask", b"caf\xe9?"], b""),
        (["ask"], b"caf\xe9?\n"),
    ]
    for args, stdin in cases:
        done = subprocess.run([*fakes, *args], env=env, input=stdin, capture_output=True, timeout=120)
        stderr = done.stderr.decode("utf-8", "replace")
        assert done.returncode == ExitCode.INPUT, (args, stderr)
        assert "not valid UTF-8" in stderr and "Hint: " in stderr and "Traceback" not in stderr


# --- 4. an unusable home ----------------------------------------------------------------------------


def test_home_that_is_a_file_or_cannot_be_created(run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "hostname"
    a_file.write_text("box\n", encoding="utf-8")
    assert_clean_error(run("--home", a_file, "status"), ExitCode.USAGE, "is a file, not a folder")
    assert_clean_error(run("--home", a_file / "sub", "ingest", tmp_path), ExitCode.USAGE, "cannot create")
    monkeypatch.setenv("PLLM_HOME", str(a_file))
    assert_clean_error(run("status"), ExitCode.CONFIG, "PLLM_HOME: ")


# --- 5. a chat line with an impossible date ------------------------------------------------------------


def test_whatsapp_impossible_date_skips_the_line_reports_it_keeps_the_rest(
    run: Any, fake_models: Any, tmp_path: Path
) -> None:
    chat = tmp_path / "WhatsApp Chat with Zoe.txt"
    chat.write_text("01/02/2023, 09:00 - Zoe: hi\n31/02/2023, 10:00 - Zoe: x\n01/03/2023, 11:00 - Maya: yo\n")
    result = run("ingest", chat)
    assert result.exit_code == 0, result.stderr
    assert "warning" in result.stderr and "line 2: invalid date '31/02/2023, 10:00 - Zoe: x'" in result.stderr
    data = json.loads(run("ingest", "--json", "--redact", chat).stdout)
    assert data["files"][0]["status"] == "updated"
    assert data["files"][0]["warnings"] == [
        "WhatsApp Chat with Zoe.txt: line 2: invalid date '31/02/2023, 10:00 - Zoe: x', message left out"
    ]
    stats = json.loads(run("memory", "stats", "--json").stdout)
    assert stats["messages"] == 2


# --- 6. a large file: in parts, resumable, after the small ones ------------------------------------------


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    from pllm_cli.ingest import files

    monkeypatch.setattr(files, "LARGE_FILE_BYTES", 20_000)
    monkeypatch.setattr(files, "PART_BYTES", 4_000)


def write_large(path: Path, paragraphs: int = 600, salt: str = "") -> Path:
    lines = ["# Big notebook", ""]
    for n in range(paragraphs):
        if n % 100 == 0:
            lines += [f"## Chapter {n // 100}", ""]
        lines += [f"Paragraph {n}{salt}: the heron waded past reed number {n * 7} at dawn.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Killed(BaseException):
    """What a SIGKILL does to the work of this process: it stops, nothing below catches it."""


class KilledAfter(FakeEmbedder):
    """Embeds `parts` calls, then dies as a SIGKILL would for this process's work: nothing more is written."""

    def __init__(self, parts: int) -> None:
        super().__init__()
        self.parts = parts

    def embed(self, texts: Any) -> list[Any]:
        if len(self.calls) >= self.parts:
            raise Killed
        return super().embed(texts)

    embed_documents = embed


def test_large_file_goes_in_parts_after_the_small_files_with_progress(
    small_parts: None, folder: Path, store: ChromaStore, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    big = write_large(folder / "a-big.md")
    events: list[Any] = []
    report = ingest_paths([folder], store, fake_embedder, on_event=events.append)
    assert [Path(f.path).name for f in report.files] == ["b.md", "z.md", "a-big.md"]  # the large one last
    parts = [e for e in events if e.kind == "part"]
    assert len(parts) >= 5 and parts[-1].done == parts[-1].total == big.stat().st_size
    assert max(len(call) for call in fake_embedder.calls) < report.files[-1].chunks / 4  # never all at once
    assert agree(store) == report.chunks_written
    big_chunks = sorted((c for c in store.index.iter_chunks() if c.source == str(big)), key=lambda c: c.position)
    assert [c.position for c in big_chunks] == list(range(len(big_chunks)))
    assert big_chunks[-1].section == "Big notebook > Chapter 5"  # the heading path carried over the parts
    assert store.source(str(big)).sha256.endswith("+c4")  # type: ignore[union-attr]
    assert ingest_paths([folder], store, fake_embedder).count("unchanged") == 3


def test_large_file_killed_half_way_keeps_its_parts_and_the_next_ingest_completes_it(
    small_parts: None, tmp_path: Path, store: ChromaStore, run: Any, fake_models: Any
) -> None:
    big = write_large(tmp_path / "big.txt")
    whole = ChromaStore(tmp_path / "whole", embedding_model=FakeEmbedder().name)
    ingest_paths([big], whole, FakeEmbedder())
    expected = {c.id for c in whole.index.iter_chunks()}
    whole.close()

    with pytest.raises(Killed):
        ingest_paths([big], store, KilledAfter(parts=3))
    record = store.source(str(big))
    assert record is not None and "+partial@" in record.sha256  # never taken for the complete file
    kept = agree(store)
    assert 0 < kept < len(expected)
    with pytest.raises(Killed):
        ingest_paths([big], store, KilledAfter(parts=3))  # goes on from there, for 3 more parts
    assert 0 < kept < agree(store) < len(expected)
    report = ingest_paths([big], store, FakeEmbedder())
    assert report.files[0].status == "updated"
    assert {c.id for c in store.index.iter_chunks()} == expected  # as if never interrupted
    assert agree(store) == len(expected)


def test_large_file_killed_between_chroma_and_sqlite_stays_consistent(
    small_parts: None, tmp_path: Path, store: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    big = write_large(tmp_path / "big.md")
    calls = []
    write_rows = store.index.append_to_source

    def dies_on_the_third(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Killed  # the vectors of part 3 are in Chroma, its rows are not in SQLite
        write_rows(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store.index, "append_to_source", dies_on_the_third)
        with pytest.raises(Killed):
            ingest_paths([big], store, fake_embedder)
    assert len(store.collection.get(include=[])["ids"]) > store.count()  # the stray vectors of part 3
    assert ingest_paths([big], store, fake_embedder).files[0].status == "updated"
    assert agree(store) == store.source(str(big)).chunks  # type: ignore[union-attr]


def test_large_file_changed_after_a_kill_is_read_again_from_the_start(
    small_parts: None, tmp_path: Path, store: ChromaStore
) -> None:
    big = write_large(tmp_path / "big.md")
    with pytest.raises(Killed):
        ingest_paths([big], store, KilledAfter(parts=2))
    write_large(big, salt=" (edited)")
    ingest_paths([big], store, FakeEmbedder())
    texts = [c.text for c in store.index.iter_chunks()]
    assert texts and all("(edited)" in t for t in texts if "Paragraph" in t)
    assert agree(store) == store.source(str(big)).chunks  # type: ignore[union-attr]


def test_large_file_with_a_nul_byte_late_fails_alone_and_leaves_nothing(
    small_parts: None, folder: Path, store: ChromaStore, fake_embedder: FakeEmbedder
) -> None:
    big = write_large(folder / "big.txt")
    with big.open("ab") as handle:
        handle.write(b"\ntrailing\x00garbage\n")
    report = ingest_paths([folder], store, fake_embedder)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert list(failed) == ["big.txt"] and "binary" in failed["big.txt"]
    assert store.source(str(big)) is None and agree(store) == 2


def test_partial_source_is_listed_as_partial(
    small_parts: None, tmp_path: Path, run: Any, fake_models: Any, home: Path, memory_backend: Any
) -> None:
    from pllm_cli.paths import Paths

    big = write_large(tmp_path / "big.txt")
    memory = ChromaStore(Paths(home).memory_dir, embedding_model=FakeEmbedder().name, server=memory_backend)
    with pytest.raises(Killed):
        ingest_paths([big], memory, KilledAfter(parts=2))
    memory.close()
    rows = run("memory", "sources", "--json").json_lines()
    assert [row["status"] for row in rows] == ["partial"]


# --- 7. the small ones -----------------------------------------------------------------------------------


def test_nul_byte_after_the_first_8_kib_is_binary(tmp_path: Path) -> None:
    data = b"plain words\n" * 1000 + b"\x00" + b"more words\n"
    with pytest.raises(InputError, match="looks like a binary file"):
        read_document(tmp_path / "notes.md", data)


def test_existing_home_is_tightened_to_0700(run: Any, home: Path, tmp_path: Path) -> None:
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "config.toml").write_text("", encoding="utf-8")
    assert run("status").exit_code == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    elsewhere = tmp_path / "shared"  # a folder that is not pllm's is left as it is
    elsewhere.mkdir()
    (elsewhere / "photo.jpg").write_bytes(b"x")
    os.chmod(elsewhere, 0o755)
    run("--home", elsewhere, "status")
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


def test_config_set_embedding_model_checks_the_folder(run: Any, tmp_path: Path, home: Path) -> None:
    assert_clean_error(
        run("config", "set", "embedding_model", "/nonexistent"), ExitCode.CONFIG, "no such folder", "config unset"
    )
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert_clean_error(run("config", "set", "embedding_model", empty), ExitCode.CONFIG, "no sentence-transformers")
    (empty / "modules.json").write_text("[]", encoding="utf-8")
    assert run("config", "set", "embedding_model", empty).exit_code == 0


def test_unknown_search_mode_is_a_usage_error(run: Any) -> None:
    assert_clean_error(run("memory", "search", "--mode", "bogus", "x"), ExitCode.USAGE, "unknown search mode")
