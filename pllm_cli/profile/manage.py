"""What the profile commands do, under the profile lock: refresh, pin, forget, and the lineage with memory."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from pllm_cli.embedding import Embedder
from pllm_cli.errors import InputError, StoreError
from pllm_cli.locking import exclusive
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.profile.classify import Categorizer, slot_of
from pllm_cli.profile.facts import CATEGORIES, Fact
from pllm_cli.profile.merge import memory_keys, prune, revive
from pllm_cli.profile.refresh import Progress, RefreshReport, refresh
from pllm_cli.profile.state import ProfileFiles, ProfileState, now
from pllm_cli.runtime import StructuredModel

MAX_PIN_CHARS = 500


@contextmanager
def profile_lock(files: ProfileFiles, wait: float = 0.0) -> Iterator[None]:
    with exclusive(files.paths.profile_lock_file, "changing this profile", wait=wait):
        yield


def refresh_profile(
    files: ProfileFiles,
    index: ChunkIndex,
    embedder: Embedder,
    model: StructuredModel,
    *,
    name: str,
    me: Collection[str],
    rebuild: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    between: Callable[[], None] | None = None,
) -> RefreshReport:
    """Refresh and save as a new version if anything changed (the caller holds the lock). `between` is called
    after each statement the model restates (`pllm serve` answers waiting questions there)."""
    if rebuild:
        try:
            state = files.load()
        except StoreError:  # a damaged profile: start again (its history stays)
            state = ProfileState(version=max((v["version"] for v in files.history(all_saved=True)), default=0))
        state.facts = [f for f in state.facts if f.origin == "pinned"]
        state.read = set()
    else:
        state = files.load()
    report = refresh(state, index, embedder, model, name=name, me=me, on_progress=on_progress, between=between)
    if report.saved:
        files.save(state, "rebuild" if rebuild else "refresh", report.to_dict())
    report.version = state.version
    return report


def pin(files: ProfileFiles, text: str, embedder: Embedder, category: str | None = None) -> Fact:
    text = " ".join(text.split())
    if not text:
        raise InputError("the fact to pin is empty", hint='pllm profile pin "I am vegetarian"')
    if len(text) > MAX_PIN_CHARS:
        raise InputError(f"a pinned fact holds at most {MAX_PIN_CHARS} characters", hint="pin a shorter sentence")
    if category is not None and category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}", hint="use one of: " + ", ".join(CATEGORIES))
    state = files.load()
    vector = embedder.embed([text])[0]
    when = now()[:16].replace("T", " ")  # the form evidence times take: "2026-01-27 21:15"
    fact = pinned_fact(text, category or Categorizer(embedder).categories([vector])[0], vector, when)
    if any(f.id == fact.id and f.active for f in state.facts):
        return fact
    state.facts = [f for f in state.facts if f.id != fact.id] + [fact]
    state.embedding_model = state.embedding_model or embedder.name
    files.save(state, "pin", {"added": [fact.id], "changed": [], "removed": []})
    return fact


def pinned_fact(text: str, category: str, vector: Any, when: str) -> Fact:
    """A fact the user states; it holds its slot ("I live in Lisbon") against anything extracted later."""
    import numpy

    return Fact(
        id=Fact.make_id(category, text, "pinned"),
        category=category,
        text=text,
        origin="pinned",
        first_seen=when,
        last_confirmed=when,
        confidence=1.0,
        slot=slot_of(text)[0],
        value=slot_of(text)[1],
        vector=tuple(float(v) for v in numpy.asarray(vector)),
    )


def forget(files: ProfileFiles, fact_id: str) -> Fact:
    """Remove a fact; its vector is kept (not its text) so that extraction never brings it back."""
    state = files.load(required=True)
    fact = state.find(fact_id)
    state.facts = [f for f in state.facts if f.id != fact.id]
    revive(state, [fact.id])
    if fact.vector:
        state.forgotten.append(fact.vector)
    files.save(state, "forget", {"added": [], "changed": [], "removed": [fact.id]})
    files.scrub(fact.id)
    return fact


def drop_facts_of_forgotten_memory(files: ProfileFiles, index: ChunkIndex) -> list[Fact]:
    """After `pllm memory forget`: remove the facts that came only from what was forgotten."""
    if not files.exists:
        return []
    state = files.load()
    chunks, messages = memory_keys(index.chunk_refs())
    before = {f.id: f for f in state.facts}
    removed = prune(state, chunks, messages)
    if removed:
        state.read &= chunks
        files.save(state, "memory forget", {"added": [], "changed": [], "removed": removed})
    return [before[i] for i in removed]


def diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Facts added, removed and changed (text, status or category) between two versions' fact lists."""
    before = {f["id"]: f for f in old}
    after = {f["id"]: f for f in new}
    keys = ("text", "status", "category")
    return {
        "added": [after[i] for i in after if i not in before],
        "removed": [before[i] for i in before if i not in after],
        "changed": [
            {"id": i, **{k: [before[i][k], after[i][k]] for k in keys if before[i][k] != after[i][k]}}
            for i in after
            if i in before and any(before[i][k] != after[i][k] for k in keys)
        ],
    }
