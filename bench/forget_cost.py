"""The cost of one `pllm memory forget` on a memory of 100,000 chunks: the vector store's rebuild against the rest.

In one run:
1. the corpus of bench/search_scale.py: N chat chunks of LoCoMo turns (default 100,000) in sources of ~250,
   embedded with the bundled model, the matrix cached in ~/.cache/pllm/bench/ (shared with search_scale.py);
2. written into a fresh PLLM_HOME through ChromaStore.replace_source, one source at a time, as an ingest writes
   them (timed: baseline 1, writing the same vectors with their texts);
3. the same vectors added to a bare Chroma collection with pllm's HNSW settings, in this process, 1,000 at a
   time (timed: baseline 2, writing the vectors alone: the work the rebuild repeats);
4. `pllm memory forget <one source> --json` in a subprocess (the CLI of this checkout, a new process as a user
   runs it): its wall time and peak RSS; from its JSON the rebuild's seconds (reading the vectors, the
   builder process, fsync, switch, deleting the old generation), the SQLite compaction's, and the builder
   process's peak RSS. The rest of the wall time is process start, imports and the deletes themselves;
5. a check: Chroma and SQLite hold the same N - 250 chunks afterwards, in one generation.

    .venv/bin/python bench/forget_cost.py [--chunks 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env  # noqa: E402  (bench/ is on sys.path when a script here runs)
from search_scale import DEFAULT_DATA, corpus, embed_cached, log, write  # noqa: E402

from pllm_cli.embedding import SentenceTransformerEmbedder  # noqa: E402
from pllm_cli.evaluation.locomo import load_locomo  # noqa: E402
from pllm_cli.memory.store import COLLECTION, HNSW, ChromaStore  # noqa: E402
from pllm_cli.paths import Paths  # noqa: E402


def bare_chroma_add(directory: Path, matrix: Any, ids: list[str], sources: list[str]) -> float:
    """Seconds to add every vector to a new Chroma collection with pllm's HNSW settings, 1,000 at a time."""
    import chromadb
    from chromadb.config import Settings

    client: Any = chromadb.PersistentClient(path=str(directory), settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(COLLECTION, configuration={"hnsw": HNSW}, embedding_function=None)
    started = time.perf_counter()
    for start in range(0, len(ids), 1000):
        collection.add(
            ids=ids[start : start + 1000],
            embeddings=matrix[start : start + 1000],
            metadatas=[{"source": s} for s in sources[start : start + 1000]],
        )
    seconds = time.perf_counter() - started
    client.close()
    return seconds


# Runs a command and reports its wall time and peak RSS (os.wait4) from a small process: a process forked from
# this one (which holds the embedding model and the matrix) would count this one's memory in its peak RSS.
LEAN_RUNNER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
figures = {"code": os.waitstatus_to_exitcode(status), "wall": time.perf_counter() - started}
figures["peak_mb"] = usage.ru_maxrss / 1024  # KiB on Linux; the largest of the command and its own children
with open(sys.argv[1], "w") as handle:
    json.dump(figures, handle)
"""


def measured_lean(command: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS in MB of the largest process of the command's tree)."""
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".json") as figures:
        done = subprocess.run(
            [sys.executable, "-c", LEAN_RUNNER, figures.name, *command], env=env, capture_output=True, text=True
        )
        result = json.loads(Path(figures.name).read_text() or "{}")
    if done.returncode != 0 or result.get("code") != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    return done.stdout, float(result["wall"]), float(result["peak_mb"])


