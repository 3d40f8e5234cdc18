"""Citation markers in an answer: [1], [1][3], [1, 3] name the memories of the prompt by number."""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_CITATION = 99  # pllm numbers its memories from 1; "[2023]" is a year, not a citation
# one pair of brackets holding numbers separated by commas or spaces, with the spaces before it
_NUMBER_LIST = re.compile(r"[ \t]*\[\s*([0-9]+(?:\s*,\s*[0-9]+|\s+[0-9]+)*)\s*\]")


def cited_numbers(text: str) -> list[int]:
    """The numbers of the [n], [n][m] and [n, m] citation markers in the text, in order of first appearance."""
    found: dict[int, None] = {}
    for numbers in _citations(text):
        found.update(dict.fromkeys(numbers))
    return list(found)


def strip_citations(text: str) -> str:
    """The text without its citation markers (nor the spaces before them), whitespace collapsed."""
    kept = _NUMBER_LIST.sub(lambda m: "" if _as_citation(m) else m.group(0), text)
    return " ".join(kept.split())


def _citations(text: str) -> Iterator[list[int]]:
    for match in _NUMBER_LIST.finditer(text):
        numbers = _as_citation(match)
        if numbers:
            yield numbers


def _as_citation(match: re.Match[str]) -> list[int]:
    """The bracket's numbers if all of them can be citations (1 to MAX_CITATION), else []."""
    numbers = [int(n) for n in re.findall(r"[0-9]+", match.group(1))]
    return numbers if all(1 <= n <= MAX_CITATION for n in numbers) else []
