"""Choosing llama.cpp's threads by what other programs leave free."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pllm_cli.cpu_load as cpu_load
from pllm_cli.cpu_load import LoadWatch, threads_for


def test_one_thread_per_free_core() -> None:
    assert threads_for(2, 0.0) == 2 and threads_for(2, 0.4) == 2
    assert threads_for(2, 0.6) == 1 and threads_for(2, 1.0) == 1 and threads_for(2, 3.0) == 1
    assert threads_for(8, 2.2) == 6
    assert threads_for(4, None) == 4  # unknown: every core


def test_without_proc_stat_the_load_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_load, "_STAT", tmp_path / "missing")
    assert LoadWatch().other_cores() is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux only")
def test_a_busy_core_is_seen_and_our_own_work_is_not() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        watch = LoadWatch()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # this process keeps a core busy too: not counted
            pass
        seen = watch.other_cores()
    finally:
        spinner.kill()
        spinner.wait()
    assert seen is not None and 0.6 <= seen <= (os.cpu_count() or 2), seen  # the spinner's core, and others'


class Taken(LoadWatch):
    def __init__(self, cores: float | None) -> None:
        self.cores = cores

    def other_cores(self) -> float | None:
        return self.cores


@pytest.mark.e2e
def test_the_model_takes_the_free_cores_unless_threads_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from pllm_cli.runtime import LlamaCppModel

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    busy = LlamaCppModel(load=Taken(1.0))
    busy.llama  # noqa: B018 - loading the model chooses the threads
    assert busy.threads == 1
    assert LlamaCppModel(threads=2, load=Taken(1.0)).threads == 2  # the setting wins
    unknown = LlamaCppModel(load=Taken(None))
    unknown.llama  # noqa: B018
    assert unknown.threads == 2
