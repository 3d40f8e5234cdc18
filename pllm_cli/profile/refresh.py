"""`pllm profile refresh`: read what memory gained since the last refresh, merge the new facts in, drop the
facts whose sources left memory, and save a new version, all under the profile lock."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.embedding import Embedder
from pllm_cli.errors import NotFoundError
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.memory.records import Chunk
from pllm_cli.profile.classify import Categorizer, slot_of
from pllm_cli.profile.extract import Candidate, fact_grammar, restate, statements
from pllm_cli.profile.merge import MergeReport, NewFact, memory_keys, merge, prune
from pllm_cli.profile.state import ProfileState
from pllm_cli.profile.style import writing_style
from pllm_cli.profile.turns import user_messages
from pllm_cli.runtime import StructuredModel

READ_BATCH = 64  # chunks read from SQLite at a time


@dataclass(frozen=True)
class Progress:
    done: int  # chunks read so far
    total: int
    statements: int


@dataclass
class RefreshReport:
    version: int = 0
    saved: bool = False
    chunks_read: int = 0
    statements: int = 0
    restated: int = 0
    quoted: int = 0
    facts: int = 0
    seconds: float = 0.0
    merge: MergeReport = field(default_factory=MergeReport)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "saved": self.saved,
            **self.merge.to_dict(),
            "facts": self.facts,
            "chunks_read": self.chunks_read,
            "statements": self.statements,
            "restated": self.restated,
            "quoted": self.quoted,
            "seconds": round(self.seconds, 2),
        }


def refresh(
    state: ProfileState,
    index: ChunkIndex,
    embedder: Embedder,
    model: StructuredModel,
    *,
    name: str,
    me: Collection[str],
    on_progress: Callable[[Progress], None] | None = None,
    between: Callable[[], None] | None = None,
) -> RefreshReport:
    """Bring `state` up to date with memory, in place. Whether to save it is the caller's: `report.saved`
    says if anything changed. `between` is called after each statement the model restates."""
    started = time.perf_counter()
    report = RefreshReport(version=state.version)
    refs = list(index.chunk_refs())
    chunk_ids, messages = memory_keys(refs)
    if not refs and not state.facts:
        raise NotFoundError("memory is empty: there is nothing to build a profile from", hint="pllm ingest PATH")
    names = tuple(me) or ((name,) if name else ())
    if state.me != sorted(n.casefold() for n in names):  # who "I" is changed: read everything again
        state.read = set()
        state.me = sorted(n.casefold() for n in names)
    model_changed = _reembed_if_needed(state, embedder)
    new_ids = [chunk_id for chunk_id, _, _ in refs if chunk_id not in state.read]
    who = name or "the user"
    reader = ChunkReader(index, embedder, model, who, names, between=between)
    candidates: list[NewFact] = []
    for start in range(0, len(new_ids), READ_BATCH):
        batch = index.get(new_ids[start : start + READ_BATCH])
        for chunk_id in new_ids[start : start + READ_BATCH]:
            chunk = batch.get(chunk_id)
            if chunk is not None:
                candidates += reader.read(chunk, report)
            report.chunks_read += 1
            if on_progress:
                on_progress(Progress(report.chunks_read, len(new_ids), report.statements))
    report.merge = merge(state, candidates, who)
    report.merge.removed = prune(state, chunk_ids, messages)
    style = writing_style(list(user_messages((c for c in index.iter_chunks() if c.kind == "chat"), names)))
    changed = bool(report.merge.added or report.merge.changed or report.merge.removed or model_changed)
    changed = changed or style.to_dict() != state.style or state.name != who or state.read != chunk_ids
    state.read = chunk_ids
    state.style = style.to_dict()
    state.name = who
    state.embedding_model = embedder.name
    report.saved = changed or not state.version
    report.facts = len(state.active)
    report.seconds = time.perf_counter() - started
    return report


class ChunkReader:
    """Turns one memory chunk into candidate facts: statements, restated by the model, embedded, classified."""

    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        model: StructuredModel,
        name: str,
        me: Collection[str],
        *,
        between: Callable[[], None] | None = None,
    ) -> None:
        self.between = between or (lambda: None)
        self.formats = {record.source: (record.format, record.ingested_at) for record in index.sources()}
        self.embedder = embedder
        self.model = model
        self.name = name
        self.me = me
        self.grammar = fact_grammar(name)
        self.categorizer = Categorizer(embedder)

    def read(self, chunk: Chunk, report: RefreshReport) -> list[NewFact]:
        source_format, ingested_at = self.formats.get(chunk.source, ("", ""))
        found = statements(chunk, self.me, source_format=source_format, ingested_at=ingested_at)
        if not found:
            return []
        report.statements += len(found)
        restated: list[Candidate] = []
        for statement in found:
            restated.append(restate(self.model, statement, self.name, self.grammar))
            self.between()
        report.restated += sum(c.restated for c in restated)
        report.quoted += sum(not c.restated for c in restated)
        vectors = self.embedder.embed([c.text for c in restated] + [s.text for s in found])
        categories = self.categorizer.categories(vectors[len(found) :])  # by what was said, not the restatement
        facts = []
        for candidate, vector, category in zip(restated, vectors[: len(found)], categories, strict=True):
            statement = candidate.statement
            slot, value = slot_of(statement.text) if statement.origin == "self" else ("", "")
            facts.append(
                NewFact(
                    category=category,
                    text=candidate.text,
                    origin=statement.origin,
                    evidence=statement.evidence,
                    vector=tuple(float(v) for v in vector),
                    restated=candidate.restated,
                    slot=slot,
                    value=value,
                )
            )
        return facts


def _reembed_if_needed(state: ProfileState, embedder: Embedder) -> bool:
    """Facts embedded by another model (or not at all, pinned by hand) get vectors from this one."""
    import numpy

    stale = [f for f in state.facts if not f.vector or state.embedding_model != embedder.name]
    if not stale:
        return False
    vectors = embedder.embed([f.text for f in stale])
    fresh = {f.id: tuple(float(v) for v in numpy.asarray(vec)) for f, vec in zip(stale, vectors, strict=True)}
    state.facts = [f.with_(vector=fresh[f.id]) if f.id in fresh else f for f in state.facts]
    if state.embedding_model != embedder.name:
        state.forgotten = []  # their vectors cannot be compared any more
    state.embedding_model = embedder.name
    return True
