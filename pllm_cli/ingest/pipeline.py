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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, get_args

from pllm_cli.embedding import Embedder
from pllm_cli.errors import ExitCode, InputError, NotAnExportError, PllmError
from pllm_cli.file_names import source_key, source_path
from pllm_cli.ingest import files
from pllm_cli.ingest.chunking import CHUNKING_VERSION, chunk_document
from pllm_cli.ingest.document import Document, Section
from pllm_cli.ingest.files import NotRegularFile, open_regular
from pllm_cli.ingest.readers import is_supported, read_document
from pllm_cli.memory.forgetting import ForgetRule, apply_rules, apply_to_chunk
from pllm_cli.memory.rebuild import Rebuilt
from pllm_cli.memory.records import PARTIAL, Chunk, Mail, SourceRecord
from pllm_cli.memory.store import ChromaStore, MemoryStore

Status = Literal["added", "updated", "moved", "unchanged", "skipped", "failed", "pruned"]
MAX_FILE_BYTES = 512 * 1024 * 1024
IGNORE_FILE = ".pllmignore"
# The sha256 column of a large file committed only up to a byte offset: "<content key>+partial@<offset>"
# (records.PARTIAL). It equals no file's content key, so the next ingest never takes the source as unchanged (or
# as moved): it goes on from that offset if the file is the same, else reads it again from the start.


@dataclass(frozen=True)
class FileResult:
    path: str
    status: Status
    format: str = ""
    chunks: int = 0
    reason: str = ""
    hint: str = ""
    warnings: tuple[str, ...] = ()  # what was left out of a file that went in, e.g. a chat line with a bad date


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
        return {
            "summary": {s: self.count(s) for s in get_args(Status)},
            "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 3),
            "chunks_per_second": round(self.chunks_written / self.seconds, 1) if self.seconds else 0.0,
            "files": [asdict(f) for f in self.files],
        }


@dataclass(frozen=True)
class IngestEvent:
    """Progress: `kind` is "planned" (total = number of files), "file" (one file done) or "part" (a part of a
    large file committed: `done` of `total` bytes of `path`)."""

    kind: Literal["planned", "file", "part"]
    total: int = 0
    result: FileResult | None = None
    path: str = ""
    done: int = 0


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
        elif not path.is_dir():  # a file, or a FIFO or device: ingest_file skips those with their reason
            yield path, ""
        else:
            ignores = IgnoreFiles()
            for dirpath, dirnames, filenames in os.walk(path):
                current = Path(dirpath)
                ignores.enter(current)
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if not d.startswith(".")
                    and not _excluded(current / d, path, exclude)
                    and not ignores.ignored(current / d, is_dir=True)
                )
                for name in sorted(filenames):
                    candidate = current / name
                    if name.startswith(".") or not is_supported(candidate):
                        continue
                    if not _excluded(candidate, path, exclude) and not ignores.ignored(candidate):
                        yield candidate, ""


