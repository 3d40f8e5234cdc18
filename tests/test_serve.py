"""`pllm serve` with the fake models: the protocol, the same output with and without a server, the fallback,
--no-server, the queue (BUSY), stale sockets and a second server. The real models: test_serve_e2e.py."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeChatModel, Result
from serve_support import InProcessServer, served

from pllm_cli.chat import OPENING_CHARS
from pllm_cli.context import AppContext
from pllm_cli.errors import BusyError, ExitCode, PllmError
from pllm_cli.paths import Paths
from pllm_cli.server import protocol
from pllm_cli.server.client import ServerClient, ServerUnavailable
from pllm_cli.server.protocol import ProtocolError
from pllm_cli.server.server import Server

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who is my manager?"


# --- the protocol ---------------------------------------------------------------------------------


def test_every_message_carries_the_version_and_reads_back() -> None:
    messages = [
        protocol.request("ask", persona="default", question="Vem är min chef?", history=[]),
        protocol.begin({"question": "q", "sources": []}),
        protocol.piece(" Karin"),
        protocol.item({"query": "q", "hits": []}),
        protocol.end({"answer": "Karin Ek [1]"}),
    ]
    for message in messages:
        line = protocol.encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert protocol.decode(line) == {"v": protocol.VERSION, **message}
    assert "Vem är min chef?".encode() in protocol.encode(messages[0]), "UTF-8, not \\u escapes"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "no message"),
        (b'{"v": 1, "type": "piece"', "in the middle of a message"),
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"v": 2, "op": "status"}\n', "protocol version 2"),
        (b'{"op": "status"}\n', "protocol version None"),
    ],
)
def test_a_line_that_is_not_a_message_is_refused(line: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode(line)


def test_an_error_comes_back_as_the_same_pllm_error() -> None:
    sent = PllmError("memory is empty", hint="add your files first", exit_code=ExitCode.NOT_FOUND)
    received = protocol.to_error(protocol.decode(protocol.encode(protocol.error(sent))))
    assert (received.message, received.hint, received.exit_code) == ("memory is empty", "add your files first", 5)
    assert protocol.to_error({"type": "error", "message": "x", "exit_code": 99}).exit_code == ExitCode.INTERNAL
    assert protocol.to_error({"type": "error", "message": "x", "hint": None}).hint is None


def test_the_job_queue_is_bounded_and_lets_short_jobs_past_a_long_one() -> None:
    from pllm_cli.server.jobs import Job, JobQueue, QueueFull

    left, right = socket.socketpair()
    try:
        jobs = [Job(protocol.request(op), left) for op in ("refresh", "ask", "search")]
        queue = JobQueue(3)
        for job in jobs:
            queue.put(job)
        with pytest.raises(QueueFull):
            queue.put(Job(protocol.request("ask"), left))
        assert len(queue) == 3
        assert queue.take(lambda job: job.op != "refresh") is jobs[1], "the first short job behind the refresh"
        queue.put_stop()
        queue.put(Job(protocol.request("ask"), left))  # after the stop marker: never taken between steps
        assert queue.take(lambda job: job.op != "refresh") is jobs[2]
        assert queue.take(lambda job: job.op != "refresh") is None
        assert [queue.get(), queue.get()] == [jobs[0], None]
    finally:
        left.close()
        right.close()


# --- a server in this process, with the fake models ------------------------------------------------


@pytest.fixture
def serving(home: Path, fake_models: FakeChatModel) -> Iterator[Server]:
    running = InProcessServer(home)
    yield running.server
    running.stop()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "work.md").write_text("# Work\n\nMy manager is Karin Ek. Deadline 30 June.\n", encoding="utf-8")
    (folder / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    (folder / "chat.jsonl").write_text(
        "\n".join(
            json.dumps({"id": f"m{n}", "conversation": "family", "time": f"2026-03-0{n}T10:00:00", **turn})
            for n, turn in enumerate(
                [
                    {"speaker": "Jonas", "text": "Did Elin like the tea bowl?"},
                    {"speaker": "Maya", "text": "She loved the white hagi chawan."},
                ],
                start=1,
            )
        )
        + "\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def ingested(run: Any, fake_models: FakeChatModel, notes: Path) -> Path:
    result = run("ingest", notes)
    assert result.exit_code == 0, result.stderr
    return notes


def comparable(result: Result) -> tuple[int, str, str]:
    """Exit code, stdout and stderr, with the timings left out of JSON output (they are measured each time)."""
    lines = []
    for line in result.stdout.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        if isinstance(data, dict):
            data.pop("timings", None)
        lines.append(json.dumps(data, sort_keys=True))
    return result.exit_code, "\n".join(lines), result.stderr


SAME_WITH_SERVER = [
    (("ask", QUESTION), None),
    (("ask", "--json", QUESTION), None),
    (("ask", "--all-sources", "--seed", "3", QUESTION), None),
    (("ask", "--no-memory", "--no-profile", "-"), "What is on my list?\n"),
    (("ask", "--k", "1", "--max-tokens", "3", "--json", QUESTION), None),
    (("ask", "   "), None),  # exit 4: the question is empty
    (("ask", "--no-memory", "--max-tokens", "100", "word " * 5000), None),  # exit 7: too long
    (("chat", "--seed", "1"), f"/sources\n{QUESTION}\n/sources\n/profile\nWhat does Elin collect?\n/exit\n"),
    (("memory", "search", "Hagi tea bowls"), None),
    (("memory", "search", "--json", "-k", "2", "hagi chawan"), None),
    (("memory", "search", "--mode", "lexical", "--json", "Karin"), None),
    (("memory", "search", "--tokens", "40", "tea bowl"), None),
    (("memory", "search", "-", "--json"), "manager\n\nElin collects\n"),
    (("memory", "search", "-"), "manager\nhagi\n"),
    (("memory", "search", " "), None),  # exit 4: the query is empty
]


@pytest.mark.parametrize(("argv", "stdin"), SAME_WITH_SERVER, ids=[" ".join(a)[:40] for a, _ in SAME_WITH_SERVER])
def test_a_command_gives_the_same_output_with_and_without_the_server(
    run: Any, ingested: Path, serving: Server, argv: tuple[str, ...], stdin: str | None
) -> None:
    before = served(serving)
    alone = run("--no-server", *argv, input=stdin)
    assert served(serving) == before, "--no-server ran in this process"
    through = run(*argv, input=stdin)
    assert served(serving, at_least=before + 1) > before, "the server answered"
    assert comparable(through) == comparable(alone)
    assert "Traceback" not in through.stderr


def test_errors_come_back_with_their_message_hint_and_exit_code(run: Any, serving: Server) -> None:
    """Memory is empty: the server's NotFoundError is this process's, word for word."""
    for argv in (("ask", QUESTION), ("chat",), ("memory", "search", "x")):
        alone, through = run("--no-server", *argv, input=""), run(*argv, input="")
        assert through.exit_code == alone.exit_code == ExitCode.NOT_FOUND
        assert through.stderr == alone.stderr
        assert through.stderr.startswith("Error: memory is empty\nHint: ")
    assert served(serving, at_least=3) == 3


def test_pllm_no_server_in_the_environment_keeps_commands_in_this_process(
    run: Any, ingested: Path, serving: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLLM_NO_SERVER", "1")
    assert run("ask", QUESTION).exit_code == 0
    assert served(serving) == 0
    monkeypatch.setenv("PLLM_NO_SERVER", "0")
    assert run("ask", QUESTION).exit_code == 0
    assert served(serving, at_least=1) == 1


def test_without_a_server_commands_run_in_this_process(run: Any, ingested: Path, fake_models: FakeChatModel) -> None:
    result = run("ask", "--json", QUESTION)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["answer"] == fake_models.answer + " [1]"
    assert fake_models.calls, "the model of this process answered"


def test_a_server_with_other_models_is_left_alone(
    run: Any, ingested: Path, serving: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that would load another model (or context size) runs in its own process."""
    assert run("ask", "--model", "/models/other.gguf", "--no-memory", "hi").exit_code == 0
    monkeypatch.setenv("PLLM_CONTEXT_SIZE", "1024")
    assert run("memory", "search", "hagi").exit_code == 0
    assert served(serving) == 0
    monkeypatch.delenv("PLLM_CONTEXT_SIZE")
    assert run("memory", "search", "hagi").exit_code == 0
    assert served(serving, at_least=1) == 1


