"""Which category a statement belongs to (by embedding, against a few descriptions of each), and which
one-valued "slot" it fills (by pattern: where the user lives, their job, age...), so that a newer value can
supersede an older one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from pllm_cli.embedding import Embedder

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "identity": (
        "who I am: my name, my age, where I live, where I am from, my gender and identity",
        "I am a transgender woman",
        "I live in Lisbon",
        "I grew up in a small town",
        "my health: I am allergic to nuts",
    ),
    "preferences": (
        "what I like and dislike: favourite food, music, books, films, hobbies",
        "I love hiking",
        "my favourite book is",
        "I hate coffee",
    ),
    "relationships": (
        "my family, friends, partner, children, pets",
        "my sister lives nearby",
        "my husband and kids",
        "my dog Luna",
    ),
    "goals": (
        "my goals and plans for the future, what I want to achieve",
        "I plan to run a marathon",
        "I want to adopt a child",
        "I'm saving for a house",
    ),
    "routines": (
        "my habits and routines: what I do every day or week",
        "every morning I go for a run",
        "I usually cook on Sundays",
        "I meditate daily",
    ),
    "work": (
        "my job, career, studies and skills",
        "I work as a nurse",
        "I am studying counseling",
        "I can speak three languages",
    ),
}

_VALUE = r"(?P<v>[\w'&.-]+(?: [\w'&.-]+){0,3})"
_CAPITALISED = r"(?P<v>[A-Z][\w'&.-]*(?: [A-Z][\w'&.-]*){0,3})"
SLOTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "residence",
        re.compile(r"\bI(?:'ve| have|'m| am)? (?:now )?(?:live|living|moved|relocated) (?:in|to) " + _CAPITALISED),
    ),
    ("employer", re.compile(r"\bI (?:now )?work (?:at|for) " + _CAPITALISED)),
    ("job", re.compile(r"\bI (?:now )?work as (?:a|an) " + _VALUE, re.IGNORECASE)),
    (
        "age",
        re.compile(
            r"\bI(?:'m| am) (?P<v>\d{1,3})(?: years old\b|(?=[.!,;]|$))|\bI (?:just )?turned (?P<t>\d{1,3})\b", re.I
        ),
    ),
    (
        "relationship status",
        re.compile(r"\bI(?:'m| am| got) (?P<v>married|engaged|single|divorced|separated)(?![\w-])", re.I),
    ),
    ("partner", re.compile(r"\b(?i:my (?:boyfriend|girlfriend|partner|husband|wife|fianc[ée]e?)),? " + _CAPITALISED)),
    ("favourite", re.compile(r"\bmy fav(?:ou?rite) (?P<k>\w+) (?:is|are) " + _VALUE, re.IGNORECASE)),
)


def slot_of(statement: str) -> tuple[str, str]:
    """(slot, value) of a first-person statement that fills a one-valued slot, else ("", "")."""
    for slot, pattern in SLOTS:
        match = pattern.search(statement)
        if match:
            name = f"favourite {match['k'].lower()}" if slot == "favourite" else slot
            value = match["v"] or match.groupdict().get("t") or ""
            return name, value.strip(" .,!'").lower()
    return "", ""


class Categorizer:
    """The category whose descriptions are closest to a statement."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @cached_property
    def _prototypes(self) -> tuple[list[str], Any]:
        import numpy

        names = [name for name, texts in PROTOTYPES.items() for _ in texts]
        vectors = numpy.asarray(self.embedder.embed([t for texts in PROTOTYPES.values() for t in texts]))
        return names, vectors

    def categories(self, vectors: Sequence[Any]) -> list[str]:
        import numpy

        if not len(vectors):
            return []
        names, prototypes = self._prototypes
        scores = numpy.asarray(vectors, dtype=numpy.float32) @ prototypes.T
        return [names[int(i)] for i in scores.argmax(axis=1)]
