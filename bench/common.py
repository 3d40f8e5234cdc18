"""What the benchmarks share: how to run the CLI in a clean, private home and how busy the machine was."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class OtherLoad:
    """How many cores other processes kept busy meanwhile: /proc/stat busy time less our own and our children's."""

    def __init__(self) -> None:
        self.start = (self._busy(), self._ours(), time.perf_counter())

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
        except OSError:
            return float("nan")
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def cores(self) -> float:
        busy, ours, started = self.start
        wall = time.perf_counter() - started
        return max(0.0, ((self._busy() - busy) - (self._ours() - ours)) / wall) if wall else 0.0


def pllm_command() -> list[str]:
    script = Path(sys.executable).parent / "pllm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pllm_cli"]


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without PLLM_* settings, with PLLM_HOME set to `home`, offline."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLLM_")}
    env.update(PLLM_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def measured(command: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run `command`; (stdout, wall seconds, peak RSS in MB of that process alone, from os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{err.read().decode().strip()}")
        return out.read().decode(), wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
