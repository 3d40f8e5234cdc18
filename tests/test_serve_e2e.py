"""`pllm serve` as a real process with the REAL bundled models, and real `pllm` client processes.

One server for the module: the same answer through it as without it (greedy decoding, seed 1), four clients at
once all answered in full, memory ingested by another process while it runs, a profile refresh, a second
server refused, --stop. Then a server killed with SIGKILL: its stale socket is ignored by clients and replaced
by the next one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES
from serve_support import QUESTION, environment, home_with_two_notes, pllm, start_server_process

from pllm_cli.errors import ExitCode
from pllm_cli.paths import Paths

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_with_two_notes(tmp_path_factory.mktemp("serve-e2e"))


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = home.parent / "serve.log"
    process = start_server_process(home, log)
    yield process, log
    if process.poll() is None:
        process.kill()
        process.wait(30)


def without_timings(stdout: str) -> dict[str, Any]:
    """A reply less what depends on what the process did before: its timings, and whether the prompt's stable
    beginning was still evaluated in memory, restored from disk or evaluated anew."""
    data: dict[str, Any] = json.loads(stdout)
    data.pop("timings")
    data["prompt"].pop("stable_prefix", None)
    return data


def served(home: Path) -> int:
    return int(json.loads(pllm(home, "serve", "--status", "--json").stdout)["requests_served"])


def test_an_answer_through_the_server_is_the_one_given_without_it(home: Path, server: Any) -> None:
    alone = pllm(home, "--no-server", "ask", "--json", "--seed", "1", QUESTION)
    assert alone.returncode == 0, alone.stderr
    before = served(home)
    through = pllm(home, "ask", "--json", "--seed", "1", QUESTION)
    assert through.returncode == 0, through.stderr
    assert served(home) == before + 1, "the server answered it"
    expected, got = without_timings(alone.stdout), without_timings(through.stdout)
    assert got["answer"] == expected["answer"] and got["answer"].strip()
    assert got["sources"] == expected["sources"] and got["sources"]
    assert got == expected, "the whole reply: prompt, tokens, grounding"
    assert through.stderr == alone.stderr == ""


def test_a_search_through_the_server_is_the_one_without_it(home: Path, server: Any) -> None:
    for argv in (("--json", "rain garden team"), ("--tokens", "120", "long run on Sunday")):
        alone = pllm(home, "--no-server", "memory", "search", *argv)
        through = pllm(home, "memory", "search", *argv)
        assert (through.returncode, through.stdout, through.stderr) == (alone.returncode, alone.stdout, alone.stderr)
        assert alone.returncode == 0 and alone.stdout


def test_four_clients_at_once_are_all_answered_in_full(home: Path, server: Any) -> None:
    reference = without_timings(pllm(home, "--no-server", "ask", "--json", "--seed", "1", QUESTION).stdout)
    before = served(home)
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "pllm_cli", "ask", *(["--json"] if n % 2 else []), "--seed", "1", QUESTION],
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [client.communicate(timeout=600) for client in clients]
    results = [(client.returncode, out, err) for client, (out, err) in zip(clients, outputs, strict=True)]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], [err for _, _, err in results]
    for number, (_, out, err) in enumerate(results):
        if number % 2:
            assert without_timings(out) == reference, "the same reply, whole"
        else:
            assert out == reference["answer"] + "\n", "streamed whole, not cut off by the others"
            assert err.startswith("Sources:") or not reference["cited"]
    assert served(home) == before + 4


def test_memory_ingested_by_another_process_is_found_through_the_server(home: Path, server: Any) -> None:
    note = EXAMPLES / "notes" / "elin-gift-ideas.md"
    assert pllm(home, "memory", "search", "--json", "Hagi tea bowls").returncode == 0
    done = pllm(home, "--no-server", "ingest", note)
    assert done.returncode == 0, done.stderr
    alone = pllm(home, "--no-server", "memory", "search", "--json", "--mode", "dense", "what does Elin collect")
    through = pllm(home, "memory", "search", "--json", "--mode", "dense", "what does Elin collect")
    assert through.stdout == alone.stdout
    assert json.loads(through.stdout)["hits"][0]["source"] == str(note)


def test_a_profile_refresh_through_the_server(home: Path, server: Any) -> None:
    assert pllm(home, "config", "set", "me", "Maya").returncode == 0
    before = served(home)
    done = pllm(home, "profile", "refresh", "--json", timeout=1200)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["saved"] is True and report["version"] == 1 and report["chunks_read"] > 0
    assert served(home) == before + 1, "the server refreshed"
    shown = json.loads(pllm(home, "profile", "show", "--json").stdout)
    assert shown["version"] == 1 and len(shown["facts"]) == report["facts"]
    asked = pllm(home, "ask", "--json", "--seed", "1", "--max-tokens", "16", "Where do I run?")
    assert asked.returncode == 0 and json.loads(asked.stdout)["prompt"]["tokens"]["profile"] > 0, "the new profile"


def test_a_second_server_is_refused(home: Path, server: Any) -> None:
    process, _ = server
    second = pllm(home, "serve", timeout=60)
    assert second.returncode == ExitCode.BUSY
    assert second.stderr.startswith(f"Error: a pllm server (pid {process.pid}) is already running for {home}\n")


def test_stop(home: Path, server: Any) -> None:
    process, log = server
    stopped = pllm(home, "serve", "--stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"stopped": True, "pid": process.pid}
    assert process.wait(30) == 0
    assert not Paths(home).socket_file.exists()
    text = log.read_text()
    assert "listening on" in text and "stopped after" in text and "Traceback" not in text
    assert QUESTION not in text, "the log does not keep what was asked"
    assert pllm(home, "serve", "--status").returncode == ExitCode.NOT_FOUND


def test_a_killed_server_leaves_a_socket_that_is_ignored_then_replaced(home: Path, server: Any) -> None:
    log = home.parent / "serve-killed.log"
    killed = start_server_process(home, log)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    socket_file = Paths(home).socket_file
    assert socket_file.exists(), "SIGKILL leaves the socket behind"
    assert pllm(home, "serve", "--status").returncode == ExitCode.NOT_FOUND
    alone = pllm(home, "ask", "--json", "--seed", "1", "--max-tokens", "16", QUESTION)
    assert alone.returncode == 0, "the command ran in its own process"
    replacing = start_server_process(home, log)
    try:
        assert "replacing the stale socket" in log.read_text()
        through = pllm(home, "ask", "--json", "--seed", "1", "--max-tokens", "16", QUESTION)
        assert without_timings(through.stdout) == without_timings(alone.stdout)
        assert served(home) == 1
    finally:
        assert pllm(home, "serve", "--stop").returncode == 0
        assert replacing.wait(60) == 0
