"""An exclusive lock between pllm processes: an flock on a file, released by the kernel if the holder dies."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pllm_cli.errors import BusyError
from pllm_cli.paths import ensure_private_dir

POLL_SECONDS = 0.1


@contextmanager
def exclusive(path: Path, doing: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock at `path` for the block. Another holder makes this wait up to `wait` seconds, then
    raise BusyError (exit code 10); `doing` says what the lock guards, for the message."""
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    who = f" (pid {holder})" if holder.isdigit() else ""
                    waited = f" after waiting {wait:g} s" if wait > 0 else ""
                    raise BusyError(
                        f"another pllm{who} is {doing}{waited}",
                        hint="try again later, or wait for it: --wait SECONDS",
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
