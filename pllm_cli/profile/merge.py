"""Merging new candidate facts into the profile, and dropping facts whose sources were forgotten.

- A candidate that says the same as an active fact confirms it: its evidence is added, its last-confirmed
  time moves on, its confidence rises. "The same" is a cosine of at least SAME_COSINE, or at least
  SIMILAR_COSINE when one fact's content words contain the other's ("runs three mornings a week" and
  "runs three mornings a week before work"),
  but not "lives in Porto" and "lives in Lisbon", which embed almost as close (0.89 with all-MiniLM-L6-v2).
- A candidate that fills the same one-valued slot as an active fact with another value (residence, job,
  age...) supersedes it if it was said later, and is superseded by it otherwise. The older fact stays, marked
  superseded, so the history is kept. A pinned fact is never superseded.
- A candidate close to a fact the user forgot is dropped: forgetting holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.profile.extract import content_words
from pllm_cli.profile.facts import Evidence, Fact, Origin
from pllm_cli.profile.state import ProfileState

SAME_COSINE = 0.93
SIMILAR_COSINE = 0.80
CONFIDENCE = {"self": 0.6, "reported": 0.4, "pinned": 1.0}
CONFIRM_STEP = 0.1
MAX_CONFIDENCE = 0.95
QUOTE_PENALTY = 0.1  # a quoted statement (the restatement failed its check) is less sure to be a fact


@dataclass(frozen=True)
class NewFact:
    category: str
    text: str
    origin: Origin
    evidence: Evidence
    vector: tuple[float, ...]
    restated: bool = True
    slot: str = ""
    value: str = ""


@dataclass
class MergeReport:
    added: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dropped_as_forgotten: int = 0

    @property
    def changed(self) -> list[str]:
        return list(dict.fromkeys(self.confirmed + self.superseded))

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "superseded": self.superseded,
            "removed": self.removed,
        }


class _Index:
    """The active facts' vectors as one matrix, for finding the facts close to a candidate at once."""

    def __init__(self, state: ProfileState, dimension: int) -> None:
        import numpy

        self.state = state
        self.ids = [f.id for f in state.active]
        rows = [f.vector if len(f.vector) == dimension else (0.0,) * dimension for f in state.active]
        self.matrix = numpy.asarray(rows, dtype=numpy.float32).reshape(len(rows), dimension)
        self.forgotten = numpy.asarray(
            [v for v in state.forgotten if len(v) == dimension], dtype=numpy.float32
        ).reshape(-1, dimension)

    def add(self, fact: Fact) -> None:
        import numpy

        if len(fact.vector) != self.matrix.shape[1]:
            return
        self.matrix = numpy.vstack([self.matrix, numpy.asarray(fact.vector, dtype=numpy.float32).reshape(1, -1)])
        self.ids.append(fact.id)

    def was_forgotten(self, vector: Sequence[float]) -> bool:
        import numpy

        if not len(self.forgotten) or len(vector) != self.forgotten.shape[1]:
            return False
        return bool((self.forgotten @ numpy.asarray(vector, dtype=numpy.float32)).max() >= SAME_COSINE)

    def close(self, vector: Sequence[float]) -> list[tuple[Fact, float]]:
        """Active facts with a cosine of at least SIMILAR_COSINE to `vector`, closest first."""
        import numpy

        if not len(self.ids) or len(vector) != self.matrix.shape[1]:
            return []
        scores = self.matrix @ numpy.asarray(vector, dtype=numpy.float32)
        facts = {f.id: f for f in self.state.facts}
        order = [int(i) for i in numpy.argsort(-scores) if scores[int(i)] >= SIMILAR_COSINE]
        return [(facts[self.ids[i]], float(scores[i])) for i in order if facts[self.ids[i]].active]


def same_fact(a: Fact | NewFact, b: Fact | NewFact, cosine: float, name: str) -> bool:
    if cosine >= SAME_COSINE:
        return True
    if cosine < SIMILAR_COSINE:
        return False
    words_a, words_b = content_words(a.text, name.split()), content_words(b.text, name.split())
    return bool(words_a and words_b) and (words_a <= words_b or words_b <= words_a)


def _later(a: str, b: str) -> bool:
    return bool(a) and (not b or a > b)