def size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the memory (default 100,000)")
    parser.add_argument("--locomo", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON file")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    import numpy

    load = OtherLoad()
    chunks = corpus(load_locomo(args.locomo), args.chunks)
    embedder = SentenceTransformerEmbedder()
    matrix, _ = embed_cached(embedder, [c.embedding_text for c in chunks])
    matrix /= numpy.linalg.norm(matrix, axis=1, keepdims=True)
    forgotten = chunks[len(chunks) // 2].source  # one source of ~250 chunks, from the middle
    result: dict[str, Any] = {"chunks": len(chunks), "sources": len({c.source for c in chunks}), "forgotten": forgotten}
    with tempfile.TemporaryDirectory(prefix="pllm-forget-cost-") as tmp:
        home = Path(tmp) / "home"
        memory_dir = Paths(home).memory_dir
        store = ChromaStore(memory_dir, embedding_model=embedder.name)
        log(f"writing {len(chunks):,} chunks through ChromaStore.replace_source ...")
        result["write_s"] = round(write(store, chunks, matrix), 1)
        store.close()
        log("the same vectors into a bare Chroma collection ...")
        result["bare_chroma_add_s"] = round(
            bare_chroma_add(Path(tmp) / "bare", matrix, [c.id for c in chunks], [c.source for c in chunks]), 1
        )
        result["memory_mb_before"] = size_mb(memory_dir)
        log(f"pllm memory forget {forgotten} ...")
        env = {**clean_env(home), "PYTHONPATH": str(ROOT)}  # this checkout's pllm_cli, whatever is installed
        out, wall, peak = measured_lean(
            [sys.executable, "-m", "pllm_cli", "memory", "forget", forgotten, "--json"], env
        )
        report = json.loads(out)
        rebuilt = report["vector_store_rebuilt"]
        result.update(
            forget_wall_s=round(wall, 1),
            rebuild_s=round(rebuilt["seconds"], 1),
            compact_s=round(rebuilt["compact_seconds"], 1),
            rest_s=round(wall - rebuilt["seconds"] - rebuilt["compact_seconds"], 1),
            forgotten_chunks=report["forgotten"][0]["chunks"],
            peak_rss_mb=round(peak, 1),
            builder_peak_rss_mb=rebuilt["builder_peak_rss_mb"],
            memory_mb_after=size_mb(memory_dir),
        )
        store = ChromaStore(memory_dir, embedding_model=embedder.name)
        in_chroma, in_sqlite = store.collection.count(), store.count()
        store.close()
        generations = sorted(p.name for p in memory_dir.iterdir() if p.is_dir() and p.name.startswith("chroma"))
        assert in_chroma == in_sqlite == len(chunks) - result["forgotten_chunks"], (in_chroma, in_sqlite)
        assert generations == [rebuilt["generation"]], generations
    result["rebuild_x_write"] = round(result["rebuild_s"] / result["write_s"], 2)
    result["rebuild_x_bare_add"] = round(result["rebuild_s"] / result["bare_chroma_add_s"], 2)
    result["other_load_cores"] = round(load.cores(), 2)
    if args.json:
        print(json.dumps(result))
        return
    r = result
    print(f"pllm memory forget of one source ({r['forgotten_chunks']} chunks) in a memory of {r['chunks']:,} chunks:")
    print(
        f"  whole command (a new process)        {r['forget_wall_s']:7.1f} s   peak RSS {r['peak_rss_mb']:.0f} MB",
        end="",
    )
    print(" (the largest process: the command or its builder)")
    print(f"    rebuild of the vector store        {r['rebuild_s']:7.1f} s", end="")
    print(f"   builder process peak RSS {r['builder_peak_rss_mb']:.0f} MB")
    print(f"    compaction of SQLite               {r['compact_s']:7.1f} s")
    print(f"    the rest (start, imports, deletes) {r['rest_s']:7.1f} s")
    print("Baselines, the same vectors in this run:")
    print(f"  written through ChromaStore.replace_source {r['write_s']:7.1f} s   rebuild = x{r['rebuild_x_write']}")
    print(f"  added to a bare Chroma collection          {r['bare_chroma_add_s']:7.1f} s", end="")
    print(f"   rebuild = x{r['rebuild_x_bare_add']}")
    print(f"memory on disk: {r['memory_mb_before']:.0f} MB before, {r['memory_mb_after']:.0f} MB after")
    print(f"other processes kept {r['other_load_cores']} of {os.cpu_count()} cores busy meanwhile")


if __name__ == "__main__":
    main()
