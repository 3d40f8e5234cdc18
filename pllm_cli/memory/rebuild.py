"""Copying the vectors that remain into a fresh Chroma generation, in a process that never saw what was forgotten.

Why: Chroma's HNSW index only marks a deleted vector, which stays in data_level0.bin; its SQLite log
(embeddings_queue) keeps deleted vectors until the index is next saved, and its free pages keep them after;
and Chroma writes memory it never cleared into its index files (measured with chromadb 1.5.9: a new index is
saved once at its whole first capacity, 100 vectors, before any vector is in it), so text that the writing
process once held can land there. A rebuilt generation has none of these: it is written by a new Python
process (main() below) that reads nothing but the remaining vectors, their ids and sources, from a pipe, so
whatever stale memory Chroma writes into its files can only hold what remains.

The parent (rebuild_generation) reads the vectors of the chunks SQLite still holds from the live generation,
a batch at a time, and streams them to the child. The child has Chroma save the index with every vector in
(main() below), so a reader opening the new generation finds no log left to apply and writes nothing into
its index files. Then Generations.switch makes it live.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from pllm_cli.errors import StoreError
from pllm_cli.memory.generations import Generations

BATCH = 1000
DEFAULT_SYNC_THRESHOLD = 1000  # Chroma's own default: the writes after a rebuild save the index as usual
_KEPT_SETTINGS = ("space", "ef_construction", "ef_search", "max_neighbors", "resize_factor", "num_threads")


@dataclass(frozen=True)
class Rebuilt:
    generation: str  # the live generation's directory name afterwards
    chunks: int  # vectors copied
    missing: int  # chunks SQLite holds without a vector in the old generation (an ingest cut short): left out
    seconds: float  # the vector store's rebuild: reading, the child's build, fsync, switch (and old one deleted)
    builder_peak_rss_mb: float  # the child's peak resident memory
    compact_seconds: float = 0.0  # SQLite's compaction just before (ChromaStore.finish_forgetting)


def rebuild_generation(
    generations: Generations,
    old: Any,
    chunks: Sequence[tuple[str, str]],
    before_switch: Callable[[], None] | None = None,
) -> Rebuilt:
    """Copy the vectors of `chunks` ((id, source) pairs) from the collection `old` into a new generation and make
    it live. `before_switch()` runs once the child has built it (the caller closes its client of the old
    generation there: nothing of that one is written once the new one is live)."""
    started = time.perf_counter()
    present = collection_ids(old)
    kept = [(chunk_id, source) for chunk_id, source in chunks if chunk_id in present]
    hnsw = old.configuration_json.get("hnsw") or {}  # the collection's own settings, kept as they were
    header = {
        "collection": old.name,
        "metadata": dict(old.metadata or {}),
        "configuration": {key: value for key, value in hnsw.items() if key in _KEPT_SETTINGS},
        "sync_threshold": hnsw.get("sync_threshold") or DEFAULT_SYNC_THRESHOLD,
        "count": len(kept),
    }
    with generations.building() as target:
        count, peak_mb = _build(target, header, _batches(old, kept))
        if count != len(kept):
            raise StoreError(f"the rebuilt vector store holds {count} vectors, not {len(kept)}")
        if before_switch is not None:
            before_switch()
        generations.switch(target)
    return Rebuilt(target.name, count, len(chunks) - len(kept), time.perf_counter() - started, peak_mb)


def collection_ids(collection: Any) -> set[str]:
    """Every id in a Chroma collection, read a page at a time."""
    found: set[str] = set()
    while True:
        page = collection.get(include=[], limit=10_000, offset=len(found))["ids"]
        found.update(page)
        if len(page) < 10_000:
            return found


def _batches(old: Any, chunks: Sequence[tuple[str, str]]) -> Iterator[tuple[list[str], list[str], Any]]:
    """(ids, sources, float32 matrix) of `chunks`, BATCH at a time, read from the old collection."""
    import numpy

    for start in range(0, len(chunks), BATCH):
        batch = chunks[start : start + BATCH]
        ids = [chunk_id for chunk_id, _ in batch]
        got = old.get(ids=ids, include=["embeddings"])
        row = {chunk_id: number for number, chunk_id in enumerate(got["ids"])}
        if len(row) != len(ids):
            raise StoreError("vectors went missing from the vector store during a rebuild (is another pllm writing?)")
        embeddings = got["embeddings"]
        matrix = numpy.ascontiguousarray([embeddings[row[chunk_id]] for chunk_id in ids], dtype=numpy.float32)
        yield ids, [source for _, source in batch], matrix


def _build(
    target: Path, header: dict[str, Any], batches: Iterator[tuple[list[str], list[str], Any]]
) -> tuple[int, float]:
    """Run the child on `target`, feed it; (how many vectors it holds, its peak RSS in MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:  # not pipes: no deadlock on a chatty child
        child = subprocess.Popen(
            [sys.executable, "-m", "pllm_cli.memory.rebuild", str(target)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            env=_child_environment(),
        )
        assert child.stdin is not None
        try:
            _send(child.stdin, header)
            for ids, sources, matrix in batches:
                _send(child.stdin, {"ids": ids, "sources": sources, "bytes": matrix.nbytes}, matrix.tobytes())
            _send(child.stdin, {"end": True})
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died: its own error is read below
        except BaseException:
            child.kill()
            child.wait()
            raise
        _, status, usage = os.wait4(child.pid, 0)
        code = child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise StoreError(
                f"rebuilding the vector store failed: {lines[-1] if lines else f'exit code {code}'}",
                hint="the previous vectors are still in use; the next `pllm ingest` or `pllm memory forget` "
                "tries the rebuild again",
            )
        count = int(json.loads(out.read().decode("utf-8"))["count"])
        return count, round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


def _send(stream: IO[bytes], message: dict[str, Any], payload: bytes = b"") -> None:
    stream.write(json.dumps(message).encode("utf-8") + b"\n")
    if payload:
        stream.write(payload)


def _child_environment() -> dict[str, str]:
    """The child imports this very pllm_cli, wherever it was imported from."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


# --- the child -------------------------------------------------------------------------------------------


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = stream.read(size - len(data))
        if not piece:
            raise SystemExit("the input ended in the middle of a batch")
        data += piece
    return bytes(data)


def _receive(stream: IO[bytes]) -> dict[str, Any]:
    line = stream.readline()
    if not line:
        raise SystemExit("the input ended before its end mark")
    message: dict[str, Any] = json.loads(line)
    return message


def main(argv: Sequence[str] | None = None) -> None:
    """Build a collection in the empty directory argv[0] from the header and batches on stdin; print its count.

    Chroma saves its index each time `sync_threshold` vectors (1,000) have come in, so the vectors up to the
    last multiple of it are added with that threshold; the threshold is then set to the rest and the
    collection opened again (a changed threshold applies to a new client), so the last vectors are saved too."""
    import chromadb
    import numpy
    from chromadb.config import Settings

    (target,) = argv if argv is not None else sys.argv[1:]
    stream = sys.stdin.buffer
    header = _receive(stream)
    count, threshold = int(header["count"]), int(header["sync_threshold"])
    bulk = count - count % threshold  # saved by Chroma as they come in
    rest = count - bulk
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    client: Any = chromadb.PersistentClient(path=target, settings=settings)  # typed without close()
    collection = client.create_collection(
        header["collection"],
        configuration=cast(
            Any, {"hnsw": {**header["configuration"], "sync_threshold": threshold if bulk else rest or threshold}}
        ),
        metadata=header["metadata"] or None,
        embedding_function=None,
    )
    added = 0
    while "end" not in (message := _receive(stream)):
        data = _read_exactly(stream, int(message["bytes"]))
        ids: list[str] = message["ids"]
        matrix = numpy.frombuffer(data, dtype=numpy.float32).reshape(len(ids), -1)
        sources: list[str] = message["sources"]
        while ids:
            if added == bulk and bulk and rest:  # the rest: saved once, when it is all in
                collection.modify(configuration={"hnsw": {"sync_threshold": rest}})
                client.close()
                client = chromadb.PersistentClient(path=target, settings=settings)
                collection = client.get_collection(header["collection"])
            take = len(ids) if added >= bulk else min(len(ids), bulk - added)
            collection.add(ids=ids[:take], embeddings=matrix[:take], metadatas=[{"source": s} for s in sources[:take]])
            ids, matrix, sources, added = ids[take:], matrix[take:], sources[take:], added + take
    if rest:
        collection.modify(configuration={"hnsw": {"sync_threshold": threshold}})  # as usual for later writes
    held = collection.count()
    client.close()
    print(json.dumps({"count": held}))


if __name__ == "__main__":
    main()
