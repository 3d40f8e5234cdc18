"""Chroma's files as generations: memory/chroma-<n>/ directories, the live one named by memory/chroma.current.

A forget copies the vectors that remain into a new generation (memory/rebuild.py) and switches to it:
1. the new generation is built beside the live one, under the build lock (`chroma.build.lock`);
2. every file and directory of it is fsync'd;
3. the pointer is replaced in one atomic rename (a temporary file, fsync'd, renamed over it, the folder fsync'd);
4. the old generation is deleted.
A crash before 3 leaves the old generation live and whole (the new one is a leftover); after 3, the new one
is live and whole (the old one is a leftover). Leftovers go the next time the collection is opened: older
generations by anyone (nothing writes to them once the pointer has moved on), newer ones only by whoever can
take the build lock (so never a generation that is still being built).

A memory written before generations has a plain chroma/ and no pointer: that is generation 0, used as it is.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pllm_cli.errors import StoreError
from pllm_cli.paths import ensure_private_dir, make_tree_private, write_private_text

POINTER = "chroma.current"
BUILD_LOCK = "chroma.build.lock"
LEGACY = "chroma"  # generation 0
_NAME = re.compile(r"chroma(?:-([1-9][0-9]{0,8}))?")


def generation_number(path: Path) -> int | None:
    """0 for chroma/, n for chroma-<n>/, None for anything else."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        return None
    return int(match.group(1) or 0)


class Generations:
    def __init__(self, memory_dir: Path) -> None:
        self.root = memory_dir
        self.pointer = memory_dir / POINTER

    def live(self) -> Path:
        """The directory of the live generation."""
        try:
            name = self.pointer.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return self.root / LEGACY
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read {self.pointer}: {exc}") from None
        if generation_number(Path(name)) is None:
            raise StoreError(
                f"{self.pointer} names {name!r}, not a generation of the vector store",
                hint="write the name of the newest chroma-<n> folder into it",
            )
        return self.root / name

    def existing(self) -> list[Path]:
        """Every generation directory on disk, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(generation_number(p), p) for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()]
        return [path for number, path in sorted((n, p) for n, p in found if n is not None)]

    @contextmanager
    def building(self) -> Iterator[Path]:
        """A new, empty generation directory to build in, while holding the build lock (waiting for another
        build to end). Leftovers newer than the live generation are removed first; if the block fails, the new
        directory goes too."""
        ensure_private_dir(self.root)
        with _locked(self.root / BUILD_LOCK, wait=True):
            live = generation_number(self.live()) or 0
            for path in self.existing():
                if (generation_number(path) or 0) > live:
                    _remove(path)
            target = self.root / f"chroma-{live + 1}"
            target.mkdir(mode=0o700)
            try:
                yield target
            except BaseException:
                _remove(target)
                raise

    def switch(self, new: Path) -> None:
        """Make `new` (whole, built by `building`) the live generation: its files on disk first, then the
        pointer, in one rename."""
        make_tree_private(new)
        fsync_tree(new)
        fsync_directory(self.root)  # the new directory's own entry
        write_private_text(self.pointer, new.name + "\n")  # temp file, fsync, rename, fsync of the folder

    def remove_leftovers(self) -> list[Path]:
        """Delete the generations that are not live: older ones always (nothing writes to them any more), newer
        ones and unrenamed pointer files only when no build holds the lock. Returns the generations deleted."""
        live = generation_number(self.live()) or 0
        older = [p for p in self.existing() if (generation_number(p) or 0) < live]
        newer = [p for p in self.existing() if (generation_number(p) or 0) > live]
        for path in older:
            _remove(path)
        strays = list(self.root.glob(f".{POINTER}.*.tmp"))  # written by a process that died before the rename
        if newer or strays:
            try:
                with _locked(self.root / BUILD_LOCK, wait=False):
                    for path in newer:
                        _remove(path)
                    for stray in strays:
                        stray.unlink(missing_ok=True)
            except BlockingIOError:  # a build (and its switch) is going on right now
                newer = []
        removed = older + newer
        if removed:
            fsync_directory(self.root)
        return removed


@contextmanager
def _locked(path: Path, *, wait: bool) -> Iterator[None]:
    """An flock on `path` for the block (released by the kernel if this process dies); BlockingIOError if
    another process holds it and `wait` is False."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a generation; what cannot be deleted now (a reader recreating files in it) goes next time."""
    shutil.rmtree(path, ignore_errors=True)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below `root`, deepest first, and `root` itself."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            fd = os.open(full, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_directory(Path(dirpath))


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