def merge(state: ProfileState, candidates: Sequence[NewFact], name: str) -> MergeReport:
    """Fold `candidates` into `state` (in place), in the order they were said."""
    report = MergeReport()
    if not candidates:
        return report
    index = _Index(state, max((len(c.vector) for c in candidates), default=0))
    held = {_said(e): f.id for f in state.facts for e in f.evidence}
    for new in sorted(candidates, key=lambda c: c.evidence.said_at):
        if _said(new.evidence) in held:  # read before (a grown chat re-cut into new chunks): refresh the chunk id
            holder = next(f for f in state.facts if f.id == held[_said(new.evidence)])
            _confirm(state, holder, new)
            continue
        if index.was_forgotten(new.vector):
            report.dropped_as_forgotten += 1
            continue
        match = next((f for f, cosine in index.close(new.vector) if same_fact(f, new, cosine, name)), None)
        if match is not None:
            if _confirm(state, match, new):
                report.confirmed.append(match.id)
            continue
        fact = Fact(
            id=_unique_id(state, new),
            category=new.category,
            text=new.text,
            origin=new.origin,
            evidence=(new.evidence,),
            first_seen=new.evidence.said_at,
            last_confirmed=new.evidence.said_at,
            confidence=CONFIDENCE[new.origin] - (0 if new.restated else QUOTE_PENALTY),
            slot=new.slot,
            value=new.value,
            vector=new.vector,
        )
        rivals = [f for f in state.active if new.slot and f.slot == new.slot and f.value != new.value]
        winner = next((f for f in rivals if f.origin == "pinned"), None) or next(
            (f for f in rivals if not _later(new.evidence.said_at, f.last_confirmed)), None
        )
        if winner is not None:
            fact = fact.with_(status="superseded", superseded_by=winner.id)
        else:
            for rival in rivals:
                state.replace_fact(rival.with_(status="superseded", superseded_by=fact.id))
                report.superseded.append(rival.id)
        state.facts.append(fact)
        index.add(fact)
        report.added.append(fact.id)
    return report


def _said(evidence: Evidence) -> tuple[str, ...]:
    """What identifies one saying of a sentence: its message (chunks are re-cut when a chat grows), or its
    chunk for text without message ids."""
    if evidence.message_ids:
        return (evidence.source, *evidence.message_ids, evidence.quote)
    return (evidence.chunk_id, evidence.quote)


def _confirm(state: ProfileState, fact: Fact, new: NewFact) -> bool:
    """Add `new` as evidence of `fact`; False if it is a sentence already counted (read again after a crash,
    or from a chunk re-cut around the same message: then only the chunk id is brought up to date)."""
    said = _said(new.evidence)
    if any(_said(e) == said for e in fact.evidence):
        evidence = tuple(new.evidence if _said(e) == said else e for e in fact.evidence)
        if evidence != fact.evidence:
            state.replace_fact(fact.with_(evidence=evidence))
        return False
    origin: Origin = "self" if fact.origin == "reported" and new.origin == "self" else fact.origin
    state.replace_fact(
        fact.with_(
            evidence=(*fact.evidence, new.evidence),
            last_confirmed=max(fact.last_confirmed, new.evidence.said_at),
            first_seen=min(filter(None, (fact.first_seen, new.evidence.said_at)), default=""),
            confidence=min(MAX_CONFIDENCE, max(fact.confidence, CONFIDENCE[origin]) + CONFIRM_STEP)
            if fact.origin != "pinned"
            else fact.confidence,
            origin=origin,
        )
    )
    return True


def _unique_id(state: ProfileState, new: NewFact) -> str:
    taken = {f.id for f in state.facts}
    salt = 0
    while (candidate := Fact.make_id(new.category, new.text, f"{new.evidence.chunk_id}{salt or ''}")) in taken:
        salt += 1
    return candidate


def memory_keys(refs: Iterable[tuple[str, str, list[str]]]) -> tuple[set[str], set[tuple[str, str]]]:
    """The chunk ids and (source, message id) pairs in memory, from `ChunkIndex.chunk_refs()`."""
    chunks: set[str] = set()
    messages: set[tuple[str, str]] = set()
    for chunk_id, source, ids in refs:
        chunks.add(chunk_id)
        messages.update((source, m) for m in ids)
    return chunks, messages


def prune(state: ProfileState, chunks: Collection[str], messages: Collection[tuple[str, str]]) -> list[str]:
    """Drop evidence whose chunk (and message) left memory; remove facts left with none (pinned ones stay),
    and bring back a fact superseded by one removed. Returns the ids removed."""
    removed: list[str] = []
    kept: list[Fact] = []
    for fact in state.facts:
        if fact.origin == "pinned":
            kept.append(fact)
            continue
        alive = tuple(
            e
            for e in fact.evidence
            if e.chunk_id in chunks or any((e.source, m) in messages for m in e.message_ids if m)
        )
        if not alive:
            removed.append(fact.id)
        else:
            kept.append(fact if alive == fact.evidence else fact.with_(evidence=alive))
    state.facts = kept
    revive(state, removed)
    return removed


def revive(state: ProfileState, removed: Collection[str]) -> None:
    """Facts superseded by removed ones: the latest of each slot becomes active again, the others are then
    superseded by it (so a slot never has two active values)."""
    gone = set(removed)
    orphans = sorted((f for f in state.facts if f.superseded_by in gone), key=lambda f: f.last_confirmed)
    heirs: dict[str, str] = {}
    for fact in reversed(orphans):  # the latest first
        key = fact.slot or fact.id
        if key in heirs or (fact.slot and any(f.active and f.slot == fact.slot for f in state.facts)):
            heir = heirs.get(key) or next(f.id for f in state.facts if f.active and f.slot == fact.slot)
            state.replace_fact(fact.with_(superseded_by=heir))
        else:
            heirs[key] = fact.id
            state.replace_fact(fact.with_(status="active", superseded_by=""))
