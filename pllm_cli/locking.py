"""Locks between pllm processes: an flock on a file, released by the kernel if the holder dies.

Each persona has two, so that its memory and its profile each have one writer at a time:

- memory.lock (`memory_lock`): `ingest` (with `--prune` too), `memory forget` (every form), `profiles remove`.
- profile.lock (`profile.manage.profile_lock`): `profile refresh`, `pin` and `forget`; `memory forget` for the
  profile facts it drops; `profiles remove`.

Readers (`memory search`, `stats`, `sources`, `ask`, `chat`, `status`, `profile show`) take neither: SQLite in
WAL mode and Chroma let them read while a writer writes, and a source written half-way is skipped by search
(its vectors are in Chroma before its rows are in SQLite, and search keeps only the ids SQLite knows).
`profile refresh` reads memory as such a reader, so a refresh of several minutes does not keep an ingest out.

Order: a command that needs both takes memory.lock first, then profile.lock, and no command asks for
memory.lock while it holds profile.lock; `memory forget` moreover waits only a few seconds for profile.lock
and otherwise leaves the facts to the next refresh. No two pllm can each hold what the other waits for.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pllm_cli.errors import BusyError
from pllm_cli.paths import Paths, ensure_private_dir

POLL_SECONDS = 0.1
WAIT_HINT = "try again later, or wait for it: --wait SECONDS (or PLLM_LOCK_WAIT=SECONDS)"


Notice = Callable[[str], None]


@contextmanager
def memory_lock(paths: Paths, wait: float = 0.0, on_wait: Notice | None = None) -> Iterator[None]:
    """Hold the persona's memory write lock for the block (see the module's docstring for who takes it)."""
    with exclusive(paths.memory_lock_file, "changing this memory", wait=wait, on_wait=on_wait):
        yield


@contextmanager
def exclusive(path: Path, doing: str, *, wait: float = 0.0, on_wait: Notice | None = None) -> Iterator[None]:
    """Hold the lock at `path` for the block. Another holder makes this wait up to `wait` seconds, then
    raise BusyError (exit code 10); `doing` says what the lock guards, for the message. `on_wait` is told
    once, if it has to wait."""
    deadline = time.monotonic() + max(wait, 0.0)
    fd = _acquire(path, doing, wait, deadline, on_wait)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """Whether some process holds the lock at `path` now (it lets go when it exits, however it exits)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of a lock taken just now
    return False


def _acquire(path: Path, doing: str, wait: float, deadline: float, on_wait: Notice | None) -> int:
    """An open descriptor of `path`, locked. If the holder removed or replaced the file before letting go (as
    `profiles remove` deletes the persona's folder), the lock won is on a file nobody else will open: the
    file now at `path` is locked instead."""
    while True:
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd, doing, wait, deadline, on_wait)
            on_wait = None  # said once
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _flock(fd: int, doing: str, wait: float, deadline: float, on_wait: Notice | None) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g} s" if wait > 0 else ""
                raise BusyError(f"another pllm{who} is {doing}{waited}", hint=WAIT_HINT) from None
            if on_wait is not None:
                on_wait(f"another pllm{who} is {doing}: waiting up to {wait:g} s for it")
                on_wait = None
            time.sleep(POLL_SECONDS)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
