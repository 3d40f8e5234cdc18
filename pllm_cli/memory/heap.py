"""Keeping stray text out of Chroma's files.

Chroma writes its HNSW index (data_level0.bin) from memory it allocates without clearing: the index's unused
capacity goes to disk as whatever the process had freed there before, such as SQLite pages of chunk texts
(seen in tests/test_forget.py: a forgotten message inside data_level0.bin). While Chroma runs, glibc is asked
to fill every allocation it hands out and every one freed (mallopt M_PERTURB), so that capacity holds a fill
byte instead of text. Outside Chroma calls nothing changes: the embedding model is 4-10% slower with it on.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

M_PERTURB = -6  # glibc malloc.h
FILL = 0x5A
_depth = 0  # nested Chroma calls (the collection opening inside a search): only the outermost one switches


@cache
def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (musl has mallopt but no M_PERTURB)
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


@contextmanager
def cleared_allocations() -> Iterator[None]:
    """Memory allocated or freed inside is filled, not left holding old contents (glibc only; a no-op elsewhere)."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    _depth += 1
    if _depth == 1:
        libc.mallopt(M_PERTURB, FILL)
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            libc.mallopt(M_PERTURB, 0)