def test_every_persona_of_the_home_is_served(run: Any, ingested: Path, serving: Server, notes: Path) -> None:
    assert run("profiles", "create", "work").exit_code == 0
    empty = run("--profile", "work", "ask", QUESTION)
    assert empty.exit_code == ExitCode.NOT_FOUND, "the work persona's memory, not the default one"
    assert run("--profile", "work", "ingest", notes / "elin.md").exit_code == 0
    found = run("--profile", "work", "memory", "search", "--json", "Karin manager")
    assert {Path(h["source"]).name for h in json.loads(found.stdout)["hits"]} == {"elin.md"}
    assert served(serving, at_least=2) == 2


def test_memory_ingested_while_the_server_runs_is_found(run: Any, ingested: Path, serving: Server, notes: Path) -> None:
    """The server's Chroma client keeps its index in memory: it opens memory again after another process
    changed it (here a real `pllm ingest` process, with the fake embedder)."""
    assert run("memory", "search", "--json", "sourdough").exit_code == 0  # the server has the store open
    (notes / "bread.md").write_text("# Bread\n\nMy sourdough starter is called Bubbles.\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PLLM_NO_SERVER"}
    ingest = [sys.executable, str(ROOT / "tests" / "pllm_with_fakes.py"), "ingest", str(notes)]
    done = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    hits = json.loads(run("memory", "search", "--json", "--mode", "dense", "sourdough starter").stdout)["hits"]
    assert Path(hits[0]["source"]).name == "bread.md"
    assert served(serving, at_least=2) == 2


