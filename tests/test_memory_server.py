"""Memory on a Chroma server (memory_url): two homes sharing it, forgetting on it, an unreachable server, the
bearer token, and `pllm eval retrieval` giving the same figures as the embedded store. The rest of the memory
suite runs against the server too (conftest.py, memory_backend)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import ChromaServer, free_port
from test_eval import tiny_locomo

from pllm_cli.errors import ExitCode
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.memory.remote import MemoryServer
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths

SECRET = "Quibblefrost"  # a word that is nowhere else: its bytes are looked for after a forget


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    return "t" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]


@pytest.fixture
def url(chroma_server: ChromaServer, database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """PLLM_MEMORY_URL: this test's own database on the session's server."""
    address = f"{chroma_server.url}/{database}"
    monkeypatch.setenv("PLLM_MEMORY_URL", address)
    return address


def chat(path: Path, turns: list[tuple[str, str]]) -> Path:
    lines = [
        {"conversation": "c", "id": f"m{n}", "speaker": s, "time": f"2026-02-01T08:{n:02d}:00+01:00", "text": t}
        for n, (s, t) in enumerate(turns)
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "kyoto.md").write_text("# Trip\n\nWe went to Kyoto in spring and saw the moss garden.\n")
    chat(
        folder / "cats.jsonl",
        [("Zoe", f"my cat is called {SECRET}"), ("Maya", "nice, mine is called Tofu"), ("Zoe", "they should meet")],
    )
    return folder


def search(run: Any, home: Path, query: str) -> list[dict[str, Any]]:
    """The hits of `pllm memory search`; none if memory is empty."""
    result = run("--home", home, "memory", "search", query, "--json")
    if result.exit_code == ExitCode.NOT_FOUND and "memory is empty" in result.stderr:
        return []
    assert result.exit_code == 0, result.stderr
    hits: list[dict[str, Any]] = json.loads(result.stdout)["hits"]
    return hits


def server_documents(chroma_server: ChromaServer, database: str) -> dict[str, list[str]]:
    """collection name -> every document in it, read from the server directly."""
    client = chroma_server.client(database)
    return {c.name: list(c.get(include=["documents"])["documents"]) for c in client.list_collections()}


def test_two_homes_sharing_one_server_find_what_the_other_ingested(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path
) -> None:
    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    found = search(run, desktop, "moss garden Kyoto")
    assert found and found[0]["source"] == str(notes / "kyoto.md")
    (notes / "late.md").write_text("# Later\n\nThe desktop learns about sourdough too.\n")
    assert run("--home", desktop, "ingest", notes / "late.md").exit_code == 0
    assert search(run, laptop, "sourdough")[0]["source"] == str(notes / "late.md")
    sources = run("--home", laptop, "memory", "stats", "--json")
    assert json.loads(sources.stdout)["sources"] == 3
    status = json.loads(run("--home", desktop, "status", "--json").stdout)["memory"]
    assert status["kind"] == "server" and status["reachable"] and status["chunks"] == status["server_chunks"]


def test_a_rename_on_one_home_reaches_the_other(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path
) -> None:
    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    search(run, desktop, "Kyoto")  # the desktop has synced once
    (notes / "kyoto.md").rename(notes / "japan.md")
    result = run("--home", laptop, "ingest", notes, "--json")
    assert json.loads(result.stdout)["summary"]["moved"] == 1
    assert search(run, desktop, "Kyoto")[0]["source"] == str(notes / "japan.md")


def test_forget_leaves_no_trace_on_the_server_nor_in_the_other_home(
    run: Any,
    fake_models: Any,
    tmp_path: Path,
    url: str,
    notes: Path,
    chroma_server: ChromaServer,
    database: str,
) -> None:
    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    assert SECRET in json.dumps(search(run, desktop, SECRET))
    assert any(SECRET in d for docs in server_documents(chroma_server, database).values() for d in docs)

    result = run("--home", laptop, "memory", "forget", "--speaker", "Zoe", "--json")
    assert result.exit_code == 0, result.stderr
    documents = server_documents(chroma_server, database)
    assert sorted(documents) == ["pllm.default.2", "pllm.default.live"]  # the old generation deleted
    assert documents["pllm.default.2"] and not any(SECRET in d or "Zoe" in d for d in documents["pllm.default.2"])

    assert SECRET not in json.dumps(search(run, desktop, SECRET))
    for home in (laptop, desktop):  # each home's index: synced, compacted
        for path in Paths(home).memory_dir.rglob("*"):
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert search(run, desktop, "Tofu")  # what remains is still there


def test_forget_a_source_and_prune_on_the_server(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path, chroma_server: ChromaServer, database: str
) -> None:
    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    assert run("--home", laptop, "memory", "forget", str(notes / "cats.jsonl")).exit_code == 0
    (notes / "cats.jsonl").unlink()
    (notes / "kyoto.md").unlink()
    assert json.loads(run("--home", laptop, "ingest", notes, "--prune", "--json").stdout)["summary"]["pruned"] == 1
    assert [
        docs for name, docs in server_documents(chroma_server, database).items() if name != "pllm.default.live"
    ] == [[]]
    assert search(run, desktop, "Kyoto moss Tofu") == []


def test_an_unreachable_server_is_one_line_and_exit_12_and_nothing_is_written(
    run: Any, fake_models: Any, home: Path, notes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLLM_MEMORY_URL", f"http://127.0.0.1:{free_port()}")
    for argv in (["ingest", notes], ["memory", "search", "Kyoto"], ["status"]):
        result = run(*argv)
        assert result.exit_code == ExitCode.UNREACHABLE == 12, (argv, result.stderr)
        assert "Traceback" not in result.stderr
        error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and "does not answer" in error[0] and "Hint:" in result.stderr
    status = json.loads(run("status", "--json").stdout)["memory"]
    assert status["kind"] == "server" and status["reachable"] is False
    index = Paths(home).memory_dir / "index.sqlite3"
    assert not index.exists() or ChunkIndex(index).count() == 0
    assert run("--memory-url", "ftp://nowhere", "status").exit_code == ExitCode.CONFIG


def test_status_says_which_memory_is_in_use(run: Any, fake_models: Any, home: Path, url: str) -> None:
    on_server = json.loads(run("status", "--json").stdout)["memory"]
    assert on_server["url"] == url.rsplit("/", 1)[0] and on_server["database"] == url.rsplit("/", 1)[1]
    assert on_server["collection"] == "pllm.default.1"
    embedded = json.loads(run("--home", home.parent / "other", "--memory-url", "", "status", "--json").stdout)
    assert embedded["memory"]["kind"] == "embedded" and embedded["memory"]["path"].endswith("memory")


class _Guard(http.server.BaseHTTPRequestHandler):
    """A proxy's refusal: 401 to anything, the Authorization header it got remembered."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _Guard.seen.append(self.headers.get("Authorization"))
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def guard() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Guard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_token_is_sent_as_a_bearer_header(run: Any, fake_models: Any, guard: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("PLLM_MEMORY_URL", guard)
    monkeypatch.setenv("PLLM_MEMORY_TOKEN", "s3cret")
    result = run("memory", "search", "Kyoto")
    assert result.exit_code == ExitCode.UNREACHABLE and "refuses pllm (HTTP 401)" in result.stderr
    assert "memory_token" in result.stderr and _Guard.seen[-1] == "Bearer s3cret"
    shown = json.loads(run("config", "show", "--json").stdout)["memory_token"]
    assert shown["value"] == "(set)"


def test_a_source_cut_short_on_the_server_is_left_out_by_the_other_home(
    tmp_path: Path, fake_embedder: Any, chroma_server: ChromaServer, database: str, notes: Path
) -> None:
    server = MemoryServer(f"{chroma_server.url}/{database}")
    laptop = ChromaStore(tmp_path / "laptop", fake_embedder.name, server=server)
    from pllm_cli.ingest.pipeline import ingest_paths

    (notes / "long.md").write_text("# One\n\nThe first part.\n\n# Two\n\nThe second part.\n")
    ingest_paths([notes], laptop, fake_embedder)
    cut = str(notes / "long.md")
    [one, _two] = laptop.index.chunk_ids(cut)
    laptop.collection.delete(ids=[one])  # as a client that died between Chroma's delete and its last upsert
    laptop.remote.bump()  # type: ignore[union-attr]
    laptop.close()
    desktop = ChromaStore(tmp_path / "desktop", fake_embedder.name, server=server)
    try:
        assert str(notes / "kyoto.md") in [r.source for r in desktop.sources()]
        assert cut not in [r.source for r in desktop.sources()] and desktop.sync().incomplete == [cut]
    finally:
        desktop.close()


def test_an_embedded_memory_is_not_taken_for_a_server_one(
    run: Any, fake_models: Any, home: Path, notes: Path, chroma_server: ChromaServer, database: str
) -> None:
    assert run("ingest", notes).exit_code == 0  # embedded
    result = run("--memory-url", f"{chroma_server.url}/{database}", "memory", "search", "Kyoto")
    assert result.exit_code == ExitCode.STORE and "is embedded" in result.stderr


def test_eval_retrieval_gives_the_same_figures_embedded_and_on_the_server(
    run: Any, fake_models: Any, tmp_path: Path, chroma_server: ChromaServer, database: str
) -> None:
    data = tiny_locomo(tmp_path / "tiny.json")
    embedded = run("eval", "retrieval", data, "--json", "--ablate")
    on_server = run("--memory-url", f"{chroma_server.url}/{database}", "eval", "retrieval", data, "--json", "--ablate")
    assert embedded.exit_code == on_server.exit_code == 0, on_server.stderr
    figures = [{k: v for k, v in json.loads(r.stdout).items() if k != "seconds"} for r in (embedded, on_server)]
    assert figures[0] == figures[1]
    assert server_documents(chroma_server, database) == {}  # its temporary memories are deleted


def test_the_collections_a_server_memory_uses(chroma_server: ChromaServer, database: str, fake_embedder: Any) -> None:
    """The live pointer and one generation, made by the first client; a second one finds them."""
    server = MemoryServer(f"{chroma_server.url}/{database}", persona="work")
    for _ in range(2):
        started = time.perf_counter()
        store = ChromaStore(Path(chroma_server.data.parent / f"home-{_}"), fake_embedder.name, server=server)
        assert store.describe()["collection"] == "pllm.work.1"
        store.close()
        assert time.perf_counter() - started < 10
    assert sorted(server_documents(chroma_server, database)) == ["pllm.work.1", "pllm.work.live"]


def test_an_ingest_cut_short_by_the_server_is_redone_by_the_next_one(
    run: Any, fake_models: Any, url: str, notes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server lost between Chroma's delete and its upsert: exit 12, the file's old sha256 stays in the
    home's index (written last), so the next ingest writes the file again."""
    import httpx
    from chromadb.api.models.Collection import Collection

    assert run("ingest", notes).exit_code == 0
    (notes / "kyoto.md").write_text("# Trip\n\nIn the end we went to Osaka.\n")

    def lost(*args: Any, **kwargs: Any) -> None:
        raise httpx.ConnectError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(Collection, "upsert", lost)
        cut = run("ingest", notes)
    assert cut.exit_code == ExitCode.UNREACHABLE and "Traceback" not in cut.stderr
    again = run("ingest", notes, "--json")
    assert json.loads(again.stdout)["summary"]["updated"] == 1
    assert search(run, notes.parent / "other", "Osaka")[0]["source"].endswith("kyoto.md")  # another home too
    assert run("memory", "sync", "--json").exit_code == 0
    assert run("--memory-url", "", "--home", notes.parent / "third", "memory", "sync").exit_code == ExitCode.INPUT


def test_a_forget_rule_of_one_home_holds_in_the_others_ingests(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path
) -> None:
    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    assert run("--home", laptop, "memory", "forget", "--speaker", "Zoe").exit_code == 0
    copy = chat(tmp_path / "desktop-copy.jsonl", [("Zoe", f"did I say {SECRET}?"), ("Maya", "you did")])
    assert run("--home", desktop, "ingest", copy).exit_code == 0
    assert SECRET not in json.dumps(search(run, laptop, SECRET))
    assert search(run, laptop, "you did")  # Maya's message went in


LOCOMO_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "locomo" / "locomo-dev.json"


def locomo_excerpt(path: Path, sessions: int = 4) -> Path:
    """The first LoCoMo-dev conversation's first `sessions` sessions, with the questions answered in them."""
    sample = json.loads(LOCOMO_DEV.read_text(encoding="utf-8"))[0]
    kept = {f"session_{n}" for n in range(1, sessions + 1)} | {f"session_{n}_date_time" for n in range(1, sessions + 1)}
    conversation = {
        key: value for key, value in sample["conversation"].items() if key in kept or not key.startswith("session_")
    }
    inside = {f"D{n}:" for n in range(1, sessions + 1)}
    qa = [q for q in sample["qa"] if q.get("evidence") and all(e[: e.index(":") + 1] in inside for e in q["evidence"])]
    path.write_text(json.dumps([{"sample_id": sample["sample_id"], "conversation": conversation, "qa": qa}]))
    return path


@pytest.mark.e2e
@pytest.mark.skipif(not LOCOMO_DEV.exists(), reason="../shared/eval/locomo/locomo-dev.json is not beside the repo")
def test_eval_retrieval_on_locomo_with_the_real_embedder_gives_the_same_figures_on_the_server(
    run: Any, tmp_path: Path, chroma_server: ChromaServer, database: str
) -> None:
    data = locomo_excerpt(tmp_path / "excerpt.json")
    embedded = run("eval", "retrieval", data, "--json")
    on_server = run("--memory-url", f"{chroma_server.url}/{database}", "eval", "retrieval", data, "--json")
    assert embedded.exit_code == on_server.exit_code == 0, on_server.stderr
    figures = [{k: v for k, v in json.loads(r.stdout).items() if k != "seconds"} for r in (embedded, on_server)]
    assert figures[0]["questions"] >= 20
    assert figures[0] == figures[1]


def test_prune_and_moves_only_touch_the_sources_this_home_ingested(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path
) -> None:
    """The laptop's files do not exist on the desktop: the desktop's --prune keeps them, and a copy of one of
    them on the desktop is a new source there, not the laptop's file moved."""
    import shutil

    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    elsewhere = tmp_path / "desktop-notes"
    elsewhere.mkdir()
    shutil.copy(notes / "kyoto.md", elsewhere / "kyoto-copy.md")
    shutil.move(notes, tmp_path / "laptop-only")  # as seen from the desktop: the laptop's paths are missing
    report = json.loads(run("--home", desktop, "ingest", elsewhere, "--prune", "--json").stdout)["summary"]
    assert (report["added"], report["moved"], report["pruned"]) == (1, 0, 0)
    sources = json.loads(run("--home", laptop, "memory", "stats", "--json").stdout)["sources"]
    assert sources == 3
    report = json.loads(run("--home", laptop, "ingest", elsewhere, "--prune", "--json").stdout)["summary"]
    assert report["pruned"] == 2  # the laptop's own, whose files are gone


def test_a_forget_on_another_home_leaves_the_source_to_the_home_that_wrote_it(
    run: Any, fake_models: Any, tmp_path: Path, url: str, notes: Path
) -> None:
    import shutil

    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert run("--home", laptop, "ingest", notes).exit_code == 0
    shutil.move(notes, tmp_path / "laptop-only")  # the desktop cannot read the laptop's files
    assert run("--home", desktop, "memory", "forget", "--speaker", "Zoe").exit_code == 0  # in the stored chunks
    (tmp_path / "empty").mkdir()
    summary = json.loads(run("--home", desktop, "ingest", tmp_path / "empty", "--prune", "--json").stdout)["summary"]
    assert summary["pruned"] == 0
    assert search(run, laptop, "Tofu") and SECRET not in json.dumps(search(run, laptop, SECRET))
    summary = json.loads(run("--home", laptop, "ingest", tmp_path / "empty", "--prune", "--json").stdout)["summary"]
    assert summary["pruned"] == 2


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_forget_cut_short_on_the_server_leaves_one_whole_generation_and_is_finished_later(
    run: Any,
    fake_models: Any,
    url: str,
    notes: Path,
    chroma_server: ChromaServer,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """Cut before the pointer moves: generation 1 stays live and whole, 2 is a leftover, and the next ingest
    finishes the forget. Cut after: 2 is live, and the next command deletes 1."""
    from pllm_cli.errors import StoreError
    from pllm_cli.memory.remote import RemoteVectors

    assert run("ingest", notes).exit_code == 0
    real = RemoteVectors._switch

    def cut(self: RemoteVectors, target: str) -> None:
        if when == "after":
            real(self, target)
        raise StoreError("cut short")

    with monkeypatch.context() as patch:
        patch.setattr(RemoteVectors, "_switch", cut)
        assert run("memory", "forget", "--speaker", "Zoe").exit_code == ExitCode.STORE
    documents = server_documents(chroma_server, database)
    assert sorted(documents) == ["pllm.default.1", "pllm.default.2", "pllm.default.live"]
    live = "pllm.default.1" if when == "before" else "pllm.default.2"
    assert search(run, notes.parent / "reader", "Kyoto")  # another home reads the live one
    if when == "before":
        assert len(documents[live]) == 2  # whole: the forget's rewrite of the chat is in, its rebuild is not
        assert run("ingest", notes).exit_code == 0  # finishes it
    documents = server_documents(chroma_server, database)
    assert sorted(documents) == ["pllm.default.2", "pllm.default.live"]
    assert not any(SECRET in d for d in documents["pllm.default.2"])


def test_a_large_file_ingested_in_parts_reaches_the_other_home_whole(
    tmp_path: Path, fake_embedder: Any, chroma_server: ChromaServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each part's records carry the record of the time; the last part restamps them all, so another home takes
    the file only once it is whole (and then all of it)."""
    from test_bad_input import write_large

    from pllm_cli.ingest import files
    from pllm_cli.ingest.pipeline import ingest_paths

    monkeypatch.setattr(files, "LARGE_FILE_BYTES", 20_000)
    monkeypatch.setattr(files, "PART_BYTES", 4_000)
    big = write_large(tmp_path / "big.md")
    server = MemoryServer(f"{chroma_server.url}/{database}")
    laptop = ChromaStore(tmp_path / "laptop", fake_embedder.name, server=server)
    try:
        report = ingest_paths([big], laptop, fake_embedder)
        assert report.files[0].status == "added" and report.chunks_written > 20
    finally:
        laptop.close()
    desktop = ChromaStore(tmp_path / "desktop", fake_embedder.name, server=server)
    try:
        [record] = desktop.sources()
        assert record.chunks == report.chunks_written == desktop.count() and "+partial@" not in record.sha256
    finally:
        desktop.close()
