"""Keeping stray text out of Chroma's files.

Chroma writes its HNSW index (data_level0.bin) from memory it allocates without clearing: the index's unused
capacity goes to disk as whatever the process had freed there before, such as SQLite pages of chunk texts
(seen in tests/test_forget.py: a forgotten message inside data_level0.bin, about one run in 25). While Chroma
runs, glibc fills every block it carves for it, and every block freed, with a fill byte (mallopt M_PERTURB):
the forget tests then came out clean 140 runs in 140.

Not covered, so the leak is rarer but not impossible:
- a block of up to about 1 KB handed out again from glibc's per-thread cache (no fill);
- a block grown in place by realloc, over memory freed outside a Chroma call (hnswlib grows its index so).

Closing those needs the fill on for the whole process and that cache off (GLIBC_TUNABLES, before start), at
4-10% of the embedding model's speed, or Chroma clearing its index's spare capacity. Outside Chroma calls the
fill is off.
"""

from __future__ import annotations

import ctypes
import os
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


def _user_perturb() -> int:
    """The fill byte the user asked glibc for (MALLOC_PERTURB_), kept outside Chroma calls."""
    try:
        return int(os.environ.get("MALLOC_PERTURB_", "0")) & 0xFF
    except ValueError:
        return 0


@contextmanager
def cleared_allocations() -> Iterator[None]:
    """Memory carved or freed inside is filled (see above for what is not; glibc only, a no-op elsewhere).
    Chroma is called from the main thread only, so the nesting count needs no lock."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    try:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_PERTURB, FILL)
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            libc.mallopt(M_PERTURB, _user_perturb())