def deleted_files_held(under: Path) -> list[str]:
    """Files under `under` that this process holds open or mapped although they were deleted."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held.append(target)
    held += [line.split(None, 5)[-1] for line in Path("/proc/self/maps").read_text().splitlines()]
    return sorted({t for t in held if t.startswith(str(under)) and t.endswith("(deleted)")})


def test_the_server_lets_go_of_forgotten_memory_without_waiting_for_a_request(
    run: Any, ingested: Path, serving: Server, home: Path, notes: Path
) -> None:
    """A forget copies what remains into a new vector store and deletes the old one: a server that kept the
    old one's files open would keep the forgotten text on disk. It lets go within seconds, idle or not."""
    assert run("memory", "search", "--json", "--mode", "dense", "hagi").exit_code == 0  # the server opens memory
    env = {key: value for key, value in os.environ.items() if key != "PLLM_NO_SERVER"}
    forget = [sys.executable, str(ROOT / "tests" / "pllm_with_fakes.py"), "memory", "forget", str(notes / "elin.md")]
    done = subprocess.run(forget, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not deleted_files_held(home), "the server closed the deleted vector store", seconds=15)
    hits = json.loads(run("memory", "search", "--json", "--mode", "dense", "hagi").stdout)["hits"]
    assert all(Path(h["source"]).name != "elin.md" for h in hits)


# --- streaming, the queue and BUSY -----------------------------------------------------------------


LONG_ANSWER = (
    "Your manager is Karin Ek, and the project deadline is the 30th of June this year:"
    " the work notes say my manager is Karin Ek, deadline 30 June."
)
HELD = OPENING_CHARS + 10  # characters the model gives before it waits: more than ask holds back at the start


def gate_the_model(model: FakeChatModel) -> threading.Event:
    """The model gives a long answer and stops after its first HELD characters until the event is set."""
    model.answer = LONG_ANSWER
    gate = threading.Event()
    stream = model.stream

    def gated(*args: Any, **kwargs: Any) -> Iterator[str]:
        given = 0
        for piece in stream(*args, **kwargs):
            yield piece
            given += len(piece)
            if given >= HELD and not gate.is_set():
                assert gate.wait(60), "the test never opened the gate"

    model.stream = gated  # type: ignore[method-assign]
    return gate


def ask_request(question: str = QUESTION) -> dict[str, Any]:
    app = AppContext(paths=Paths.resolve())
    return protocol.request(
        "ask", persona="default", config=app.config.as_dict(), options={}, question=question, history=[]
    )


