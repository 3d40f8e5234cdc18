"""The local index as a mirror of the records on a memory server (memory_url).

The open-source Chroma server has no BM25 (its Search() answers "not implemented for local executor"), so each
client keeps SQLite with its FTS5 index, as for the embedded store, and keeps it in step with the server's
records: every record carries the chunk's structured fields (the document, JSON) and its source's record in its
metadata, so another client can rebuild its index from them (sync()). docs/scale.md says why (measured) and
what two clients writing one memory get.

A source is taken from the server only when it is whole there: as many records as its `chunks` says, all of
the same sha256. An ingest cut short on the server (a client that died between Chroma's delete and its last
upsert) is left out, the last whole version kept, until a client writes it again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.memory.index import ChunkIndex, row_digest, stored_meta
from pllm_cli.memory.records import Chunk, SourceRecord

PAGE = 5000


def record_metadata(record: SourceRecord, chunk: Chunk, origin: str) -> dict[str, str | int]:
    """A chunk's metadata on the server: its source's record, its fingerprint, and the home that wrote it."""
    return {
        "origin": origin,
        "source": chunk.source,
        "sha256": record.sha256,
        "format": record.format,
        "chunks": record.chunks,
        "messages": record.messages,
        "ingested_at": record.ingested_at,
        "digest": row_digest(chunk.source, chunk.position, chunk.body, stored_meta(chunk)),
    }


def record_document(chunk: Chunk) -> str:
    """A chunk's document on the server: its structured fields (records.Chunk.to_dict) as JSON, but its id and
    source, which the record has already (a rename changes the metadata only: Chroma cannot change a document
    without its vector)."""
    data = chunk.to_dict()
    del data["id"], data["source"]
    return json.dumps(data, ensure_ascii=False)


def payload(record: SourceRecord, origin: str, chunks: Sequence[Chunk]) -> dict[str, Any]:
    """The documents and metadatas of `chunks` for an upsert or update, written by the home `origin`."""
    return {
        "documents": [record_document(c) for c in chunks],
        "metadatas": [record_metadata(record, c, origin) for c in chunks],
    }


@dataclass
class Synced:
    added: list[str] = field(default_factory=list)  # sources new to this index
    updated: list[str] = field(default_factory=list)  # sources whose chunks or record changed
    removed: list[str] = field(default_factory=list)  # sources no longer on the server
    incomplete: list[str] = field(default_factory=list)  # sources not whole on the server: left as they were

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "incomplete": self.incomplete,
        }


def _server_records(collection: Any) -> dict[str, dict[str, Any]]:
    """chunk id -> metadata of every record on the server."""
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = collection.get(include=["metadatas"], limit=PAGE, offset=len(found))
        found.update(zip(page["ids"], page["metadatas"], strict=True))
        if len(page["ids"]) < PAGE:
            return found


def sync(index: ChunkIndex, collection: Any) -> Synced:
    """Make the index hold what the server holds: sources new or changed there are read (their records'
    documents), sources gone from it removed. Whatever was removed is compacted away (a forget on another
    client leaves no trace here either)."""
    remote = _server_records(collection)
    by_source: dict[str, dict[str, dict[str, Any]]] = {}
    for chunk_id, metadata in remote.items():
        by_source.setdefault(str(metadata.get("source", "")), {})[chunk_id] = metadata
    local_digests = index.chunk_digests()
    local_ids: dict[str, set[str]] = {}
    for chunk_id, source in index.chunk_sources():
        local_ids.setdefault(source, set()).add(chunk_id)
    local_records = {record.source: record for record in index.sources()}
    done = Synced()
    for source, records in sorted(by_source.items()):
        first = next(iter(records.values()))
        record = SourceRecord(
            source,
            str(first["sha256"]),
            str(first["format"]),
            int(first["chunks"]),
            int(first["messages"]),
            str(first["ingested_at"]),
        )
        whole = len(records) == record.chunks and all(
            (m["sha256"], m["chunks"], m["messages"]) == (record.sha256, record.chunks, record.messages)
            for m in records.values()
        )
        if not whole:
            done.incomplete.append(source)
            continue
        same = (
            local_records.get(source) == record
            and local_ids.get(source, set()) == set(records)
            and all(local_digests.get(i) == m["digest"] for i, m in records.items())
        )
        if same:
            continue
        got = collection.get(ids=list(records), include=["documents"])
        chunks = sorted(
            (
                Chunk.from_dict({**json.loads(doc), "id": chunk_id, "source": source})
                for chunk_id, doc in zip(got["ids"], got["documents"], strict=True)
            ),
            key=lambda c: c.position,
        )
        if len(chunks) != record.chunks:  # changed on the server since it was listed: next time
            done.incomplete.append(source)
            continue
        index.replace_source(record, chunks)
        (done.updated if source in local_records else done.added).append(source)
    for source in sorted(set(local_records) - set(by_source)):
        if local_records[source].chunks > 0:  # a source with no chunks has no record on the server
            index.remove_source(source)
            done.removed.append(source)
    if done.removed or done.updated:
        index.compact()
    return done
