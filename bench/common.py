"""What the benchmarks share: how to run the CLI in a clean, private home and how busy the machine was."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pllm_cli.cpu_load import LoadWatch


class OtherLoad:
    """How many cores other processes kept busy meanwhile: /proc/stat busy time less our own and our children's
    (pllm's own measure, `pllm_cli.cpu_load.LoadWatch`, which chooses llama.cpp's threads); nan off Linux."""

    def __init__(self) -> None:
        self.watch = LoadWatch()

    def cores(self) -> float:
        other = self.watch.other_cores()
        return float("nan") if other is None else other


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


DEMO_PERSON = "Maya"  # the person of examples/, as `make demo` sets `me`


def set_up_demo_home(env: dict[str, str]) -> None:
    """What `make demo` does before its first question, in env's PLLM_HOME: `me` set to the person of
    examples/, and examples/ ingested (its README.md excluded)."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    subprocess.run([*pllm_command(), "config", "set", "me", DEMO_PERSON], env=env, capture_output=True, check=True)
    subprocess.run(
        [*pllm_command(), "ingest", str(examples), "--exclude", "README.md", "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