def test_an_answer_streams_piece_by_piece(ingested: Path, serving: Server, fake_models: FakeChatModel) -> None:
    gate = gate_the_model(fake_models)
    messages = ServerClient(serving.socket_path).exchange(ask_request())
    begun = next(messages)
    assert begun["type"] == "begin" and begun["data"]["sources"] and begun["data"]["answer"] == ""
    pieces = [next(messages)]
    while len("".join(p["text"] for p in pieces)) < HELD - 10:
        pieces.append(next(messages))
    assert {p["type"] for p in pieces} == {"piece"}, "sent while the model still holds the rest"
    assert serving.status()["answering"] == "ask", "status is answered while the worker is busy"
    gate.set()
    rest = list(messages)
    pieces += [m for m in rest if m["type"] == "piece"]
    assert len(pieces) >= 8, "piece by piece, not the answer in one message"
    assert "".join(p["text"] for p in pieces) == LONG_ANSWER + " [1]"
    assert rest[-1]["type"] == "end" and rest[-1]["data"]["answer"] == LONG_ANSWER + " [1]"


def test_a_client_that_leaves_stops_its_answer(ingested: Path, serving: Server, fake_models: FakeChatModel) -> None:
    gate = gate_the_model(fake_models)
    closed = threading.Event()
    stream = fake_models.stream

    def watched(*args: Any, **kwargs: Any) -> Iterator[str]:
        try:
            yield from stream(*args, **kwargs)
        finally:
            closed.set()

    fake_models.stream = watched  # type: ignore[method-assign]
    messages = ServerClient(serving.socket_path).exchange(ask_request())
    assert [next(messages)["type"], next(messages)["type"]] == ["begin", "piece"]
    messages.close()  # Ctrl-C in the client
    gate.set()
    assert closed.wait(10), "the model's stream was closed"
    deadline = time.monotonic() + 10
    while serving.status()["answering"] is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    again = ServerClient(serving.socket_path).call(ask_request())
    assert again["answer"] == LONG_ANSWER + " [1]", "the next request is answered in full"


