"""The SQLite side of memory: sources, chunk texts and metadata, and the FTS5 lexical index.

SQLite is the record of what memory holds; Chroma holds only the vectors. A source's row is written last,
in one transaction with its chunks, so a crash mid-ingest leaves the old sha256 and the next ingest redoes
the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pllm_cli.memory.migrations import FTS_TABLE, migrate, rebuild_fts
from pllm_cli.memory.records import Chunk, SourceRecord
from pllm_cli.memory.timeframes import Period, wall_clock

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, format TEXT NOT NULL,
    chunks INTEGER NOT NULL, messages INTEGER NOT NULL, ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, position INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
    start_at TEXT NOT NULL DEFAULT '', end_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (source, position);
CREATE INDEX IF NOT EXISTS sources_by_sha ON sources (sha256);
CREATE TABLE IF NOT EXISTS forget_rules (kind TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS failures (source TEXT PRIMARY KEY, reason TEXT NOT NULL, failed_at TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts """
    + FTS_TABLE
    + ";"
)

_WORD = re.compile(r"\w+", re.UNICODE)


# Function words of questions: BM25 weighs them low but not at zero, and they crowd out the words that matter.
# Dropping them raised LoCoMo evidence recall within 512 tokens by about one point (bench/, eval retrieval).
STOPWORDS = frozenset(
    "a an the and or but if of at by for with about against between into through during before after above "
    "below to from up down in out on off over under again further then once here there when where why how all "
    "any both each few more most other some such no nor not only own same so than too very s t can will just "
    "don should now i me my myself we our ours ourselves you your yours yourself yourselves he him his himself "
    "she her hers herself it its itself they them their theirs themselves what which who whom this that these "
    "those am is are was were be been being have has had having do does did doing would could".split()
)


# A query whose words are found in more than SLOW_QUERY chunks (summed: FTS5 scores every match, about 0.5 us
# each) leaves out the words found in more than COMMON_WORD_SHARE of the memory, if the others still match.
# Such a word weighs under log(0.7/0.3) = 0.85 in BM25 against 7-10 for a rare one. At 100,000 chunks
# (bench/search_scale.py): 0.999 of the full top 10 kept, BM25 p95 41 -> 36 ms, max 64 -> 50 ms.
SLOW_QUERY = 20_000
COMMON_WORD_SHARE = 0.3


def fts_terms(text: str) -> list[str]:
    """The query's words but function words (all of them if that is all there is), each quoted so FTS5 syntax
    in user text is inert."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    content = [word for word in words if word not in STOPWORDS] or words
    return [f'"{word}"' for word in content]


def fts_query(text: str) -> str:
    """Any of the query's words but function words."""
    return " OR ".join(fts_terms(text))


class ChunkIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._worker: ThreadPoolExecutor | None = None  # BM25 searches in the background: lexical_search_later
        self._reader: sqlite3.Connection | None = None  # the worker's own connection
        self.migrated = migrate(self.db)  # the numbered steps applied now (memory/migrations.py)
        # Covering: the chunks of a period are found in the index alone (4 ms at 100,000 chunks, 18 without end_at).
        self.db.execute("DROP INDEX IF EXISTS chunks_by_time")
        self.db.execute("CREATE INDEX IF NOT EXISTS chunks_by_span ON chunks (start_at, end_at) WHERE start_at != ''")

    def misaligned(self) -> int:
        """BM25 rows whose rowid is not their chunk's (0 unless something outside pllm renumbered rows)."""
        query = "SELECT count(*) FROM chunks_fts f LEFT JOIN chunks c ON c.rowid = f.rowid WHERE c.id IS NOT f.id"
        return int(self.db.execute(query).fetchone()[0])

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.db.close()

    # metadata -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # sources ------------------------------------------------------------------------------------
    def source(self, source: str) -> SourceRecord | None:
        row = self.db.execute("SELECT * FROM sources WHERE source = ?", (source,)).fetchone()
        return None if row is None else SourceRecord(*row)

    def sources(self) -> list[SourceRecord]:
        return [SourceRecord(*row) for row in self.db.execute("SELECT * FROM sources ORDER BY source")]

    def sources_with_key(self, sha256: str) -> list[SourceRecord]:
        return [SourceRecord(*row) for row in self.db.execute("SELECT * FROM sources WHERE sha256 = ?", (sha256,))]

    def record_failure(self, source: str, reason: str, failed_at: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (source, reason, failed_at))

    def failures(self) -> dict[str, tuple[str, str]]:
        """source -> (reason, time) of the files whose last ingest failed."""
        return {row[0]: (row[1], row[2]) for row in self.db.execute("SELECT * FROM failures ORDER BY source")}

    def add_forget_rule(self, kind: str, value: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO forget_rules VALUES (?, ?)", (kind, value))

    def forget_rules(self) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self.db.execute("SELECT kind, value FROM forget_rules ORDER BY kind")]

    def update_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Rewrite the fields and BM25 text of existing chunks."""
        with self._transaction():
            for chunk in chunks:
                self.db.execute(
                    "UPDATE chunks SET text = ?, meta = ?, start_at = ?, end_at = ? WHERE id = ?",
                    (chunk.body, stored_meta(chunk), *_wall_clock_span(chunk), chunk.id),
                )
            self._drop_fts([chunk.id for chunk in chunks])
            self._add_fts(chunks)

    def remove_chunks(self, ids: Sequence[str]) -> None:
        """Drop single chunks (of a source whose file is gone), keeping the source's counts right."""
        with self._transaction():
            self._drop_fts(ids)
            for chunk_id in ids:
                row = self.db.execute("SELECT source FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
                self.db.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
                if row:
                    self.db.execute("UPDATE sources SET chunks = chunks - 1 WHERE source = ?", (row[0],))

    def remove_messages(self, source: str, count: int) -> None:
        """Count `count` fewer messages for a source whose forgotten turns were dropped from its chunks."""
        self.db.execute("UPDATE sources SET messages = max(messages - ?, 0) WHERE source = ?", (count, source))

    def compact(self) -> None:
        """Leave no trace of deleted text in the file: fold the WAL back and rewrite free pages. SQLite may
        renumber rowids in a VACUUM; should the BM25 rows and their chunks part, they are matched again."""
        self.db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")  # merge away deleted terms
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        if self.misaligned():
            with self._transaction():
                rebuild_fts(self.db)
            self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def rename_source(self, old: str, new: str) -> None:
        with self._transaction():
            self.db.execute("UPDATE chunks SET source = ? WHERE source = ?", (new, old))
            self.db.execute("UPDATE sources SET source = ? WHERE source = ?", (new, old))
            self.db.execute("DELETE FROM failures WHERE source = ?", (new,))

    def chunk_ids(self, source: str) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE source = ?", (source,))]

    def chunk_digests(self) -> dict[str, str]:
        """chunk id -> row_digest of every chunk."""
        rows = self.db.execute("SELECT id, source, position, text, meta FROM chunks")
        return {row[0]: row_digest(row[1], row[2], row[3], row[4]) for row in rows}

    def chunk_sources(self) -> list[tuple[str, str]]:
        """(chunk id, source) of every chunk."""
        return [(row[0], row[1]) for row in self.db.execute("SELECT id, source FROM chunks ORDER BY rowid")]

    def replace_source(self, record: SourceRecord, chunks: Sequence[Chunk]) -> None:
        with self._transaction():
            self._delete_chunks(record.source)
            self._drop_fts([c.id for c in chunks])  # ids held by another source (none, unless a rename raced)
            self.db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.source, c.position, c.body, stored_meta(c), *_wall_clock_span(c)) for c in chunks],
            )
            self._add_fts(chunks)
            self.db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)", _row(record))
            self.db.execute("DELETE FROM failures WHERE source = ?", (record.source,))

    def append_to_source(self, record: SourceRecord, chunks: Sequence[Chunk], *, first: bool) -> None:
        """One part of a large file: its chunks added and the source's row rewritten (its sha256 then says the
        source is partial, until the last part), in one transaction. `first` drops what the source held."""
        with self._transaction():
            if first:
                self._delete_chunks(record.source)
            self._drop_fts([c.id for c in chunks])
            self.db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.source, c.position, c.body, stored_meta(c), *_wall_clock_span(c)) for c in chunks],
            )
            self._add_fts(chunks)
            self.db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)", _row(record))
            self.db.execute("DELETE FROM failures WHERE source = ?", (record.source,))

    def remove_source(self, source: str) -> int:
        with self._transaction():
            removed = self._delete_chunks(source)
            self.db.execute("DELETE FROM sources WHERE source = ?", (source,))
            self.db.execute("DELETE FROM failures WHERE source = ?", (source,))
        return removed

    def _delete_chunks(self, source: str) -> int:
        self._drop_fts(self.chunk_ids(source))
        return self.db.execute("DELETE FROM chunks WHERE source = ?", (source,)).rowcount

    def _add_fts(self, chunks: Sequence[Chunk]) -> None:
        """BM25 rows for chunks already in `chunks`, under the same rowids (replacing a stray row there)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO chunks_fts (rowid, id, text) SELECT rowid, id, ? FROM chunks WHERE id = ?",
            [(c.embedding_text, c.id) for c in chunks],
        )

    def _drop_fts(self, ids: Sequence[str]) -> None:
        """The BM25 rows of these chunks: by rowid, and only if the row is that chunk's."""
        self.db.executemany(
            "DELETE FROM chunks_fts WHERE rowid = (SELECT rowid FROM chunks WHERE id = ?) AND id = ?",
            [(i, i) for i in ids],
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # chunks -------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def get(self, ids: Iterable[str]) -> dict[str, Chunk]:
        wanted = list(ids)
        found: dict[str, Chunk] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            marks = ",".join("?" * len(batch))
            query = f"SELECT id, source, position, text, meta FROM chunks WHERE id IN ({marks})"
            for row in self.db.execute(query, batch):
                found[row[0]] = _chunk(row)
        return found

    def chunk_refs(self) -> Iterator[tuple[str, str, list[str]]]:
        """(chunk id, source, message ids) of every chunk."""
        for chunk in self.iter_chunks():
            yield chunk.id, chunk.source, list(chunk.message_ids)

    def iter_chunks(self) -> Iterator[Chunk]:
        for row in self.db.execute("SELECT id, source, position, text, meta FROM chunks ORDER BY source, position"):
            yield _chunk(row)

    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]:
        """The chunks just before and after `chunk` in its source."""
        query = "SELECT id, source, position, text, meta FROM chunks WHERE source = ? AND position IN (?, ?)"
        rows = {
            row[2]: _chunk(row)
            for row in self.db.execute(query, (chunk.source, chunk.position - 1, chunk.position + 1))
        }
        return rows.get(chunk.position - 1), rows.get(chunk.position + 1)

    def latest_time(self) -> datetime | None:
        """The wall-clock time of the newest dated chunk."""
        row = self.db.execute("SELECT max(end_at) FROM chunks WHERE end_at != ''").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def ids_in_periods(self, periods: Sequence[Period], limit: int) -> list[str]:
        """Ids of chunks whose time span meets one of `periods`, at most `limit` of them (newest first)."""
        if not periods:
            return []
        condition, values = _period_condition(periods)
        query = f"SELECT id FROM chunks WHERE start_at != '' AND ({condition}) ORDER BY start_at DESC LIMIT ?"
        return [row[0] for row in self.db.execute(query, (*values, limit))]

    def in_periods(self, ids: Sequence[str], periods: Sequence[Period]) -> list[str]:
        """Those of `ids` whose chunks meet one of `periods`."""
        if not ids or not periods:
            return []
        condition, values = _period_condition(periods)
        found: list[str] = []
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            query = f"SELECT id FROM chunks WHERE id IN ({marks}) AND start_at != '' AND ({condition})"
            found += [row[0] for row in self.db.execute(query, (*batch, *values))]
        return found

    def lexical_search(self, text: str, limit: int, periods: Sequence[Period] = ()) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better), best first; only chunks of `periods` if any are given."""
        return _bm25(self.db, text, limit, periods)

    def lexical_search_later(
        self, text: str, limit: int, periods: Sequence[Period] = ()
    ) -> Future[list[tuple[str, float]]]:
        """lexical_search on a thread of its own, with its own connection: SQLite lets go of the GIL while it
        ranks, so BM25 runs alongside the question's embedding and the vector search."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pllm-bm25")
        return self._worker.submit(self._read_bm25, text, limit, periods)

    def _read_bm25(self, text: str, limit: int, periods: Sequence[Period]) -> list[tuple[str, float]]:
        if self._reader is None:  # used by the worker thread only; closed by close() once the worker has stopped
            self._reader = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        return _bm25(self._reader, text, limit, periods)


