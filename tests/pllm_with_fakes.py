"""`python tests/pllm_with_fakes.py ARGS...`: pllm as a real process, with the tests' fake embedder.

Tests that start several pllm processes (the write lock, ingests killed with SIGKILL) use this so a process
starts in about a second instead of loading torch and MiniLM each time; the same tests run once with the
real models too (test_write_lock.py). pllm itself has no switch for this: the fake is patched in here, as the
`fake_models` fixture does in-process.

PLLM_TEST_WRITE_PAUSE=SECONDS additionally pauses the first write of a source half-way, after its vectors are
in Chroma and before its SQLite rows are (the state a crash there leaves), and first creates the file named by
PLLM_TEST_PAUSED, so a test can look at memory from another process while the writer sits in that state.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]  # conftest, and this checkout's pllm_cli (installed or not)

from conftest import FakeEmbedder  # noqa: E402

import pllm_cli.context  # noqa: E402  (after the paths are set)

pllm_cli.context.SentenceTransformerEmbedder = FakeEmbedder  # type: ignore[misc, assignment]

PAUSE = float(os.environ.pop("PLLM_TEST_WRITE_PAUSE", "0") or 0)
PAUSED = os.environ.pop("PLLM_TEST_PAUSED", "")

if PAUSE:
    from pllm_cli.memory.index import ChunkIndex

    write_rows = ChunkIndex.replace_source

    def paused_write(self: ChunkIndex, *args: Any, **kwargs: Any) -> None:
        ChunkIndex.replace_source = write_rows  # type: ignore[method-assign]  # once
        if PAUSED:
            Path(PAUSED).write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(PAUSE)
        write_rows(self, *args, **kwargs)

    ChunkIndex.replace_source = paused_write  # type: ignore[method-assign]

if __name__ == "__main__":
    from pllm_cli.cli import main

    main(sys.argv[1:])