def client_process(home: Path, *argv: str) -> subprocess.Popen[str]:
    """`pllm ARGV` as a real process (it needs no model: the server in this test process answers)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLLM_")}
    env.update(PLLM_HOME=str(home), PYTHONPATH=str(ROOT), NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "pllm_cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_a_full_queue_answers_busy_and_no_answer_is_cut_off(
    run: Any, ingested: Path, home: Path, fake_models: FakeChatModel
) -> None:
    assert run("config", "set", "serve_queue", "1").exit_code == 0
    gate = gate_the_model(fake_models)
    running = InProcessServer(home)
    server = running.server
    try:
        first = client_process(home, "ask", QUESTION)
        wait_for(lambda: server.status()["answering"] == "ask", "the first question is being answered")
        second = client_process(home, "ask", "--json", QUESTION)
        wait_for(lambda: server.status()["queued"] == 1, "the second question waits in the queue")
        third = client_process(home, "ask", QUESTION)
        _, refused = third.communicate(timeout=60)
        assert third.returncode == ExitCode.SERVER_BUSY == 11
        assert refused == (
            "Error: the pllm server is busy: its queue is full (1 waiting)\n"
            "Hint: try again in a moment, or run this one in its own process: pllm --no-server ...\n"
        )
        status = server.status()
        assert (status["answering"], status["queued"], status["requests_refused_busy"]) == ("ask", 1, 1)
        gate.set()
        out_first, err_first = first.communicate(timeout=60)
        out_second, err_second = second.communicate(timeout=60)
    finally:
        gate.set()
        running.stop()
    assert (first.returncode, second.returncode) == (0, 0), err_first + err_second
    assert out_first == LONG_ANSWER + " [1]\n", "the first answer streamed whole"
    assert "[1] work.md" in err_first
    assert json.loads(out_second)["answer"] == LONG_ANSWER + " [1]"
    assert served(server, at_least=2) == 2


def test_the_client_path_imports_no_heavy_module(ingested: Path, home: Path, serving: Server) -> None:
    code = (
        "import sys\n"
        "from pllm_cli.cli import main\n"
        "try:\n"
        "    main(['ask', '--json', sys.argv[1]])\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code in (0, None), exit_.code\n"
        "heavy = ['torch', 'chromadb', 'sentence_transformers', 'llama_cpp', 'numpy', 'pypdf', 'transformers']\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLLM_")}
    env.update(PLLM_HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, QUESTION], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert json.loads(first)["answer"].startswith("Your manager is Karin Ek.")
    assert last == "HEAVY="
    assert served(serving, at_least=1) == 1


# --- one server per home: status, stop, stale sockets ----------------------------------------------


def test_status_and_stop(run: Any, home: Path, serving: Server) -> None:
    socket_path = Paths(home).socket_file
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    status = run("serve", "--status", "--json")
    assert status.exit_code == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["running"] is True and data["pid"] == os.getpid() and data["socket"] == str(socket_path)
    assert data["requests_served"] == 0 and data["queue_size"] == 4 and data["uptime_s"] >= 0
    overall = json.loads(run("status", "--json").stdout)["server"]
    assert overall == {"running": True, "pid": os.getpid(), "socket": str(socket_path), "http": None}
    text = run("serve", "--status")
    assert text.stdout.splitlines()[0] == "running    yes"
    assert f"socket     {socket_path}" in text.stdout
    stopped = run("serve", "--stop")
    assert (stopped.exit_code, stopped.stderr) == (0, f"stopped the pllm server (pid {os.getpid()})\n")
    assert not socket_path.exists()
    gone = run("serve", "--status", "--json")
    assert gone.exit_code == ExitCode.NOT_FOUND and json.loads(gone.stdout)["running"] is False
    assert run("serve", "--stop").stderr == f"no pllm server is running for {home}\n"


def test_a_second_server_on_the_same_home_is_refused(run: Any, home: Path, serving: Server) -> None:
    with pytest.raises(BusyError, match=f"a pllm server \\(pid {os.getpid()}\\) is already running for "):
        Server(AppContext(paths=Paths.resolve(home))).start()
    result = run("serve")
    assert result.exit_code == ExitCode.BUSY
    assert result.stderr == (
        f"Error: a pllm server (pid {os.getpid()}) is already running for {home}\n"
        "Hint: see it with: pllm serve --status; stop it with: pllm serve --stop\n"
    )
    assert run("serve", "--status").exit_code == 0, "the first one still serves"


def leave_a_stale_socket(path: Path) -> None:
    """What a server killed with SIGKILL leaves: a socket file nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


def test_a_stale_socket_is_ignored_and_replaced(run: Any, ingested: Path, home: Path) -> None:
    socket_path = Paths(home).socket_file
    leave_a_stale_socket(socket_path)
    with pytest.raises(ServerUnavailable):
        ServerClient(socket_path).status()
    result = run("ask", "--json", QUESTION)
    assert result.exit_code == 0, "the command ran in this process"
    status = run("serve", "--status")
    assert status.exit_code == ExitCode.NOT_FOUND and status.stdout.startswith("not running")
    running = InProcessServer(home)
    server = running.server
    try:
        assert run("serve", "--status", "--json").exit_code == 0
        assert run("ask", QUESTION).exit_code == 0
        assert served(server, at_least=1) == 1
    finally:
        running.stop()


# --- profile refresh through the server ------------------------------------------------------------


@pytest.fixture
def diary(tmp_path: Path, run: Any, fake_models: FakeChatModel) -> Path:
    """Three notes of things Maya says about herself (each one chunk with statements to restate)."""
    folder = tmp_path / "diary"
    folder.mkdir()
    for name, text in {
        "work.md": "I work with Karin Ek at the parks office.",
        "running.md": "I run in Slottsskogen every Sunday morning.",
        "japanese.md": "I study Japanese on the train to work.",
    }.items():
        (folder / name).write_text(f"# {name[:-3].title()}\n\n{text}\n", encoding="utf-8")
    assert run("config", "set", "me", "Maya").exit_code == 0
    result = run("ingest", folder)
    assert result.exit_code == 0, result.stderr
    return folder


