"""Checking an answer against the memories it was given, without trusting the model that wrote it.

A small model cites badly and invents fluently, so pllm does both checks itself, on the words:

- support: the answer's own words (its content words that are not already in the question, stemmed) are
  looked up in each memory, turn by turn for a chat; a memory supports the answer when it holds at least
  SUPPORTED of them. The memories that support it are its citations, best first.
  A chat message is looked up with its time ("8 May 2023 13:56"), so a date in the answer can be supported.

- attribution: a question about one person of the chats ("What did Caroline find on her walk?") is checked
  before the answer is: if the messages that best match what it asks about (its own words, without the names)
  are someone else's, and none of that person's matches as well, the memories say it of someone else. People
  tell their own news, so this catches a question put to the wrong person, the commonest way to ask about
  what never happened (half of LoCoMo's unanswerable questions, docs/answers.md). It looks at the question
  and the memories only, never at the model's answer.

An answer no memory supports, or to a question the memories answer for someone else, is not trusted: `pllm
ask` says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pllm_cli.memory.passages import Passage
from pllm_cli.memory.records import spoken_time
from pllm_cli.porter import stem

SUPPORTED = 0.5  # share of the answer's own words one memory must hold
ATTRIBUTED = 0.3  # share of the question's own words another person's message must hold to be "theirs"
MOST_CITED = 3
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CITATION = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
# function words and the words of questions and abstentions: they support nothing
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    also yes yeah oh ok okay really much many get got like one thing things know think said say says
    memories memory notes note mentioned information available""".split()
)


def content_words(text: str) -> set[str]:
    """The stemmed words of `text` that carry meaning (no stopwords, no citation markers)."""
    words = (w.lower() for w in _WORD.findall(_CITATION.sub(" ", text)))
    return {stem(w) for w in words if w not in STOPWORDS}


@dataclass(frozen=True)
class Unit:
    """The smallest piece of a memory that is checked: a chat turn (with its speaker) or a prose chunk."""

    memory: int  # 1-based number of its memory in the prompt
    speaker: str
    text: str


def units(memories: Sequence[Passage]) -> list[Unit]:
    found: list[Unit] = []
    for number, memory in enumerate(memories, start=1):
        if memory.kind == "chat":
            found += [Unit(number, p.turn.speaker, f"{spoken_time(p.turn.time)} {p.turn.text}") for p in memory.turns]
        else:
            found += [Unit(number, "", chunk.text) for chunk in memory.chunks[:1]]
    return found


@dataclass(frozen=True)
class Misattribution:
    """The memories say what the question asks about, but of someone else."""

    named: str  # the person the question is about
    speaker: str  # the person whose message holds it
    memory: int  # the memory holding that message

    def to_dict(self) -> dict[str, Any]:
        return {"named": self.named, "speaker": self.speaker, "memory": self.memory}


@dataclass
class Grounding:
    """What the memories say about an answer."""

    cited: list[int] = field(default_factory=list)  # memories supporting it, best first
    support: float = 0.0  # the best share of the answer's own words one memory holds (1.0: nothing to check)
    misattribution: Misattribution | None = None

    @property
    def trusted(self) -> bool:
        return self.support >= SUPPORTED and self.misattribution is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trusted": self.trusted,
            "support": round(self.support, 3),
            "cited": self.cited,
            "misattribution": self.misattribution.to_dict() if self.misattribution else None,
        }


def _names(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def misattributed(question: str, memories: Sequence[Passage]) -> Misattribution | None:
    """Whether the memories say what `question` asks about one person of their chats of someone else."""
    pieces = units(memories)
    speakers = {u.speaker for u in pieces if u.speaker}
    asked = _names(question)
    named = [s for s in speakers if s.casefold() in asked]
    if len(named) != 1:  # nobody, or several people: nothing to check it against
        return None
    person = named[0]
    topic = content_words(question) - {word for s in speakers for word in content_words(s)}
    if not topic:
        return None
    theirs, said = 0.0, None  # another person's best match, and that message
    own = 0.0  # the person's best match, or a note's (whose author is not known)
    for unit in pieces:
        share = len(topic & content_words(unit.text)) / len(topic)
        if unit.speaker and unit.speaker != person:
            if share > theirs:
                theirs, said = share, unit
        else:
            own = max(own, share)
    if said is None or theirs < ATTRIBUTED or own >= theirs:
        return None
    return Misattribution(named=person, speaker=said.speaker, memory=said.memory)


def ground(answer: str, question: str, memories: Sequence[Passage]) -> Grounding:
    """Check `answer` (to `question`) against the memories that were in its prompt."""
    own = content_words(answer) - content_words(question)
    pieces = units(memories)
    wrong_person = misattributed(question, memories)
    if not own:  # "Yes.", or the question's own words: nothing to look up
        return Grounding(support=1.0, misattribution=wrong_person)
    scored = [(len(own & content_words(u.text)) / len(own), u) for u in pieces]
    best: dict[int, float] = {}
    for share, unit in scored:
        best[unit.memory] = max(best.get(unit.memory, 0.0), share)
    support = max(best.values(), default=0.0)
    cited = sorted((m for m, s in best.items() if s >= SUPPORTED), key=lambda m: -best[m])[:MOST_CITED]
    return Grounding(cited=cited, support=support, misattribution=wrong_person)