def _bm25(db: sqlite3.Connection, text: str, limit: int, periods: Sequence[Period]) -> list[tuple[str, float]]:
    terms = fts_terms(text)
    query = " OR ".join(terms if periods else _informative(db, terms, limit))  # a period's matches are few
    if not query:
        return []
    if periods:  # "+rowid": a filter on the matches (bm25 is computed for those that pass), not a lookup
        condition, values = _period_condition(periods)
        rows = db.execute(
            "SELECT id, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? AND +rowid IN"
            f" (SELECT rowid FROM chunks WHERE start_at != '' AND ({condition})) ORDER BY bm25(chunks_fts) LIMIT ?",
            (query, *values, limit),
        )
    else:
        rows = db.execute(
            "SELECT id, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?",
            (query, limit),
        )
    return [(row[0], -float(row[1])) for row in rows]


def _informative(db: sqlite3.Connection, terms: list[str], limit: int) -> list[str]:
    """`terms`, less the common ones if the query is slow and the others still match `limit` chunks."""
    if len(terms) < 2:
        return terms
    count = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    found = {term: int(db.execute(count, (term,)).fetchone()[0]) for term in terms}
    if sum(found.values()) <= SLOW_QUERY:
        return terms
    chunks = db.execute("SELECT coalesce(sum(chunks), 0) FROM sources").fetchone()[0]  # count(*): 0.6 ms
    kept = [term for term in terms if found[term] <= chunks * COMMON_WORD_SHARE]
    if not kept or len(kept) == len(terms):
        return terms
    return kept if int(db.execute(count, (" OR ".join(kept),)).fetchone()[0]) >= limit else terms


