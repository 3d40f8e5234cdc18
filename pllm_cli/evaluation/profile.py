"""`pllm eval profile`: how much of what LoCoMo's annotators noted about a speaker the profile recovers.

Each conversation is ingested into its own temporary memory with one speaker as the user (`me`), and a
profile is built from nothing with the same refresh users run. Then:

- recovered: the share of that speaker's annotated facts (the dataset's `observation` field) with a profile
  fact whose embedding cosine is at least MATCH_COSINE. The threshold is not tuned on recovery: it is the
  cosine that the profile of ANOTHER conversation (a different person, who cannot hold these facts) reaches
  for only about 5% of the observations (the "chance match rate", reported alongside so it can be checked);
- supported: the share of profile facts whose every content word is in the sentence they cite (the check the
  extraction applies, re-run on what was saved), and the share whose cited message is one the annotators
  drew an observation from (an independent sign that the sentence was worth a fact);
- refresh time per 1,000 messages of the conversation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pllm_cli.embedding import Embedder
from pllm_cli.evaluation.conversations import conversation_memories
from pllm_cli.evaluation.locomo import parse_evidence
from pllm_cli.profile.extract import SUPPORT_THRESHOLD, support
from pllm_cli.profile.refresh import refresh
from pllm_cli.profile.state import ProfileState
from pllm_cli.runtime import StructuredModel

MATCH_COSINE = 0.6  # see the module docstring: measured, ~5% chance matches with all-MiniLM-L6-v2


@dataclass
class ConversationResult:
    sample_id: str
    speaker: str
    messages: int
    user_messages: int
    observations: int
    facts: int
    recovered: float
    chance: float
    supported: float
    annotated: float
    seconds: float
    restated: int
    quoted: int
    own_cosines: list[float] = field(default_factory=list, repr=False)
    chance_cosines: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_cosines")}


@dataclass
class ProfileEvaluation:
    threshold: float = MATCH_COSINE
    conversations: list[ConversationResult] = field(default_factory=list)

    def overall(self) -> dict[str, float]:
        results = self.conversations
        observations = sum(r.observations for r in results) or 1
        facts = sum(r.facts for r in results) or 1
        messages = sum(r.messages for r in results) or 1
        return {
            "observations": sum(r.observations for r in results),
            "facts": sum(r.facts for r in results),
            "recovered": sum(r.recovered * r.observations for r in results) / observations,
            "chance": sum(r.chance * r.observations for r in results) / observations,
            "supported": sum(r.supported * r.facts for r in results) / facts,
            "annotated": sum(r.annotated * r.facts for r in results) / facts,
            "seconds_per_1000_messages": 1000 * sum(r.seconds for r in results) / messages,
        }

    def curve(self) -> list[dict[str, float]]:
        """Recovered and chance-match shares at other thresholds: the trade-off behind MATCH_COSINE."""
        own = [c for r in self.conversations for c in r.own_cosines]
        other = [c for r in self.conversations for c in r.chance_cosines]
        return [
            {
                "threshold": t / 100,
                "recovered": round(sum(c >= t / 100 for c in own) / max(len(own), 1), 4),
                "chance": round(sum(c >= t / 100 for c in other) / max(len(other), 1), 4),
            }
            for t in range(40, 85, 5)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "curve": self.curve(),
            "overall": {k: round(v, 4) for k, v in self.overall().items()},
            "conversations": [r.to_dict() for r in self.conversations],
        }


def _observations(sample: dict[str, Any], speaker: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for session in (sample.get("observation") or {}).values():
        for item in (session or {}).get(speaker, []):
            if isinstance(item, list) and item and isinstance(item[0], str):
                ids = parse_evidence(item[1]) if len(item) > 1 and item[1] else []
                found.append((item[0], ids))
    return found


def _max_cosines(embedder: Embedder, queries: Sequence[str], facts: Sequence[Sequence[float]]) -> list[float]:
    import numpy

    if not queries:
        return []
    if not facts:
        return [0.0] * len(queries)
    q = numpy.asarray(embedder.embed(list(queries)), dtype=numpy.float32)
    f = numpy.asarray(facts, dtype=numpy.float32)
    return [float(v) for v in (q @ f.T).max(axis=1)]


def evaluate_profile(
    path: Path,
    embedder: Embedder,
    model: StructuredModel,
    *,
    speaker: str = "a",
    limit: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ProfileEvaluation:
    def user(sample: dict[str, Any]) -> tuple[str, ...]:
        return (str(sample["conversation"][f"speaker_{speaker}"]),)

    built: list[tuple[dict[str, Any], str, ProfileState, float, int]] = []
    for sample, records, store in conversation_memories(path, embedder, me=user, limit=limit):
        (name,) = user(sample)
        state = ProfileState()
        started = time.perf_counter()
        refreshed = refresh(state, store.index, embedder, model, name=name, me=(name,))
        seconds = time.perf_counter() - started
        built.append((sample, name, state, seconds, len(records)))
        if on_progress:
            on_progress(
                f"{sample['sample_id']} ({name}): {len(records)} messages, {len(state.active)} facts "
                f"({refreshed.restated} restated, {refreshed.quoted} quoted) in {seconds:.0f} s"
            )
    evaluation = ProfileEvaluation()
    for number, (sample, name, state, seconds, messages) in enumerate(built):
        observations = _observations(sample, name)
        texts = [text for text, _ in observations]
        facts = state.active
        own = _max_cosines(embedder, texts, [f.vector for f in facts])
        other_state = built[(number + 1) % len(built)][2] if len(built) > 1 else ProfileState()
        other = _max_cosines(embedder, texts, [f.vector for f in other_state.active])
        cited = {i for _, ids in observations for i in ids}
        user_turns = sum(
            1
            for session, turns in sample["conversation"].items()
            if session.startswith("session_") and isinstance(turns, list)
            for t in turns
            if t.get("speaker") == name
        )
        checked = [
            f
            for f in facts
            if any(
                support(f.text, e.quote, name) >= SUPPORT_THRESHOLD or f.text.endswith(f'"{e.quote}"')
                for e in f.evidence
            )
        ]
        evaluation.conversations.append(
            ConversationResult(
                sample_id=str(sample["sample_id"]),
                speaker=name,
                messages=messages,
                user_messages=user_turns,
                observations=len(texts),
                facts=len(facts),
                recovered=sum(c >= MATCH_COSINE for c in own) / max(len(own), 1),
                chance=sum(c >= MATCH_COSINE for c in other) / max(len(other), 1),
                supported=len(checked) / max(len(facts), 1),
                annotated=sum(any(m in cited for e in f.evidence for m in e.message_ids) for f in facts)
                / max(len(facts), 1),
                seconds=seconds,
                restated=sum(1 for f in facts if not f.text.endswith('"')),
                quoted=sum(1 for f in facts if f.text.endswith('"')),
                own_cosines=own,
                chance_cosines=other,
            )
        )
    return evaluation


def render_table(evaluation: ProfileEvaluation) -> str:
    header = (
        f"{'conversation':<14} {'user':<10} {'obs':>5} {'facts':>6} {'recovered':>10} {'chance':>7} "
        f"{'supported':>10} {'annotated':>10} {'s/1k msg':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in evaluation.conversations:
        lines.append(
            f"{r.sample_id:<14} {r.speaker:<10} {r.observations:>5} {r.facts:>6} {100 * r.recovered:>10.1f} "
            f"{100 * r.chance:>7.1f} {100 * r.supported:>10.1f} {100 * r.annotated:>10.1f} "
            f"{1000 * r.seconds / max(r.messages, 1):>9.0f}"
        )
    o = evaluation.overall()
    lines.append(
        f"{'all':<14} {'':<10} {int(o['observations']):>5} {int(o['facts']):>6} {100 * o['recovered']:>10.1f} "
        f"{100 * o['chance']:>7.1f} {100 * o['supported']:>10.1f} {100 * o['annotated']:>10.1f} "
        f"{o['seconds_per_1000_messages']:>9.0f}"
    )
    return "\n".join(lines)
