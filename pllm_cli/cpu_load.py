"""How many cores other programs keep busy, to choose llama.cpp's threads.

llama.cpp's threads wait for each other at every step, so one thread that shares its core with another busy
program holds all of them back: on 2 cores with one taken, 2 threads processed a prompt 7x slower than when
idle, 1 thread 1.3x (bench/threads_under_load.py). So the model gets one thread per core that others leave
free, measured from /proc/stat (all busy time, less this process's own) between the start of the command and
the model's loading. Linux only; elsewhere, and when `threads` is set, every core or that number is used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MIN_WINDOW_S = 0.25  # a shorter window is extended to this before it is read
_STAT = Path("/proc/stat")


def _busy_seconds() -> float | None:
    try:
        fields = [int(value) for value in _STAT.read_text(encoding="ascii").splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class LoadWatch:
    """Other programs' CPU use from now on."""

    def __init__(self) -> None:
        self._start = (_busy_seconds(), _own_seconds(), time.monotonic())

    def other_cores(self) -> float | None:
        """Cores kept busy by other processes since this watch was made (None where /proc/stat is missing)."""
        busy, own, started = self._start
        if busy is None:
            return None
        wait = MIN_WINDOW_S - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        now = _busy_seconds()
        if now is None:
            return None
        elapsed = time.monotonic() - started
        return max(0.0, ((now - busy) - (_own_seconds() - own)) / elapsed)


def threads_for(cores: int, other: float | None) -> int:
    """One thread per core that other programs leave free (at least one; every core if unknown)."""
    if other is None:
        return cores
    return max(1, min(cores, cores - round(other)))
