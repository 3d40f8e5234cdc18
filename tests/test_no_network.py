"""pllm needs no network: ingest, memory search, status and ask run with the REAL models in a process that
cannot make an IP socket (tests/no_network.py), in a network namespace too where `unshare -n` works, and
succeed without trying to make one. What the probe of issue 16 did by hand, kept true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TESTS_DIR

pytestmark = pytest.mark.e2e

WRAPPER = [sys.executable, str(TESTS_DIR / "no_network.py")]


def namespace() -> list[str]:
    """`unshare -n` (no network interface but loopback, and that one down) if this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_the_wrapper_refuses_ip_sockets_and_keeps_unix_sockets(tmp_path: Path) -> None:
    code = (
        "import socket, sys; sys.path.insert(0, sys.argv[1]); import no_network; no_network.block_ip_sockets()\n"
        "socket.socket(socket.AF_UNIX).close(); socket.socketpair()[0].close()\n"
        "for family in (socket.AF_INET, socket.AF_INET6):\n"
        "    try:\n"
        "        socket.socket(family)\n"
        "    except OSError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('an IP socket was made')\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError:\n"
        "    print('refused')\n"
    )
    log = tmp_path / "network.log"
    env = {**os.environ, "PLLM_TEST_NETWORK_LOG": str(log)}
    done = subprocess.run([sys.executable, "-c", code, str(TESTS_DIR)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "refused\n", done.stderr
    attempts = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("IP socket (")]
    assert len(attempts) == 3


def test_ingest_search_status_and_ask_without_network(tmp_path: Path, home: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "work.md").write_text("# Work\n\nMy manager is Karin Ek. The deadline is 30 June.\n", encoding="utf-8")
    (notes / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    log = tmp_path / "network.log"
    env = {**os.environ, "PLLM_HOME": str(home), "PLLM_TEST_NETWORK_LOG": str(log)}  # serve looked for: Unix
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # pllm must not rely on the caller for these
        env.pop(name, None)
    prefix = namespace() + WRAPPER

    def pllm(*args: str) -> str:
        done = subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    assert json.loads(pllm("ingest", str(notes), "--json"))["summary"]["added"] == 2
    hits = json.loads(pllm("memory", "search", "Hagi tea bowls", "--json"))["hits"]
    assert hits and hits[0]["source"].endswith("elin.md")
    assert json.loads(pllm("status", "--json"))
    answer = json.loads(pllm("ask", "--seed", "1", "--max-tokens", "16", "--json", "Who is my manager?"))
    assert answer["answer"].strip()
    assert not log.exists(), log.read_text(encoding="utf-8")
