"""The ingest pipeline: files -> documents -> chunks -> embeddings -> memory. Returns a report, never prints.

A file whose bytes are unchanged (sha256) is skipped; a changed file's chunks are replaced as a whole; a
file that fails is reported with its reason while every other file still goes in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pllm_cli.embedding import Embedder
from pllm_cli.errors import ExitCode, PllmError
from pllm_cli.ingest.chunking import chunk_document
from pllm_cli.ingest.readers import is_supported, read_document
from pllm_cli.memory.records import SourceRecord
from pllm_cli.memory.store import MemoryStore

Status = Literal["added", "updated", "unchanged", "failed", "pruned"]
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class FileResult:
    path: str
    status: Status
    format: str = ""
    chunks: int = 0
    reason: str = ""
    hint: str = ""


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "updated"))

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        statuses: tuple[Status, ...] = ("added", "updated", "unchanged", "failed", "pruned")
        return {
            "summary": {s: self.count(s) for s in statuses},
            "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 3),
            "chunks_per_second": round(self.chunks_written / self.seconds, 1) if self.seconds else 0.0,
            "files": [asdict(f) for f in self.files],
        }


@dataclass(frozen=True)
class IngestEvent:
    """Progress: `kind` is "planned" (total = number of files) or "file" (one file done)."""

    kind: Literal["planned", "file"]
    total: int = 0
    result: FileResult | None = None


def _excluded(path: Path, root: Path, patterns: Sequence[str]) -> bool:
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns)


def discover_files(paths: Sequence[Path], exclude: Sequence[str] = ()) -> Iterator[tuple[Path, str]]:
    """(file, "") for each file to ingest, or (path, reason) for a path that cannot be used.

    Folders are walked recursively in a stable order, hidden entries and unsupported types skipped.
    """
    for given in paths:
        path = given.expanduser().absolute()
        if not path.exists():
            yield path, "no such file or folder"
        elif path.is_file():
            yield path, ""
        else:
            for dirpath, dirnames, filenames in os.walk(path):
                current = Path(dirpath)
                dirnames[:] = sorted(
                    d for d in dirnames if not d.startswith(".") and not _excluded(current / d, path, exclude)
                )
                for name in sorted(filenames):
                    candidate = current / name
                    if name.startswith(".") or not is_supported(candidate):
                        continue
                    if not _excluded(candidate, path, exclude):
                        yield candidate, ""


def ingest_paths(
    paths: Sequence[Path],
    store: MemoryStore,
    embedder: Embedder,
    *,
    exclude: Sequence[str] = (),
    prune: bool = False,
    on_event: Callable[[IngestEvent], None] | None = None,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport()
    emit = on_event or (lambda event: None)
    planned = list(discover_files(paths, exclude))
    emit(IngestEvent("planned", total=len(planned)))
    for path, problem in planned:
        result = (
            FileResult(str(path), "failed", reason=problem, hint="check the path")
            if problem
            else ingest_file(path, store, embedder)
        )
        report.files.append(result)
        emit(IngestEvent("file", result=result))
    if prune:
        for record in store.sources():
            if not Path(record.source).exists():
                store.remove_source(record.source)
                report.files.append(FileResult(record.source, "pruned", record.format, record.chunks))
    report.seconds = time.perf_counter() - started
    return report


def ingest_file(path: Path, store: MemoryStore, embedder: Embedder) -> FileResult:
    """Ingest one file; expected failures come back as a failed FileResult, never as an exception."""
    source = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return FileResult(source, "failed", reason="larger than 512 MiB", hint="split the file")
        data = path.read_bytes()
    except OSError as exc:
        return FileResult(source, "failed", reason=exc.strerror or str(exc), hint="check the file's permissions")
    sha256 = hashlib.sha256(data).hexdigest()
    previous = store.source(source)
    if previous is not None and previous.sha256 == sha256:
        return FileResult(source, "unchanged", previous.format, previous.chunks)
    try:
        document = read_document(path, data)
        chunks = chunk_document(document)
        vectors = embedder.embed([c.embedding_text for c in chunks])
        record = SourceRecord(
            source=source,
            sha256=sha256,
            format=document.format,
            chunks=len(chunks),
            messages=len(document.messages),
            ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        store.replace_source(record, chunks, vectors)
    except PllmError as exc:
        if exc.exit_code != ExitCode.INPUT:
            raise  # a broken model or store is not a problem of this file
        return FileResult(source, "failed", reason=exc.message, hint=exc.hint or "")
    return FileResult(source, "updated" if previous else "added", document.format, len(chunks))