class IgnoreFiles:
    """The `.pllmignore` files (gitignore syntax) met while walking a folder; each applies below its folder."""

    def __init__(self) -> None:
        self.specs: list[tuple[Path, Any]] = []

    def enter(self, folder: Path) -> None:
        ignore_file = folder / IGNORE_FILE
        if ignore_file.is_file():
            import pathspec

            lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            self.specs.append((folder, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, path: Path, is_dir: bool = False) -> bool:
        for base, spec in self.specs:
            if path.is_relative_to(base):
                relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
                if spec.match_file(relative):
                    return True
        return False


@dataclass(frozen=True)
class IngestOptions:
    me: tuple[str, ...] = ()  # the user's names: their chat messages are marked as theirs
    redact: bool = False  # mask e-mail addresses, phone/card/IBAN numbers and secrets before storing

    def content_key(self, data: bytes) -> str:
        """What "unchanged" compares: the bytes, the chunking version (a new one re-cuts every file) and whether
        they were redacted (so toggling --redact re-ingests)."""
        return self.key_of_digest(hashlib.sha256(data).hexdigest())

    def key_of_digest(self, sha256: str) -> str:
        """content_key of bytes whose sha256 hex digest is `sha256` (a large file is hashed a block at a time)."""
        key = f"{sha256}+c{CHUNKING_VERSION}"
        return key + "+redact" if self.redact else key


def ingest_paths(
    paths: Sequence[Path],
    store: MemoryStore,
    embedder: Embedder,
    *,
    exclude: Sequence[str] = (),
    prune: bool = False,
    options: IngestOptions | None = None,
    on_event: Callable[[IngestEvent], None] | None = None,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport()
    options = options or IngestOptions()
    if isinstance(store, ChromaStore):
        resume_forgetting(store, embedder, options)
    emit = on_event or (lambda event: None)
    planned = sorted(discover_files(paths, exclude), key=lambda found: _is_large(found[0]))  # large ones last
    emit(IngestEvent("planned", total=len(planned)))

    def on_part(path: str, done: int, total: int) -> None:
        emit(IngestEvent("part", total=total, path=path, done=done))

    for path, problem in planned:
        result = (
            FileResult(source_key(path), "failed", reason=problem, hint="check the path")
            if problem
            else ingest_file(path, store, embedder, options, on_part=on_part)
        )
        if result.status == "failed":
            store.record_failure(result.path, result.reason)
        report.files.append(result)
        emit(IngestEvent("file", result=result))
    if prune:
        gone = [r for r in store.sources() if not source_path(r.source).exists() and store.ingested_here(r.source)]
        if gone:
            store.mark_forgetting()
        for record in gone:
            store.remove_source(record.source)
            report.files.append(FileResult(record.source, "pruned", record.format, record.chunks))
    # Pruned sources, text a forget rule kept out (this process read it), or a forget cut short earlier:
    # the vectors that remain go into a fresh vector store (ChromaStore.finish_forgetting).
    store.finish_forgetting()
    report.seconds = time.perf_counter() - started
    return report


def _is_large(path: Path) -> bool:
    try:
        return path.suffix.lower() in files.STREAMED_SUFFIXES and path.stat().st_size > files.LARGE_FILE_BYTES
    except OSError:
        return False


def ingest_file(
    path: Path,
    store: MemoryStore,
    embedder: Embedder,
    options: IngestOptions,
    *,
    force: bool = False,
    on_part: Callable[[str, int, int], None] | None = None,
) -> FileResult:
    """Ingest one file; expected failures come back as a failed FileResult, never as an exception.

    `force` rebuilds it even when unchanged (after a new forget rule). The file is stored under
    source_key(path) (undecodable bytes of its name escaped); what is not a regular file is skipped unopened.
    A large text file goes in a part at a time (ingest_in_parts), `on_part(source, done, total)` after each."""
    source = source_key(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                return FileResult(source, "failed", reason="larger than 512 MiB", hint="split the file")
            if size > files.LARGE_FILE_BYTES and path.suffix.lower() in files.STREAMED_SUFFIXES:
                streamed = ingest_in_parts(handle, source, store, embedder, options, force=force, on_part=on_part)
                if streamed is not None:
                    return streamed
            handle.seek(0)
            data = handle.read()
    except NotRegularFile as exc:
        return FileResult(source, "skipped", reason=f"not a regular file: {exc.kind}")
    except OSError as exc:
        return FileResult(source, "failed", reason=exc.strerror or str(exc), hint="check the file's permissions")
    except PllmError as exc:
        if exc.exit_code != ExitCode.INPUT:
            raise
        return FileResult(source, "failed", reason=exc.message, hint=exc.hint or "")
    key = options.content_key(data)
    previous = store.source(source)
    if previous is not None and previous.sha256 == key and not force:
        return FileResult(source, "unchanged", previous.format, previous.chunks)
    if previous is None:
        moved = _moved(store, source, key)
        if moved is not None:
            return moved
    try:
        document = read_document(Path(source), data)
        document = _keep_to_rules(store, document, options)
        chunks = chunk_document(document, options.me)
        vectors = embed_in_batches(embedder, [c.embedding_text for c in chunks])
        record = SourceRecord(
            source=source,
            sha256=key,
            format=document.format,
            chunks=len(chunks),
            messages=len(document.messages),
            ingested_at=_now(),
        )
        store.replace_source(record, chunks, vectors)
    except NotAnExportError as exc:  # some other program's .json or .zip among the user's files
        return FileResult(source, "skipped", reason=exc.message)
    except PllmError as exc:
        if exc.exit_code != ExitCode.INPUT:
            raise  # a broken model or store is not a problem of this file
        return FileResult(source, "failed", reason=exc.message, hint=exc.hint or "")
    status: Status = "updated" if previous else "added"
    return FileResult(source, status, document.format, len(chunks), warnings=tuple(document.warnings))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _moved(store: MemoryStore, source: str, key: str) -> FileResult | None:
    """A renamed or moved file (same content, its old path gone): nothing to embed again."""
    moved_from = next(
        (
            r
            for r in store.sources_with_key(key)  # this home's own: another machine's paths are missing here
            if r.source != source and not source_path(r.source).exists() and store.ingested_here(r.source)
        ),
        None,
    )
    if moved_from is None:
        return None
    store.rename_source(moved_from.source, source)
    return FileResult(source, "moved", moved_from.format, moved_from.chunks, reason=f"from {moved_from.source}")


def _keep_to_rules(store: MemoryStore, document: Document, options: IngestOptions) -> Document:
    """The document less what forget rules drop, redacted if asked."""
    kept = apply_rules(document, store.forget_rules())
    if kept != document:  # this process now holds forgotten text: what it writes is rebuilt at the end
        store.mark_forgetting()
    return redact_document(kept) if options.redact else kept


def ingest_in_parts(
    handle: BinaryIO,
    source: str,
    store: MemoryStore,
    embedder: Embedder,
    options: IngestOptions,
    *,
    force: bool = False,
    on_part: Callable[[str, int, int], None] | None = None,
) -> FileResult | None:
    """A large markdown or text file read, chunked, embedded and committed a part at a time (files.PART_BYTES):
    memory stays bounded and a kill keeps the parts committed. Until the last part the source's sha256 reads
    "<key>+partial@<offset>": the next ingest of the same file goes on from that offset, of a changed file
    starts again. None if the file is a chat export (a WhatsApp .txt): read whole, as usual."""
    from pllm_cli.ingest.readers.exports import sniff
    from pllm_cli.ingest.readers.markdown import MarkdownSplitter

    name = Path(source).name
    if sniff(Path(source), handle.read(65536)) is not None:
        return None
    digest, size = files.hash_file(handle)
    key = options.key_of_digest(digest)
    previous = store.source(source)
    if previous is not None and previous.sha256 == key and not force:
        return FileResult(source, "unchanged", previous.format, previous.chunks)
    if previous is None and (moved := _moved(store, source, key)) is not None:
        return moved
    markdown = Path(source).suffix.lower() in (".md", ".markdown")
    fmt: Literal["markdown", "text"] = "markdown" if markdown else "text"
    offset, chunks_done = 0, 0
    if previous is not None and not force and previous.sha256.startswith(key + PARTIAL):
        offset, chunks_done = int(previous.sha256.rsplit("@", 1)[1]), previous.chunks  # resume
    splitter = MarkdownSplitter(Path(source).stem)
    if offset and markdown:  # the heading path at the offset: the parts before it are read again, not embedded
        for end, text in files.text_parts(handle, 0, name):
            splitter.feed(text)
            if end >= offset:
                break
    first = offset == 0
    try:
        for end, text in files.text_parts(handle, offset, name):
            sections = splitter.feed(text) if markdown else _plain_sections(text, Path(source).stem)
            document = _keep_to_rules(store, Document(source, fmt, splitter.title, sections=sections), options)
            chunks = chunk_document(document, options.me, start=chunks_done)
            vectors = embed_in_batches(embedder, [c.embedding_text for c in chunks])
            chunks_done += len(chunks)
            done = end >= size
            sha = key if done else f"{key}{PARTIAL}{end}"
            record = SourceRecord(source, sha, fmt, chunks_done, 0, _now())
            store.append_to_source(record, chunks, vectors, first=first)
            first = False
            if on_part is not None:
                on_part(source, end, size)
        if chunks_done == 0:
            raise InputError(f"{name}: no text found", hint="is it a scanned PDF or an empty export?")
    except PllmError as exc:
        if exc.exit_code != ExitCode.INPUT:
            raise
        if not first:  # a part is stored: the source would look partial forever; drop it
            store.remove_source(source)
        return FileResult(source, "failed", reason=exc.message, hint=exc.hint or "")
    return FileResult(source, "updated" if previous else "added", fmt, chunks_done)


def _plain_sections(text: str, title: str) -> list[Section]:
    text = text.strip()
    return [Section(heading=title, text=text)] if text else []


EMBED_BATCH = 512


def embed_in_batches(embedder: Embedder, texts: Sequence[str]) -> list[Sequence[float]]:
    """Embeddings of `texts`, computed a batch at a time so a large export never holds all its tensors at once."""
    vectors: list[Sequence[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        vectors.extend(embedder.embed_documents(texts[start : start + EMBED_BATCH]))
    return vectors


def redact_document(document: Document) -> Document:
    from pllm_cli.ingest.redact import redact

    def masked(text: str) -> str:
        return redact(text)[0]

    return replace(
        document,
        title=masked(document.title),
        sections=[
            replace(s, heading=masked(s.heading), text=masked(s.text), mail=_redact_mail(s.mail, masked))
            for s in document.sections
        ],
        messages=[
            replace(m, text=masked(m.text), speaker=masked(m.speaker), conversation=masked(m.conversation))
            for m in document.messages
        ],
    )


def _redact_mail(mail: Mail | None, masked: Callable[[str], str]) -> Mail | None:
    if mail is None:
        return None
    return replace(
        mail,
        sender=masked(mail.sender),
        to=tuple(masked(a) for a in mail.to),
        cc=tuple(masked(a) for a in mail.cc),
        subject=masked(mail.subject),
        message_id=masked(mail.message_id),
    )


@dataclass(frozen=True)
class ForgetResult:
    source: str
    chunks_before: int
    chunks_after: int
    messages_before: int
    messages_after: int
    rebuilt: bool  # False: the file is gone, the rule was applied to its stored chunks


def _forget_in_stored_chunks(store: ChromaStore, embedder: Embedder, chunks: Sequence[Chunk], rule: ForgetRule) -> None:
    """The rule applied to the stored chunks of a source whose file is gone: chunks left with no turn (or
    prose it covers) are dropped, the others lose the forgotten turns, in their context too, and are embedded
    and indexed again."""
    kept = {chunk.id: apply_to_chunk(chunk, rule) for chunk in chunks}
    changed = [new for new in kept.values() if new is not None]
    store.remove_chunks([chunk_id for chunk_id, new in kept.items() if new is None])
    if changed:
        store.update_chunks(changed, embed_in_batches(embedder, [c.embedding_text for c in changed]))
    dropped = sum(len(c.turns) for c in chunks) - sum(len(c.turns) for c in changed)
    if chunks and dropped:
        store.remove_messages(chunks[0].source, dropped)


def forget_by_rule(
    rule: ForgetRule, store: ChromaStore, embedder: Embedder, options: IngestOptions
) -> list[ForgetResult]:
    """Store `rule` (so later ingests keep to it) and apply it now to every source it touches. The caller ends
    with store.finish_forgetting() (as forget_memory does), which compacts SQLite and rebuilds the vector store."""
    store.mark_forgetting([rule])
    touched: dict[str, list[Chunk]] = {}
    for chunk in store.index.iter_chunks():
        if rule.touches(chunk):
            touched.setdefault(chunk.source, []).append(chunk)
    results = []
    for source, chunks in touched.items():
        before = store.source(source)
        assert before is not None
        path = source_path(source)
        rebuilt = path.exists() and ingest_file(path, store, embedder, options, force=True).status != "failed"
        if not rebuilt:
            _forget_in_stored_chunks(store, embedder, chunks, rule)
        after = store.source(source)
        results.append(
            ForgetResult(
                source,
                before.chunks,
                after.chunks if after else 0,
                before.messages,
                after.messages if after else 0,
                rebuilt,
            )
        )
    return results


@dataclass(frozen=True)
class ForgetReport:
    sources: dict[str, int]  # source -> chunks removed
    rules: dict[ForgetRule, list[ForgetResult]]
    rebuilt: Rebuilt | None  # the fresh vector store (None only if nothing was forgotten)


def forget_memory(
    store: ChromaStore,
    embedder: Embedder,
    options: IngestOptions,
    sources: Sequence[str] = (),
    rules: Sequence[ForgetRule] = (),
) -> ForgetReport:
    """Remove whole sources and apply forget rules, then leave no trace: SQLite compacted, and the vectors
    that remain copied into a fresh vector store that replaces the old one (ChromaStore.finish_forgetting)."""
    resume_forgetting(store, embedder, options)
    store.mark_forgetting(rules)  # from here on, a crash is finished by the next ingest or forget
    removed = {name: store.remove_source(name) for name in sources}
    by_rule = {rule: forget_by_rule(rule, store, embedder, options) for rule in rules}
    return ForgetReport(removed, by_rule, store.finish_forgetting())


def resume_forgetting(store: ChromaStore, embedder: Embedder, options: IngestOptions) -> None:
    """A forget that a crash cut short left its mark: apply every stored rule again (sources still holding what
    a rule drops are rebuilt), so that the next finish_forgetting completes it. Sources removed by name are
    gone from SQLite as soon as remove_source returns; the rebuild drops their vectors."""
    if store.forget_pending():
        for rule in store.forget_rules():
            forget_by_rule(rule, store, embedder, options)
