"""The memory store: the MemoryStore protocol and ChromaStore (Chroma vectors + the SQLite ChunkIndex)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from pllm_cli.errors import StoreError
from pllm_cli.memory.forgetting import ForgetRule
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.memory.records import Chunk, Hit, SourceRecord
from pllm_cli.memory.timeframes import Period
from pllm_cli.paths import ensure_private_dir, make_tree_private

SearchMode = Literal["dense", "lexical", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "lexical", "hybrid")
COLLECTION = "memory"
# Fusion measured on LoCoMo dev (`pllm eval retrieval`, evidence recall within 512 tokens, stopword-free
# lexical queries): the usual RRF_K 60 with equal weights 66.7; lexical weighted 1.5-2x and RRF_K 2-20 all
# gave 70.3-72.1, a plateau; its middle is taken rather than its best point. Lexical alone 67.5, dense 56.6.
RRF_K = 10
# A question that names a time (memory/timeframes.py) adds the same two rankings restricted to chunks of that
# period: in-period chunks gain without out-of-period ones being dropped (the date may be loose). Weight 1
# gave LoCoMo 75.9 -> 78.3 within 512 tokens; 0.5 78.3, 2 77.9; the restricted lists alone 72.1 (of 72.4).
FUSION_WEIGHTS = {"dense": 1.0, "lexical": 1.5, "dense_in_period": 1.0, "lexical_in_period": 1.5}
PERIOD_IDS = 2000  # a period with more chunks than this is searched by filtering a wider unrestricted pool
# ef_search measured on 100,000 chunks of real language (bench/search_scale.py): the share of the exact top 10
# found was 0.97 at 120, 0.99 at 200, 0.999 at 400 and 1.0 at 800, at 8-10 ms p95 for all. Chroma fixes
# ef_search when it creates a collection; an existing memory keeps the value it was made with.
HNSW = {"space": "cosine", "ef_search": 400, "ef_construction": 200, "max_neighbors": 32}


class MemoryStore(Protocol):
    def source(self, source: str) -> SourceRecord | None: ...
    def sources(self) -> list[SourceRecord]: ...
    def count(self) -> int: ...
    def replace_source(
        self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None: ...
    def remove_source(self, source: str) -> int: ...
    def rename_source(self, old: str, new: str) -> None: ...
    def sources_with_key(self, sha256: str) -> list[SourceRecord]: ...
    def record_failure(self, source: str, reason: str) -> None: ...
    def forget_rules(self) -> list[ForgetRule]: ...
    def search(
        self, vector: Sequence[float], text: str, k: int, mode: SearchMode = "hybrid", periods: Sequence[Period] = ()
    ) -> list[Hit]: ...
    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]: ...
    def latest_time(self) -> datetime | None: ...


class ChromaStore:
    """Chroma on disk for vectors; SQLite for texts, sources and BM25. Embedding model recorded in both."""

    def __init__(self, directory: Path, embedding_model: str) -> None:
        self.directory = directory
        self.embedding_model = embedding_model
        ensure_private_dir(directory)
        self.index = ChunkIndex(directory / "index.sqlite3")
        self._check_model()

    def _check_model(self) -> None:
        recorded = self.index.get_meta("embedding_model")
        if recorded is None:
            self.index.set_meta("embedding_model", self.embedding_model)
        elif recorded != self.embedding_model:
            raise StoreError(
                f"this memory was built with the embedding model {recorded!r}, not {self.embedding_model!r}",
                hint=f"set embedding_model back, or delete {self.directory} and ingest again",
            )

    @cached_property
    def collection(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        try:
            client = chromadb.PersistentClient(
                path=str(self.directory / "chroma"),
                settings=Settings(anonymized_telemetry=False, allow_reset=False),
            )
            collection = client.get_or_create_collection(
                COLLECTION,
                configuration=cast(Any, {"hnsw": HNSW}),  # chromadb types it as a TypedDict
                metadata={"embedding_model": self.embedding_model},
                embedding_function=None,
            )
        except Exception as exc:  # chromadb raises many unrelated types for a damaged store
            raise StoreError(
                f"cannot open the vector store in {self.directory}: {exc}",
                hint="if it is damaged, delete that folder and ingest again",
            ) from None
        make_tree_private(self.directory)
        return collection

    def close(self) -> None:
        self.index.close()
        if "collection" in self.__dict__:  # Chroma creates segment files after the collection opens
            make_tree_private(self.directory)

    # reading ------------------------------------------------------------------------------------
    def source(self, source: str) -> SourceRecord | None:
        return self.index.source(source)

    def sources(self) -> list[SourceRecord]:
        return self.index.sources()

    def count(self) -> int:
        return self.index.count()

    # writing ------------------------------------------------------------------------------------
    def replace_source(self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Swap a source's chunks for new ones. Vectors first, the SQLite record last (see index.py)."""
        import numpy

        self._check_dimension(vectors)
        self.collection.delete(where={"source": record.source})
        for start in range(0, len(chunks), 1000):
            batch = chunks[start : start + 1000]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=numpy.asarray(vectors[start : start + 1000], dtype=numpy.float32),
                metadatas=[{"source": c.source} for c in batch],
            )
        self.index.replace_source(record, chunks)

    def remove_source(self, source: str) -> int:
        self.collection.delete(where={"source": source})
        return self.index.remove_source(source)

    def update_chunks(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Rewrite chunks in place (same ids): their vectors, then their SQLite rows and BM25 text."""
        import numpy

        if chunks:
            self.collection.upsert(
                ids=[c.id for c in chunks],
                embeddings=numpy.asarray(vectors, dtype=numpy.float32),
                metadatas=[{"source": c.source} for c in chunks],
            )
            self.index.update_chunks(chunks)

    def remove_chunks(self, ids: Sequence[str]) -> None:
        if ids:
            self.collection.delete(ids=list(ids))
            self.index.remove_chunks(ids)

    def rename_source(self, old: str, new: str) -> None:
        """Point a source's chunks at a new path (a renamed or moved file): no embedding again."""
        ids = self.index.chunk_ids(old)
        for start in range(0, len(ids), 1000):
            batch = ids[start : start + 1000]
            self.collection.update(ids=batch, metadatas=[{"source": new}] * len(batch))
        self.index.rename_source(old, new)

    def sources_with_key(self, sha256: str) -> list[SourceRecord]:
        return self.index.sources_with_key(sha256)

    def forget_rules(self) -> list[ForgetRule]:
        return [ForgetRule(kind, value) for kind, value in self.index.forget_rules()]  # type: ignore[arg-type]

    def record_failure(self, source: str, reason: str) -> None:
        self.index.record_failure(source, reason, datetime.now(UTC).isoformat(timespec="seconds"))

    def _check_dimension(self, vectors: Sequence[Sequence[float]]) -> None:
        if not vectors:
            return
        recorded = self.index.get_meta("dimension")
        if recorded is None:
            self.index.set_meta("dimension", str(len(vectors[0])))
        elif int(recorded) != len(vectors[0]):
            raise StoreError(f"vectors of {len(vectors[0])} dimensions do not fit a memory of {recorded}")

    # searching ----------------------------------------------------------------------------------
    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]:
        return self.index.neighbours(chunk)

    def latest_time(self) -> datetime | None:
        return self.index.latest_time()

    def dense_search(
        self, vector: Sequence[float], limit: int, among: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first; only chunks `among` these ids if given."""
        total = self.collection.count() if among is None else len(among)
        if total == 0:
            return []
        import numpy

        result = self.collection.query(
            query_embeddings=numpy.asarray([vector], dtype=numpy.float32),
            n_results=min(limit, total),
            include=["distances"],
            **({} if among is None else {"ids": list(among)}),
        )
        return [(i, 1.0 - float(d)) for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def search(
        self, vector: Sequence[float], text: str, k: int, mode: SearchMode = "hybrid", periods: Sequence[Period] = ()
    ) -> list[Hit]:
        """The best `k` chunks for a query (its vector and its text); with `periods`, those of these periods
        rank higher."""
        pool = max(k * 4, 40)
        ranked: dict[str, list[tuple[str, float]]] = {}
        if mode in ("dense", "hybrid"):
            ranked["dense"] = self.dense_search(vector, pool)
            if periods:
                ranked["dense_in_period"] = self._dense_in_periods(vector, pool, periods)
        if mode in ("lexical", "hybrid"):
            ranked["lexical"] = self.index.lexical_search(text, pool)
            if periods:
                ranked["lexical_in_period"] = self.index.lexical_search(text, pool, periods)
        fused = fuse(ranked) if len(ranked) > 1 else dict(ranked[mode])
        best = sorted(fused, key=lambda i: fused[i], reverse=True)
        chunks = self.index.get(best[: k * 2])  # ids Chroma knows but SQLite lost are skipped
        per_mode = {name: dict(hits) for name, hits in ranked.items()}
        hits = [
            Hit(chunks[i], fused[i], {name: scores[i] for name, scores in per_mode.items() if i in scores})
            for i in best
            if i in chunks
        ]
        return hits[:k]

    def _dense_in_periods(
        self, vector: Sequence[float], pool: int, periods: Sequence[Period]
    ) -> list[tuple[str, float]]:
        ids = self.index.ids_in_periods(periods, PERIOD_IDS + 1)
        if len(ids) <= PERIOD_IDS:
            try:
                return self.dense_search(vector, pool, among=ids)
            except Exception:  # Chroma fails the query if SQLite holds an id it lacks (an interrupted ingest)
                pass
        wide = self.dense_search(vector, pool * 10)
        inside = set(self.index.in_periods([i for i, _ in wide], periods))
        return [(i, score) for i, score in wide if i in inside][:pool]


def fuse(ranked: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: each list contributes weight / (RRF_K + rank)."""
    scores: dict[str, float] = {}
    for mode, hits in ranked.items():
        weight = FUSION_WEIGHTS.get(mode, 1.0)
        for rank, (chunk_id, _) in enumerate(hits, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return scores
