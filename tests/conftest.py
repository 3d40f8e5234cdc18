"""Shared fixtures: an isolated PLLM_HOME for every test, an in-process CLI runner, the real bundled models
(built once per session) and deterministic fakes for fast unit tests (STYLE habits 9-11)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.prompting import TEMPLATE_OVERHEAD
from pllm_cli.runtime import ChatMessage

TESTS_DIR = Path(__file__).resolve().parent
EXAMPLES = TESTS_DIR.parent / "examples"


# --- isolation ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own PLLM_HOME, no colour, a fixed width and no PLLM_* leaking in."""
    for name in list(os.environ):
        if name.startswith("PLLM_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("PLLM_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    return home


@pytest.fixture
def home(isolated_environment: Path) -> Path:
    return isolated_environment


# --- running the CLI in-process ---------------------------------------------------------------------


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[Any]:
        import json

        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def invoke(argv: Sequence[str], input: str | None = None) -> Result:
    """Run `pllm argv` through main() (and so through its error boundary); never raises SystemExit."""
    from pllm_cli.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input) if input is not None else sys.stdin
    old_stdin = sys.stdin
    sys.stdin = stdin
    old_umask = os.umask(0o022)  # main() sets its own umask: give it the usual one and restore ours after
    os.umask(old_umask)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main([str(a) for a in argv])
            except SystemExit as exit_:
                code = exit_.code
            else:  # pragma: no cover - main() always exits
                raise AssertionError("main() returned without sys.exit")
    finally:
        sys.stdin = old_stdin
        os.umask(old_umask)
    if code is None:
        code = 0
    assert isinstance(code, int), f"exit code should be an int, got {code!r}"
    return Result(code, stdout.getvalue(), stderr.getvalue())


def ingest_examples(home: Path) -> Result:
    """`pllm --home HOME ingest examples/ --json` in this process, with no PLLM_* variable of the caller's."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PLLM_"):
                patch.delenv(name)
        patch.setenv("NO_COLOR", "1")
        result = invoke(["--home", str(home), "ingest", str(EXAMPLES), "--json"])
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def run() -> Any:
    """run(*argv, input=None) -> Result(exit_code, stdout, stderr)."""

    def _run(*argv: Any, input: str | None = None) -> Result:
        return invoke([str(a) for a in argv], input=input)

    return _run


# --- fakes ------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)
_PRONOUNS = {"i", "i'm", "i've", "i'll", "i'd", "my", "me", "mine", "myself", "we", "our", "us", "you", "your"}


class FakeEmbedder:
    """Deterministic bag-of-words vectors: each lower-cased word hashed into one of 64 signed buckets."""

    dimension = 64

    def __init__(self, path: Path | None = None, batch_size: int = 64) -> None:
        self.path = path
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return "fake-embedder"

    def vector(self, text: str) -> list[float]:
        values = [0.0] * self.dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            values[digest[0] % self.dimension] += 1.0 if digest[1] % 2 else -1.0
        norm = math.sqrt(sum(v * v for v in values))
        if norm == 0:
            values[0], norm = 1.0, 1.0
        return [v / norm for v in values]

    def embed(self, texts: Sequence[str]) -> list[Any]:
        """float32 rows, like the real adapter: code that only works with Python lists fails here too."""
        import numpy

        self.calls.append(list(texts))
        return list(numpy.asarray([self.vector(t) for t in texts], dtype=numpy.float32).reshape(len(texts), -1))

    embed_documents = embed


@dataclass
class FakeChatModel:
    """A ChatModel that counts words as tokens, streams a canned answer word by word and records prompts."""

    answer: str = "Your manager is Karin Ek."
    context_size: int = 2048
    name: str = "fake-model.gguf"
    path: Path = Path("/models/fake-model.gguf")
    calls: list[dict[str, Any]] = field(default_factory=list)
    fact_answers: dict[str, str] = field(default_factory=dict)

    def preload(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.count_tokens(m.content) + TEMPLATE_OVERHEAD for m in messages)

    @property
    def messages(self) -> list[ChatMessage]:
        """The messages of the last call."""
        return self.calls[-1]["messages"]

    def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
        """Fact extraction: `answers` maps a statement to the fact to return; otherwise the statement with its
        pronouns dropped, after the name the grammar requires ("I run on Sundays" -> "Maya run on Sundays")."""
        import json

        self.calls.append({"messages": list(messages), "grammar": grammar, "max_tokens": max_tokens})
        said = messages[-1].content.split(" said: ", 1)[-1].rsplit("\nFact about ", 1)
        statement, name = said[0], said[1].rstrip(":") if len(said) > 1 else "Maya"
        if statement in self.fact_answers:
            return json.dumps({"fact": self.fact_answers[statement]})
        kept = [w for w in statement.split() if w.lower().strip(".,!") not in _PRONOUNS]
        return json.dumps({"fact": f"{name} {' '.join(kept)}"})

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> Iterator[str]:
        self.calls.append(
            {"messages": list(messages), "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        )
        words = self.answer.split(" ")
        for number, word in enumerate(words[:max_tokens]):
            yield word if number == 0 else " " + word

    def stream_steered(
        self,
        messages: Sequence[ChatMessage],
        plain_messages: Sequence[ChatMessage],
        *,
        strength: float,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[str]:
        """The canned answer, as `stream` gives it; the call is recorded with both prompts and the strength."""
        self.calls.append(
            {
                "messages": list(messages),
                "plain_messages": list(plain_messages),
                "strength": strength,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "seed": seed,
            }
        )
        words = self.answer.split(" ")
        for number, word in enumerate(words[:max_tokens]):
            yield word if number == 0 else " " + word


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_model() -> FakeChatModel:
    return FakeChatModel()


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> FakeChatModel:
    """Make every AppContext (so every CLI command) use the fake embedder and a shared fake chat model."""
    import pllm_cli.context

    model = FakeChatModel()

    def make_model(
        path: Path | None = None, context_size: int = 4096, threads: int = 0, load: Any = None, prefix_cache: Any = None
    ) -> FakeChatModel:
        model.context_size = context_size
        return model

    monkeypatch.setattr(pllm_cli.context, "SentenceTransformerEmbedder", FakeEmbedder)
    monkeypatch.setattr(pllm_cli.context, "LlamaCppModel", make_model)
    return model


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path, fake_embedder: FakeEmbedder) -> Iterator[Any]:
    """A real Chroma + SQLite memory on disk in tmp_path, for the fake embedder; in a module of the memory
    suite (MEMORY_SUITE), once embedded and once on the session's Chroma server."""
    from pllm_cli.memory.store import ChromaStore

    server = request.getfixturevalue("memory_backend") if "memory_backend" in request.fixturenames else None
    memory = ChromaStore(tmp_path / "memory", embedding_model=fake_embedder.name, server=server)
    yield memory
    memory.close()


