"""The memory store: the MemoryStore protocol and ChromaStore (Chroma vectors + the SQLite ChunkIndex)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from pllm_cli.errors import StoreError
from pllm_cli.memory.forgetting import ForgetRule
from pllm_cli.memory.generations import Generations, generation_number
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.memory.mirror import Synced, payload, sync
from pllm_cli.memory.rebuild import Rebuilt, rebuild_generation
from pllm_cli.memory.records import PARTIAL, Chunk, Hit, SourceRecord
from pllm_cli.memory.remote import MemoryServer, RemoteVectors
from pllm_cli.memory.timeframes import Period
from pllm_cli.paths import ensure_private_dir, make_tree_private

SearchMode = Literal["dense", "lexical", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("dense", "lexical", "hybrid")
COLLECTION = "memory"
# A question's vector, or a function that makes it: search then ranks by BM25 meanwhile
# (ChunkIndex.lexical_search_later).
QueryVector = Sequence[float] | Callable[[], Sequence[float]]
# Fusion measured on LoCoMo dev (`pllm eval retrieval`, evidence recall within 512 tokens, stopword-free
# lexical queries): the usual RRF_K 60 with equal weights 66.7; lexical weighted 1.5-2x and RRF_K 2-20 all
# gave 70.3-72.1, a plateau; its middle is taken rather than its best point. Lexical alone 67.5, dense 56.6.
RRF_K = 10
# A question that names a time (memory/timeframes.py) adds the same two rankings restricted to chunks of that
# period: in-period chunks gain without out-of-period ones being dropped (the date may be loose). Weight 1
# gave LoCoMo 75.9 -> 78.3 within 512 tokens; 0.5 78.3, 2 77.9; the restricted lists alone 72.1 (of 72.4).
FUSION_WEIGHTS = {"dense": 1.0, "lexical": 1.5, "dense_in_period": 1.0, "lexical_in_period": 1.5}
# Dense search within a period (bench/search_scale.py, 100,000 chunks): up to EXACT_PERIOD chunks, their
# vectors are read from Chroma and compared exactly (2 ms for 20, 6 ms for 200, 22 ms for 1,000); a larger
# period takes its chunks from the nearest PERIOD_POOL of the whole memory (one HNSW query, as fast as 48 at
# ef_search 400). Chroma's own filtered query (`ids=`) took 20-57 ms at any size.
EXACT_PERIOD = 300
PERIOD_POOL = 1000
# ef_search measured on 100,000 chunks of real language (bench/search_scale.py): the share of the exact top 10
# found was 0.97 at 120, 0.99 at 200, 0.999 at 400 and 1.0 at 800, at 8-10 ms p95 for all. Chroma fixes
# ef_search when it creates a collection; an existing memory keeps the value it was made with.
HNSW = {"space": "cosine", "ef_search": 400, "ef_construction": 200, "max_neighbors": 32}
# In SQLite's meta table: "1" from before the first deletion of a forget until its rebuild is done.
FORGET_MARK = "forget_pending"
# In SQLite's meta table, with a memory server: which memory this index mirrors ("<database>/<persona>"), and the
# server's revision it was last synced at (memory/remote.py).
MIRRORS = "mirrors"
SYNCED_AT = "server_revision"
HOME_ID = "home_id"
T = TypeVar("T")


class MemoryStore(Protocol):
    def source(self, source: str) -> SourceRecord | None: ...
    def sources(self) -> list[SourceRecord]: ...
    def count(self) -> int: ...
    def replace_source(
        self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None: ...
    def append_to_source(
        self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *, first: bool
    ) -> None: ...
    def remove_source(self, source: str) -> int: ...
    def ingested_here(self, source: str) -> bool: ...
    def rename_source(self, old: str, new: str) -> None: ...
    def sources_with_key(self, sha256: str) -> list[SourceRecord]: ...
    def record_failure(self, source: str, reason: str) -> None: ...
    def forget_rules(self) -> list[ForgetRule]: ...
    def search(
        self, vector: QueryVector, text: str, k: int, mode: SearchMode = "hybrid", periods: Sequence[Period] = ()
    ) -> list[Hit]: ...
    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]: ...
    def latest_time(self) -> datetime | None: ...
    def mark_forgetting(self, rules: Sequence[ForgetRule] = ()) -> None: ...
    def finish_forgetting(self) -> Rebuilt | None: ...


class ChromaStore:
    """Chroma on disk for vectors; SQLite for texts, sources and BM25. Embedding model recorded in both.

    With `server`, the vectors and every chunk's record are in a Chroma server instead (memory/remote.py) and
    SQLite mirrors the server's records (memory/mirror.py): synced on opening when another client has written
    since. Writes keep the embedded order: the server first, SQLite (the sha256 that says a file is done) last."""

    def __init__(self, directory: Path, embedding_model: str, server: MemoryServer | None = None) -> None:
        self.directory = directory
        self.embedding_model = embedding_model
        ensure_private_dir(directory)
        self.index = ChunkIndex(directory / "index.sqlite3")
        self.generations = Generations(directory)
        self._client: Any = None
        self._collection: Any = None
        self._generation: Path | None = None
        self.server = server
        self.remote: RemoteVectors | None = None
        try:
            self._check_model()
            mirrors = self._check_mirror()
            if server is not None:
                self.remote = RemoteVectors(server, embedding_model, HNSW)
                if mirrors is None:  # a new index: it mirrors this server's memory from now on
                    self.index.set_meta(MIRRORS, f"{server.database}/{server.persona}")
                self.sync(only_if_changed=True)
        except BaseException:
            self.index.close()
            raise

    def _check_mirror(self) -> str | None:
        """An index mirrors one memory server's collections, or none (the embedded store): never both. Returns
        what it mirrors (None for a new index)."""
        mirrors = self.index.get_meta(MIRRORS)
        wanted = f"{self.server.database}/{self.server.persona}" if self.server is not None else None
        if mirrors == wanted or (mirrors is None and self.index.count() == 0):
            return mirrors
        if mirrors is None:
            raise StoreError(
                f"the memory in {self.directory} is embedded (its vectors are in this home), not on a server",
                hint="use another home (--home) or persona (--profile) for the server's memory, or unset memory_url",
            )
        raise StoreError(
            f"the memory in {self.directory} mirrors {mirrors!r} on a memory server"
            + (f", not {wanted!r}" if wanted else ""),
            hint="set memory_url back to that server (docs/scale.md), or use another home or persona",
        )

    def sync(self, *, only_if_changed: bool = False) -> Synced:
        """Bring the local index in step with the server's records (nothing to do without a server)."""
        if self.remote is None:
            return Synced()
        revision = self.remote.revision()  # read first: a write after it changes it again
        if only_if_changed and revision == self.index.get_meta(SYNCED_AT):
            return Synced()
        done = sync(self.index, self.remote.collection)
        for kind, value in self.remote.forget_rules():  # rules another client stored: this one's ingests too
            self.index.add_forget_rule(kind, value)
        self.index.set_meta(SYNCED_AT, revision)
        return done

    def _written(self) -> None:
        """After a write to the server: a new revision for the other clients; this index stays in step with it
        if it was with the one before (else the next open syncs)."""
        if self.remote is not None:
            before, after = self.remote.bump()
            if before == self.index.get_meta(SYNCED_AT):
                self.index.set_meta(SYNCED_AT, after)

    def _restamp(self, sources: Sequence[str]) -> None:
        """Rewrite the server's metadata of these sources' chunks after their counts changed in SQLite."""
        if self.remote is None:
            return
        for source in sources:
            record = self.index.source(source)
            if record is None:
                continue
            ids = self.index.chunk_ids(source)
            chunks = self.index.get(ids)
            for start in range(0, len(ids), 1000):
                batch = [chunks[i] for i in ids[start : start + 1000]]
                self.collection.update(
                    ids=[c.id for c in batch], metadatas=self._records(record, batch, kept=True)["metadatas"]
                )

    def describe(self) -> dict[str, Any]:
        """Which memory is in use, for `pllm status`."""
        if self.remote is None or self.server is None:
            return {"kind": "embedded", "path": str(self.directory)}
        return {
            "kind": "server",
            "url": self.server.base_url,
            "database": self.server.database,
            "collection": self.remote.live_name(),
            "reachable": True,
            "server_chunks": self.remote.count(),
        }

    def _check_model(self) -> None:
        recorded = self.index.get_meta("embedding_model")
        if recorded is None:
            self.index.set_meta("embedding_model", self.embedding_model)
        elif recorded != self.embedding_model:
            raise StoreError(
                f"this memory was built with the embedding model {recorded!r}, not {self.embedding_model!r}",
                hint=f"set embedding_model back, or delete {self.directory} and ingest again",
            )

    @property
    def collection(self) -> Any:
        """The live generation's collection (generations.py), opened again if a forget in another process has
        switched generations since."""
        if self.remote is not None:
            return self.remote.collection
        live = self.generations.live()
        if self._collection is None or live != self._generation:
            self._open(live)
        return self._collection

    def _open(self, live: Path) -> None:
        import chromadb
        from chromadb.config import Settings

        self._close_collection()
        for _ in range(5):  # a forget may switch generations while this opens one: open the newer one then
            if generation_number(live) and not live.is_dir():
                again = self.generations.live()
                if again == live:
                    raise StoreError(
                        f"the vector store {live} named by {self.generations.pointer} is missing",
                        hint=f"if it is lost, delete {self.directory} and ingest again",
                    )
                live = again
                continue
            try:
                client: Any = chromadb.PersistentClient(  # typed without close()
                    path=str(live), settings=Settings(anonymized_telemetry=False, allow_reset=False)
                )
                collection = client.get_or_create_collection(
                    COLLECTION,
                    configuration=cast(Any, {"hnsw": HNSW}),  # chromadb types it as a TypedDict
                    metadata={"embedding_model": self.embedding_model},
                    embedding_function=None,
                )
            except Exception as exc:  # chromadb raises many unrelated types for a damaged store
                raise StoreError(
                    f"cannot open the vector store in {live}: {exc}",
                    hint="if it is damaged, delete that folder and ingest again",
                ) from None
            again = self.generations.live()
            if again == live:
                break
            client.close()
            live = again
        else:
            raise StoreError("the vector store kept changing while it was opened", hint="try again")
        self._client, self._collection, self._generation = client, collection, live
        self.generations.remove_leftovers()
        make_tree_private(self.directory)

    def _close_collection(self) -> None:
        """Let go of the open generation (Chroma stops its system once no client of that path is left)."""
        if self._client is not None:
            self._client.close()
        self._client = self._collection = self._generation = None

    def _read(self, call: Callable[[Any], T]) -> T:
        """call(collection), once more on the new generation if a forget switched generations meanwhile (the
        old one is deleted then: a client that has not loaded all of it yet fails)."""
        if self.remote is not None:
            return self.remote.read(call)
        collection = self.collection
        try:
            return call(collection)
        except Exception:
            if self.generations.live() == self._generation:
                raise
        self._close_collection()
        return call(self.collection)

    def close(self) -> None:
        self.index.close()
        if self.remote is not None:
            self.remote.close()
        if self._client is not None:  # Chroma creates segment files after the collection opens
            self._close_collection()
            make_tree_private(self.directory)

    # forgetting ---------------------------------------------------------------------------------
    def forget_pending(self) -> bool:
        """Whether a forget has begun and not finished (in this process, or in one that died)."""
        return self.index.get_meta(FORGET_MARK) == "1"

    def mark_forgetting(self, rules: Sequence[ForgetRule] = ()) -> None:
        """Call before deleting or rewriting anything for privacy; `rules` are recorded with the mark. From here
        on a crash leaves the mark in SQLite, and the next ingest or forget does the rest (the rules applied
        again by pipeline.resume_forgetting, then finish_forgetting)."""
        self.index.set_meta(FORGET_MARK, "1")
        for rule in rules:
            self.index.add_forget_rule(rule.kind, rule.value)
        if self.remote is not None and rules:  # the other clients keep to them in their ingests too
            self.remote.add_forget_rules([(rule.kind, rule.value) for rule in rules])

    def finish_forgetting(self) -> Rebuilt | None:
        """If marked: compact SQLite, copy the remaining vectors into a fresh Chroma generation (rebuild.py),
        switch to it and delete the old one; then clear the mark. None if there was nothing to finish."""
        if not self.forget_pending():
            return None
        started = time.perf_counter()
        self.index.compact()
        compacted = time.perf_counter()
        if self.remote is not None:
            chunk_ids = [chunk_id for chunk_id, _ in self.index.chunk_sources()]
            name, copied, missing = self.remote.rebuild(chunk_ids)
            rebuilt = Rebuilt(name, copied, missing, 0.0, 0.0)
            self._written()
        else:
            rebuilt = rebuild_generation(
                self.generations, self.collection, self.index.chunk_sources(), before_switch=self._close_collection
            )
        self.index.set_meta(FORGET_MARK, "0")
        self.generations.remove_leftovers()
        done = time.perf_counter()
        return replace(rebuilt, seconds=done - compacted, compact_seconds=compacted - started)

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
        self._check_dimension(vectors)
        self.collection.delete(where={"source": record.source})
        self._upsert(record, chunks, vectors)
        self.index.replace_source(record, chunks)
        self._written()

    def _upsert(self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        import numpy

        for start in range(0, len(chunks), 1000):
            batch = chunks[start : start + 1000]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=numpy.asarray(vectors[start : start + 1000], dtype=numpy.float32),
                **self._records(record, batch),
            )

    def append_to_source(
        self, record: SourceRecord, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]], *, first: bool
    ) -> None:
        """Commit one part of a large file: vectors first, then its chunks and the source's row in SQLite (see
        index.py). `first` drops what the source held before. A kill between the two leaves vectors SQLite
        does not know: search skips them, and the part is written again (same ids) when the file is resumed."""
        self._check_dimension(vectors)
        if first:
            self.collection.delete(where={"source": record.source})
        self._upsert(record, chunks, vectors)
        self.index.append_to_source(record, chunks, first=first)
        if not first and PARTIAL not in record.sha256:  # the last part: every part's records say it is whole
            self._restamp([record.source])
        self._written()

    def _records(self, record: SourceRecord | None, chunks: Sequence[Chunk], kept: bool = False) -> dict[str, Any]:
        """What Chroma stores besides the vectors: the source (embedded), or the whole record (on a server),
        written by this home, or `kept` by the home that wrote the source (a forget or rename changing it)."""
        if self.remote is None or record is None:
            return {"metadatas": [{"source": c.source} for c in chunks]}
        return payload(record, self._origin(chunks[0].id) if kept and chunks else self.home_id, chunks)

    def _origin(self, chunk_id: str) -> str:
        """The home that wrote this chunk's source, as the server says (this one if it does not say)."""
        found = self._read(lambda c: c.get(ids=[chunk_id], include=["metadatas"]))
        return str(found["metadatas"][0].get("origin", self.home_id)) if found["ids"] else self.home_id

    @property
    def home_id(self) -> str:
        """This home's name for itself on a memory server (a random value, made once)."""
        found = self.index.get_meta(HOME_ID)
        if found is None:
            found = uuid.uuid4().hex
            self.index.set_meta(HOME_ID, found)
        return found

    def ingested_here(self, source: str) -> bool:
        """Whether this home wrote `source` (always, embedded). On a server, another machine's source is not
        pruned or taken as moved here because its path is missing on this machine."""
        if self.remote is None:
            return True
        found = self._read(lambda c: c.get(where={"source": source}, limit=1, include=["metadatas"]))
        return not found["ids"] or found["metadatas"][0].get("origin", self.home_id) == self.home_id

    def remove_source(self, source: str) -> int:
        """SQLite first: should the vectors outlive a crash, search skips them and the next rebuild drops them."""
        removed = self.index.remove_source(source)
        self.collection.delete(where={"source": source})
        self._written()
        return removed

    def update_chunks(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Rewrite chunks in place (same ids): their vectors, then their SQLite rows and BM25 text."""
        import numpy

        if chunks:
            extra = self._records(None, chunks)
            if self.remote is not None:  # each chunk with its own source's record, by the home that wrote it
                written: dict[str, tuple[SourceRecord, str]] = {}
                for c in chunks:
                    record = self.index.source(c.source)
                    if c.source not in written and record is not None:
                        written[c.source] = (record, self._origin(c.id))
                rows = [payload(*written[c.source], [c]) if c.source in written else {} for c in chunks]
                extra = {key: [row[key][0] for row in rows if row] for key in ("documents", "metadatas")}
                if len(extra["metadatas"]) != len(chunks):
                    raise StoreError("chunks of a source this memory does not hold cannot be rewritten")
            self.collection.upsert(
                ids=[c.id for c in chunks], embeddings=numpy.asarray(vectors, dtype=numpy.float32), **extra
            )
            self.index.update_chunks(chunks)
            self._written()

    def remove_chunks(self, ids: Sequence[str]) -> None:
        if ids:  # SQLite first, as remove_source
            sources = sorted({c.source for c in self.index.get(ids).values()}) if self.remote is not None else []
            self.index.remove_chunks(ids)
            self.collection.delete(ids=list(ids))
            self._restamp(sources)  # their chunk counts
            self._written()

    def remove_messages(self, source: str, count: int) -> None:
        """Count `count` fewer messages for a source whose forgotten turns were dropped from its chunks."""
        self.index.remove_messages(source, count)
        self._restamp([source])
        self._written()

    def rename_source(self, old: str, new: str) -> None:
        """Point a source's chunks at a new path (a renamed or moved file): no embedding again."""
        ids = self.index.chunk_ids(old)
        record = self.index.source(old)
        renamed = replace(record, source=new) if record is not None else None
        stored = self.index.get(ids) if self.remote is not None else {}
        for start in range(0, len(ids), 1000):
            batch = ids[start : start + 1000]
            if self.remote is None:
                self.collection.update(ids=batch, metadatas=[{"source": new}] * len(batch))
            else:  # the records carry the source too
                chunks = [replace(stored[i], source=new) for i in batch]
                self.collection.update(ids=batch, metadatas=self._records(renamed, chunks, kept=True)["metadatas"])
        self.index.rename_source(old, new)
        self._written()

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

    def dense_search(self, vector: Sequence[float], limit: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first. (Chroma returns fewer when it holds fewer; asking it to
        count first cost 5 ms at 100,000 chunks.)"""
        import numpy

        query = numpy.asarray([vector], dtype=numpy.float32)
        result = self._read(lambda c: c.query(query_embeddings=query, n_results=limit, include=["distances"]))
        return [(i, 1.0 - float(d)) for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def exact_search(self, vector: Sequence[float], ids: Sequence[str], limit: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the best `limit` of these chunks, compared one by one."""
        import numpy

        found = self._read(lambda c: c.get(ids=list(ids), include=["embeddings"])) if ids else {"ids": []}
        if not found["ids"]:
            return []
        matrix = numpy.asarray(found["embeddings"], dtype=numpy.float32)
        query = numpy.asarray(vector, dtype=numpy.float32)
        norms = numpy.linalg.norm(matrix, axis=1) * float(numpy.linalg.norm(query))
        similarity = matrix @ query / numpy.where(norms == 0, 1.0, norms)
        best = numpy.argsort(-similarity, kind="stable")[:limit]
        return [(found["ids"][row], float(similarity[row])) for row in best]

    def search(
        self, vector: QueryVector, text: str, k: int, mode: SearchMode = "hybrid", periods: Sequence[Period] = ()
    ) -> list[Hit]:
        """The best `k` chunks for a query (its vector and its text); with `periods`, those of these periods
        rank higher."""
        pool = max(k * 4, 40)
        ranked: dict[str, list[tuple[str, float]]] = {}
        lexical = self.index.lexical_search_later(text, pool) if mode in ("lexical", "hybrid") else None
        if mode in ("dense", "hybrid"):
            if callable(vector):
                vector = vector()
            inside = self.index.ids_in_periods(periods, EXACT_PERIOD + 1) if periods else []
            if len(inside) <= EXACT_PERIOD:
                ranked["dense"] = self.dense_search(vector, pool)
                if periods:
                    ranked["dense_in_period"] = self.exact_search(vector, inside, pool)
            else:
                nearest = self.dense_search(vector, max(pool, PERIOD_POOL))
                kept = set(self.index.in_periods([i for i, _ in nearest], periods))
                ranked["dense"] = nearest[:pool]
                ranked["dense_in_period"] = [hit for hit in nearest if hit[0] in kept][:pool]
        if lexical is not None:
            if periods:  # here, while the worker ranks the whole memory: this one is quicker
                ranked["lexical_in_period"] = self.index.lexical_search(text, pool, periods)
            ranked["lexical"] = lexical.result()
        ranked = {name: ranked[name] for name in FUSION_WEIGHTS if name in ranked}  # one order: the same sums
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


def fuse(ranked: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: each list contributes weight / (RRF_K + rank)."""
    scores: dict[str, float] = {}
    for mode, hits in ranked.items():
        weight = FUSION_WEIGHTS.get(mode, 1.0)
        for rank, (chunk_id, _) in enumerate(hits, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return scores
