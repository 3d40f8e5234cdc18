"""What Chroma writes into the spare capacity of its HNSW index: an ingest's generation against a rebuilt one.

Chroma (1.5.9) saves a new HNSW index once at its whole first capacity (100 vectors) before any vector is in
it; the bytes past the last vector in data_level0.bin are then whatever that memory held. This runs, N times
in one process (so its heap has a history, as a long ingest's has): `pllm ingest` of 20 notes into a fresh
home (the fake embedder of tests/conftest.py: 64 dimensions), then `pllm memory forget` of one note, and
counts the non-zero bytes past the last vector in data_level0.bin of the generation the ingest wrote and of
the one the rebuild wrote (memory/rebuild.py: a new process that only ever held the remaining vectors).
The header layout read here (a 4-byte version, then size_t fields) is the one of chromadb 1.5.9's hnswlib.

    .venv/bin/python bench/spare_capacity.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from conftest import FakeEmbedder, invoke  # noqa: E402

import pllm_cli.context  # noqa: E402


def spare(generation: Path) -> tuple[int, int, int]:
    """(vectors in the index, bytes past them in data_level0.bin, how many of those are not zero)."""
    [header] = generation.glob("*/header.bin")
    fields = header.read_bytes()
    vectors, size = (struct.unpack_from("<Q", fields, 4 + 8 * i)[0] for i in (2, 3))
    tail = (header.parent / "data_level0.bin").read_bytes()[vectors * size :]
    return vectors, len(tail), len(tail) - tail.count(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    pllm_cli.context.SentenceTransformerEmbedder = FakeEmbedder  # type: ignore[misc,assignment]
    print("run  ingest's generation: vectors, spare bytes, non-zero   rebuilt one: vectors, spare bytes, non-zero")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pllm-spare-") as tmp:
            os.environ["PLLM_HOME"] = str(Path(tmp) / "home")
            notes = Path(tmp) / "notes"
            notes.mkdir()
            for number in range(20):
                text = f"words of note {number}, run {run}, said again and again " * 40
                (notes / f"n{number}.md").write_text(f"# Note {number}\n\n{text}\n", encoding="utf-8")
            assert invoke(["ingest", str(notes)]).exit_code == 0
            memory = Path(tmp) / "home" / "personas" / "default" / "memory"
            ingested = spare(memory / "chroma")
            assert invoke(["memory", "forget", str(notes / "n3.md")]).exit_code == 0
            rebuilt = spare(memory / "chroma-1")
            row = [
                f"{value:>{width}}" for value, width in zip((*ingested, *rebuilt), (8, 12, 9, 18, 12, 9), strict=True)
            ]
            print(f"{run:>3}  {' '.join(row[:3])}   {' '.join(row[3:])}")


if __name__ == "__main__":
    main()
