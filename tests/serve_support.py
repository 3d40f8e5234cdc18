"""What the `pllm serve` tests share: a Server in this process (with the fake models), and a real `pllm serve`
process with real `pllm` clients (the e2e tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conftest import EXAMPLES

from pllm_cli.context import AppContext
from pllm_cli.paths import Paths
from pllm_cli.server.server import Server

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who is my manager, and when is my project deadline?"
START_SECONDS = 180.0  # a real server: loading MiniLM and the GGUF on a busy 2-core machine


# --- a server in this process ------------------------------------------------------------------------


class InProcessServer:
    """A Server for a home, stopped as `pllm serve` stops it: by request_stop (--stop, a signal)."""

    def __init__(self, home: Path, http: tuple[str, int] | None = None) -> None:
        self.server = Server(AppContext(paths=Paths.resolve(home)), http=http)
        self.server.start()
        self.stopper = threading.Thread(target=self._stop_when_asked, daemon=True)
        self.stopper.start()

    def _stop_when_asked(self) -> None:
        self.server.wait()
        self.server.stop()

    def stop(self) -> None:
        self.server.request_stop()
        self.stopper.join(30)
        assert not self.stopper.is_alive(), "the server did not stop"


def served(server: Server, at_least: int = 0) -> int:
    """Requests the server has finished: it counts one just after sending its last message, so a client can be
    done before the count moves (wait up to 10 s for `at_least`)."""
    deadline = time.monotonic() + 10
    while (count := int(server.status()["requests_served"])) < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


# --- a real `pllm serve` process ----------------------------------------------------------------------


def environment(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLLM_")}
    env.update(PLLM_HOME=str(home), PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="100")
    return env


def pllm(home: Path, *argv: Any, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`pllm ARGV` in a process of its own on `home`."""
    return subprocess.run(
        [sys.executable, "-m", "pllm_cli", *map(str, argv)],
        env=environment(home),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server_process(home: Path, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """`pllm serve OPTIONS` started on `home` (its stderr appended to `log`), once it answers --status."""
    with log.open("ab") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "pllm_cli", "serve", *options],
            env=environment(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + START_SECONDS
    while pllm(home, "serve", "--status").returncode != 0:
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server did not start:\n" + log.read_text()
        time.sleep(0.5)
    return server


def home_with_two_notes(folder: Path) -> Path:
    """A home with two of the example notes, ingested before any server runs."""
    home = folder / "home"
    for name in ("slottsskogen-project.md", "running-plan.md"):
        done = pllm(home, "--no-server", "ingest", EXAMPLES / "notes" / name)
        assert done.returncode == 0, done.stderr
    return home
