"""Ingest speed of examples/ through the real CLI, against the raw embedding throughput of the same chunks.

In one run: `pllm ingest examples --exclude README.md --json` into a fresh temporary PLLM_HOME (wall time of
the whole process, and the seconds and chunks/s the ingest JSON reports); then, in this process,
SentenceTransformerEmbedder on the very chunk texts the ingest stored (the baseline: embedding alone); then
a second, unchanged ingest of the same folder (every file skipped by its sha256) and its ratio to the first.

    .venv/bin/python bench/ingest_speed.py [FOLDER] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env, pllm_command  # noqa: E402  (bench/ is on sys.path when a script here runs)

from pllm_cli.paths import Paths  # noqa: E402


def timed_ingest(folder: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    command = [*pllm_command(), "ingest", str(folder), "--exclude", "README.md", "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pllm ingest exited {done.returncode}:\n{done.stderr.strip()}")
    return wall, json.loads(done.stdout)


def stored_texts(home: Path) -> list[str]:
    db = sqlite3.connect(f"file:{Paths(home).index_db}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT text FROM chunks ORDER BY source, position")]
    finally:
        db.close()


def embedding_baseline(texts: list[str], repeats: int = 3) -> dict[str, float]:
    """Import + load of the bundled embedder, then embed(texts): the first call and the median of `repeats`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    from pllm_cli.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    _ = embedder.model
    load = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed(texts)
    first = time.perf_counter() - started
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed(texts)
        warm.append(time.perf_counter() - started)
    median = statistics.median(warm)
    return {
        "import_and_load_s": round(load, 3),
        "first_embed_s": round(first, 3),
        "first_chunks_per_s": round(len(texts) / first, 1),
        "warm_embed_s": round(median, 3),
        "warm_chunks_per_s": round(len(texts) / median, 1),
        "cold_total_s": round(load + first, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "examples", help="what to ingest")
    parser.add_argument("--json", action="store_true", help="JSON object on stdout instead of the text report")
    args = parser.parse_args()

    load = OtherLoad()
    with tempfile.TemporaryDirectory(prefix="pllm-bench-ingest-") as tmp:
        home = Path(tmp) / "home"
        env = clean_env(home)
        first_wall, first = timed_ingest(args.folder, env)
        texts = stored_texts(home)
        words = [len(t.split()) for t in texts]
        baseline = embedding_baseline(texts)
        second_wall, second = timed_ingest(args.folder, env)

    chunks = first["chunks_written"]
    result = {
        "folder": str(args.folder),
        "files": first["summary"],
        "chunks": chunks,
        "words_per_chunk_mean": round(statistics.fmean(words), 1) if words else 0.0,
        "first_ingest": {
            "wall_s": round(first_wall, 3),
            "reported_s": first["seconds"],
            "reported_chunks_per_s": first["chunks_per_second"],
            "chunks_per_wall_s": round(chunks / first_wall, 1),
            "outside_ingest_s": round(first_wall - first["seconds"], 3),
        },
        "embedding_baseline_in_process": baseline,
        "second_unchanged_ingest": {
            "wall_s": round(second_wall, 3),
            "reported_s": second["seconds"],
            "files": second["summary"],
            "ratio_to_first_wall": round(second_wall / first_wall, 3),
        },
        "other_processes_cores": round(load.cores(), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    one, base, two = result["first_ingest"], baseline, result["second_unchanged_ingest"]
    print(f"ingest {args.folder} (README.md excluded): {chunks} chunks, {result['words_per_chunk_mean']} words each")
    print(f"  first ingest, CLI process   wall {one['wall_s']:.2f} s  = {one['chunks_per_wall_s']} chunks/s")
    print(
        f"    as reported by --json      {one['reported_s']:.2f} s  = {one['reported_chunks_per_s']} chunks/s"
        f"   (process start + imports outside: {one['outside_ingest_s']:.2f} s)"
    )
    print(
        f"  baseline, embedder in-process: import+load {base['import_and_load_s']:.2f} s; embed all chunks "
        f"{base['first_embed_s']:.2f} s first call ({base['first_chunks_per_s']} chunks/s), "
        f"{base['warm_embed_s']:.2f} s warm ({base['warm_chunks_per_s']} chunks/s)"
    )
    print(f"    cold embedder total (load + first embed): {base['cold_total_s']:.2f} s")
    print(
        f"  second, unchanged ingest      wall {two['wall_s']:.2f} s (reported {two['reported_s']:.2f} s), "
        f"{two['ratio_to_first_wall']:.2f} x the first; files {two['files']}"
    )
    print(
        f"  other processes kept {result['other_processes_cores']:.2f} of {os.cpu_count()} cores busy meanwhile"
        " (above ~0.2 the figures are disturbed)"
    )


if __name__ == "__main__":
    main()