def _period_condition(periods: Sequence[Period]) -> tuple[str, list[str]]:
    """SQL for "the chunk's span [start_at, end_at] meets one of the periods [start, end)"."""
    values: list[str] = []
    for start, end in periods:
        values += [end.isoformat(timespec="seconds"), start.isoformat(timespec="seconds")]
    return " OR ".join(["(start_at < ? AND end_at >= ?)"] * len(periods)), values


def _row(record: SourceRecord) -> tuple[str, str, str, int, int, str]:
    return (record.source, record.sha256, record.format, record.chunks, record.messages, record.ingested_at)


def _wall_clock_span(chunk: Chunk) -> tuple[str, str]:
    start = wall_clock(chunk.start_time)
    return start, max(start, wall_clock(chunk.end_time))


def stored_meta(chunk: Chunk) -> str:
    """What the meta column holds: the chunk's structured fields but those with columns of their own, as JSON."""
    data = chunk.to_dict()
    for key in ("id", "source", "position", "body"):
        data.pop(key)
    return json.dumps(data)


def row_digest(source: str, position: int, body: str, meta: str) -> str:
    """A chunk's fingerprint as stored (memory/mirror.py compares a server's records with this index by it)."""
    return hashlib.sha256(f"{source}\0{position}\0{body}\0{meta}".encode()).hexdigest()[:32]


def _chunk(row: tuple[str, str, int, str, str]) -> Chunk:
    chunk_id, source, position, body, meta = row
    return Chunk.from_dict({"id": chunk_id, "source": source, "position": position, "body": body, **json.loads(meta)})
