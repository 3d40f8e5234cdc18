"""Opening the files to ingest: regular files only, never waiting on a FIFO or a device; a large text file
read a part at a time.

A folder may hold a named pipe, a socket or a device with a supported suffix: opening a FIFO for reading
blocks until a writer comes, and reading a device may never end. Such a path is looked at (stat) before it
is opened, opened without blocking, and looked at again through the open descriptor (the path may have been
replaced in between).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from pllm_cli.errors import InputError

# A text file larger than this is read, embedded and committed in parts of PART_BYTES (pipeline.py): memory
# stays bounded, progress is shown, and a kill keeps the parts done. Tests lower both.
LARGE_FILE_BYTES = 8 * 1024 * 1024
PART_BYTES = 256 * 1024
STREAMED_SUFFIXES = (".md", ".markdown", ".txt")  # prose: a part can be cut at any paragraph
READ_BLOCK = 1024 * 1024


class NotRegularFile(Exception):
    """The path is a FIFO, socket, device or folder: skipped, with what it is as the reason."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = [
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(path: os.PathLike[str] | str) -> BinaryIO:
    """`path` opened for reading in binary; NotRegularFile (never a wait) if it is not a regular file."""
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFile(file_kind(before.st_mode))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):  # replaced by a FIFO between stat and open
            raise NotRegularFile(file_kind(now.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def hash_file(handle: BinaryIO) -> tuple[str, int]:
    """sha256 hex digest and size of the file from its start, read a block at a time."""
    digest = hashlib.sha256()
    handle.seek(0)
    size = 0
    while block := handle.read(READ_BLOCK):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def text_parts(handle: BinaryIO, start: int, name: str, part_bytes: int | None = None) -> Iterator[tuple[int, str]]:
    """(offset after the part, its text) for the file from byte `start`, each part about `part_bytes` long and
    cut after a blank line (else a line end) so that no paragraph or UTF-8 character is split. The same file
    is always cut in the same places (each part depends only on where it starts): a part committed before a
    kill is the same part after it."""
    size = part_bytes or PART_BYTES
    offset = start
    while True:
        handle.seek(offset)
        data = handle.read(size)
        if not data:
            return
        cut = _cut(data) if len(data) == size else len(data)  # a short read is the end of the file
        yield offset + cut, decode_part(data[:cut], name, offset)
        offset += cut


def _cut(data: bytes) -> int:
    """Where to end a part of `data`: after its last blank line, else its last line end, else before a
    character that may be incomplete."""
    cut = data.rfind(b"\n\n")
    if cut > 0:
        return cut + 2
    cut = data.rfind(b"\n") + 1
    if cut > 0:
        return cut
    cut = len(data)
    while cut > max(0, len(data) - 4) and data[cut - 1] & 0xC0 == 0x80:  # continuation bytes
        cut -= 1
    if cut > 0 and data[cut - 1] >= 0xC0:  # the lead byte of a character that may go on in the next block
        cut -= 1
    return cut or len(data)


def decode_part(data: bytes, name: str, offset: int) -> str:
    """A part's text; binary (a NUL byte) or undecodable data is an InputError naming the file offset."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"{name}: looks like a binary file (NUL byte at {offset + nul})",
            hint="pllm reads text, markdown, HTML, PDF and mail",
        )
    try:
        return data.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid UTF-8 (byte {offset + exc.start})",
            hint=f"convert it first, e.g. iconv -f latin1 -t utf-8 {name!r}",
        ) from None
