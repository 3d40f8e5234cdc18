"""The profile as people read it (`pllm profile show`) and as the model reads it (within a token budget: the
pinned facts always, the most confident ones for every question, then those most relevant to the question)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.profile.facts import CATEGORIES, CATEGORY_TITLES, Fact
from pllm_cli.profile.state import ProfileState
from pllm_cli.profile.style import WritingStyle

TokenCounter = Callable[[str], int]

# "write a reply to Jonas", "draft an email", "in my voice", "sound like me", "as I would say it"
_VOICE = re.compile(
    r"\b(in my (?:voice|style|words|tone)|sound(?:s|ing)? like me|as i would (?:say|write)|like i (?:would )?write|"
    r"(?:write|draft|compose|answer|reply)\b.*\b(?:message|reply|text|email|e-mail|mail|answer|note|post|tweet)\b)",
    re.IGNORECASE,
)


def wants_my_voice(question: str) -> bool:
    """True when the user asks for text written as they would write it."""
    return bool(_VOICE.search(question))


def fact_line(fact: Fact) -> str:
    told = f" (told by {fact.reported_by})" if fact.origin == "reported" else ""
    return f"- {fact.text}{told}"


def describe(state: ProfileState, *, all_facts: bool = False) -> str:
    """The readable profile: facts by category with their id, confidence and sources; then the style."""
    lines = [f"# Profile of {state.name or 'you'} (version {state.version}, {state.updated_at})"]
    for category in CATEGORIES:
        facts = [f for f in state.facts if f.category == category and (f.active or all_facts)]
        if not facts:
            continue
        lines += ["", f"## {CATEGORY_TITLES[category]}"]
        for fact in sorted(facts, key=lambda f: (f.origin != "pinned", not f.active, -f.confidence)):
            marks = ["pinned" if fact.origin == "pinned" else f"{fact.confidence:.0%}"]
            if fact.origin == "reported":
                marks.append(f"told by {fact.reported_by}")
            if not fact.active:
                marks.append(f"superseded by {fact.superseded_by}")
            if fact.evidence:
                sources = fact.sources
                marks.append(sources[0].rsplit("/", 1)[-1] + (f" +{len(sources) - 1}" if len(sources) > 1 else ""))
                marks.append(f"last {fact.last_confirmed[:10]}" if fact.last_confirmed else "")
            lines.append(f"- {fact.text}  [{fact.id} · {' · '.join(m for m in marks if m)}]")
    style = WritingStyle.from_dict(state.style) if state.style else None
    if style is not None and style.messages:
        lines += ["", f"## {CATEGORY_TITLES['style']}", style.describe()]
    if len(lines) == 1:
        lines.append("\nNo facts yet.")
    return "\n".join(lines)


@dataclass
class ProfileSelection:
    """The profile text for one prompt and which facts made it in."""

    text: str = ""
    used: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    voice: bool = False
    stable_lines: int = 0  # the first lines of `text` do not depend on the question (pinned and core facts)

    def to_dict(self) -> dict[str, Any]:
        return {"facts_used": self.used, "facts_cut": self.cut, "writing_style": self.voice}

    @property
    def stable_text(self) -> str:
        """The beginning of `text` that every question gets."""
        return "\n".join(self.text.split("\n")[: self.stable_lines]) if self.stable_lines else ""


# The share of the profile's room that holds its core: the most confident facts, the same for every question.
# They come first, after the pinned facts, so the prompt's beginning stays the same and the model can keep it
# evaluated (prefix_cache.py); the rest of the room goes to the facts most relevant to the question.
CORE_SHARE = 0.5


def _relevance(facts: Sequence[Fact], question_vector: Sequence[float] | None) -> list[float]:
    import numpy

    if question_vector is None or not facts:
        return [0.0] * len(facts)
    dimension = len(question_vector)
    rows = numpy.asarray(
        [f.vector if len(f.vector) == dimension else (0.0,) * dimension for f in facts], dtype=numpy.float32
    )
    return [float(v) for v in rows @ numpy.asarray(question_vector, dtype=numpy.float32)]


def select(
    state: ProfileState,
    question: str,
    question_vector: Sequence[float] | None,
    room: int,
    count: TokenCounter,
) -> ProfileSelection:
    """The lines of the profile for `question` within `room` tokens: pinned facts; the core (the most
    confident facts, within CORE_SHARE of the room); how the user writes, when they ask for text in their
    voice; then the other facts by relevance to the question (weighted by confidence)."""
    selection = ProfileSelection()
    lines: list[str] = []
    used = 0

    def add(line: str, limit: int = room) -> bool:
        nonlocal used
        cost = count(line) + (1 if lines else 0)  # a newline between lines
        if used + cost > limit:
            return False
        lines.append(line)
        used += cost
        return True

    active = state.active
    pinned = [f for f in active if f.origin == "pinned"]
    others = sorted((f for f in active if f.origin != "pinned"), key=lambda f: (-f.confidence, f.id))
    for fact in pinned:  # always: cut only if the budget cannot hold them at all
        (selection.used if add(fact_line(fact)) else selection.cut).append(fact.id)
    core_limit = used + int(CORE_SHARE * max(room - used, 0))
    rest = []
    for fact in others:
        if add(fact_line(fact), core_limit):
            selection.used.append(fact.id)
        else:
            rest.append(fact)
    selection.stable_lines = len(lines)
    style = WritingStyle.from_dict(state.style) if state.style else None
    if style is not None and style.messages and wants_my_voice(question):
        selection.voice = add(style.voice_instructions(state.name))
    scores = _relevance(rest, question_vector) if question_vector is not None else [1.0] * len(rest)
    ranked = sorted(zip(rest, scores, strict=True), key=lambda p: p[1] * (0.5 + 0.5 * p[0].confidence), reverse=True)
    for fact, _ in ranked:
        (selection.used if add(fact_line(fact)) else selection.cut).append(fact.id)
    selection.text = "\n".join(lines)
    return selection


class PromptProfile:
    """The profile for `ChatSession`: for each question, the facts that fit the room they are given."""

    def __init__(
        self, state: ProfileState, embed: Callable[[str], Sequence[float]] | None, count: TokenCounter
    ) -> None:
        """`embed` None (the profile was embedded by another model): facts are ranked by confidence alone."""
        self.state = state
        self.embed = embed
        self.count = count

    def __call__(self, question: str, room: int) -> ProfileSelection:
        ranked = any(f.origin != "pinned" for f in self.state.active)
        vector = self.embed(question) if ranked and self.embed is not None else None
        return select(self.state, question, vector, room, self.count)

    def __str__(self) -> str:
        return describe(self.state)