# --- memory on a Chroma server ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChromaServer:
    url: str  # http://127.0.0.1:PORT
    data: Path  # its --path

    def client(self, database: str) -> Any:
        """A chromadb client of one database, to read what the server holds directly."""
        import chromadb
        from chromadb.config import Settings

        port = int(self.url.rsplit(":", 1)[1])
        return chromadb.HttpClient(
            host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False), database=database
        )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def http_server_process(command: list[str], probe: str, log_path: Path, seconds: float, name: str) -> Iterator[None]:
    """Run `command` (its output to `log_path`) until the block ends, once GET `probe` answers 200 (within
    `seconds`); then terminate it (kill it if it does not stop within 10 s)."""
    import subprocess
    import time

    import httpx

    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx.get(probe, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{name} did not start: see {log_path}")
            time.sleep(0.1)
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real `chroma run` on 127.0.0.1 on a free port with its own data folder, for the whole session."""
    import shutil

    chroma = Path(sys.executable).with_name("chroma")
    command = str(chroma) if chroma.exists() else shutil.which("chroma")
    assert command, "the chroma command (installed with chromadb) is needed for the memory-server tests"
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command_line = [command, "run", "--path", str(data / "data"), "--host", "127.0.0.1", "--port", str(port)]
    log = data.parent / "chroma-server.log"
    with http_server_process(command_line, f"{url}/api/v2/heartbeat", log, 60, "chroma run"):
        yield ChromaServer(url, data / "data")


@dataclass(frozen=True)
class ModelServer:
    url: str  # http://127.0.0.1:PORT, what model_url is set to
    log: Path


# llama-cpp-python in pllm's venv is built with the CPU code in variant modules that llama_cpp does not load
# itself (llama_backend.py): its server is started through pllm's loader first.
_LLAMA_SERVER = (
    "import sys\n"
    "from pllm_cli.llama_backend import load_cpu_backend\n"
    "load_cpu_backend()\n"
    "from llama_cpp.server.__main__ import main\n"
    "sys.argv[0] = 'llama_cpp.server'\n"
    "main()\n"
)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """A real `python -m llama_cpp.server` with the bundled GGUF on 127.0.0.1 on a free port, for the session."""
    from pllm_cli.runtime import bundled_model_path

    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "llama-server.log"
    options = ["--model", str(bundled_model_path()), "--n_ctx", "2048", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", _LLAMA_SERVER, *options]
    with http_server_process(command, f"{url}/v1/models", log_path, 120, "llama_cpp.server"):
        yield ModelServer(url, log_path)


# The memory suite: modules marked `pytestmark = pytest.mark.usefixtures("memory_backend")` run each test that
# uses `store` or the CLI (`run`) twice, with the embedded memory and with memory on the session's Chroma server.
# Their other tests (no memory), and those marked embedded_only, run once.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_server = callspec is not None and callspec.params.get("memory_backend") == "server"
        names = set(getattr(item, "fixturenames", ()))
        needless = not names & {"store", "run", "chroma_server"} or item.get_closest_marker("embedded_only")
        (dropped if on_server and needless else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["embedded", "server"])
def memory_backend(request: pytest.FixtureRequest, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """None (the embedded store), or a MemoryServer in a database of this test's own on the session's Chroma
    server, also set as PLLM_MEMORY_URL for the CLI."""
    if request.param == "embedded":
        return None
    from pllm_cli.memory.remote import MemoryServer

    server: ChromaServer = request.getfixturevalue("chroma_server")
    database = "t" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("PLLM_MEMORY_URL", f"{server.url}/{database}")
    return MemoryServer(f"{server.url}/{database}")


# --- the real bundled models, built once ----------------------------------------------------------


@pytest.fixture(scope="session")
def real_embedder() -> Any:
    from pllm_cli.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.model  # load now: once per session  # noqa: B018
    return embedder


@pytest.fixture(scope="session")
def real_model() -> Any:
    from pllm_cli.runtime import LlamaCppModel

    model = LlamaCppModel(context_size=2048)
    model.llama  # load now: once per session  # noqa: B018
    return model