def without_seconds(result: Result) -> tuple[int, str, str]:
    """As `comparable`, and without the refresh's duration (the JSON's seconds, the summary's "in 0.1 s")."""
    code, stdout, stderr = comparable(result)
    data = json.loads(stdout) if stdout.startswith("{") else None
    if data is not None:
        data.pop("seconds")
        stdout = json.dumps(data, sort_keys=True)
    return code, stdout, stderr.rsplit(" in ", 1)[0]


@pytest.mark.parametrize("argv", [("profile", "refresh"), ("profile", "refresh", "--json")])
def test_a_refresh_gives_the_same_output_and_profile_with_and_without_the_server(
    run: Any, diary: Path, home: Path, tmp_path: Path, argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(home, twin)
    running = InProcessServer(home)
    server = running.server
    try:
        through = run(*argv)
        assert served(server, at_least=1) == 1, "the server refreshed"
    finally:
        running.stop()
    monkeypatch.setenv("PLLM_HOME", str(twin))
    alone = run("--no-server", *argv)
    assert through.exit_code == alone.exit_code == 0, through.stderr
    assert without_seconds(through) == without_seconds(alone)
    assert "read 3/3 chunks" in through.stderr or "--json" in argv
    shown = [json.loads(run("--home", where, "profile", "show", "--json").stdout) for where in (home, twin)]
    for profile in shown:
        profile.pop("updated_at")
    assert shown[0] == shown[1] and shown[0]["facts"], "the same profile, saved"


def test_a_refresh_in_the_server_waits_for_the_profile_lock_as_it_would_alone(
    run: Any, diary: Path, home: Path, serving: Server
) -> None:
    from pllm_cli.profile.manage import profile_lock
    from pllm_cli.profile.state import ProfileFiles

    with profile_lock(ProfileFiles(Paths(home))):
        alone = run("--no-server", "profile", "refresh")
        through = run("profile", "refresh")
        waited = run("profile", "refresh", "--wait", "0.3")
    assert through.exit_code == alone.exit_code == ExitCode.BUSY
    assert through.stderr == alone.stderr
    assert through.stderr.startswith(f"Error: another pllm (pid {os.getpid()}) is changing this profile\n")
    assert waited.stderr.startswith("Error: another pllm") and "after waiting 0.3 s" in waited.stderr
    assert run("profile", "refresh").exit_code == 0, "the server let go of the lock"


def test_questions_are_answered_between_the_steps_of_a_refresh(
    diary: Path, home: Path, serving: Server, fake_models: FakeChatModel
) -> None:
    gate, entered = threading.Event(), threading.Event()
    complete = fake_models.complete

    def gated(*args: Any, **kwargs: Any) -> str:
        entered.set()
        assert gate.wait(60), "the test never opened the gate"
        return complete(*args, **kwargs)

    fake_models.complete = gated  # type: ignore[method-assign]
    refresh = client_process(home, "profile", "refresh", "--json")
    assert entered.wait(60), "the refresh is restating its first statement"
    question = client_process(home, "ask", "--json", QUESTION)
    wait_for(lambda: serving.status()["queued"] == 1, "the question waits behind the refresh")
    assert serving.status()["doing"] == ["refresh"]
    gate.set()
    asked, _ = question.communicate(timeout=60)
    refreshed, errors = refresh.communicate(timeout=60)
    assert (question.returncode, refresh.returncode) == (0, 0), errors
    assert json.loads(asked)["answer"].startswith("Your manager is Karin Ek")
    assert json.loads(refreshed)["chunks_read"] == 3
    kinds = ["restate" if "grammar" in call else "answer" for call in fake_models.calls]
    assert kinds.index("answer") < len(kinds) - 1 - kinds[::-1].index("restate"), (
        "the question was answered before the refresh's last statement, not after the whole refresh"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("serve", "--status", "--stop"), "--status and --stop do not go together"),
        (("serve", "--json"), "--json goes with --status or --stop"),
    ],
)
def test_serve_options_that_do_not_go_together(run: Any, argv: tuple[str, ...], message: str) -> None:
    result = run(*argv)
    assert result.exit_code == ExitCode.INPUT
    assert result.stderr.startswith(f"Error: {message}\n")
