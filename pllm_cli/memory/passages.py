"""Packing ranked hits into passages that fill a token budget: "the best N tokens", not "the best k chunks".

In rank order, each hit becomes a passage unless it would overflow the budget (then the next, smaller one
is tried). A chat hit brings its neighbouring turns: the one before it (often the question it answers) and
the one after (often the reply), each a whole burst of short messages; if that overflows the budget, the hit
comes alone. Turns already taken are not paid for twice: a hit that meets or overlaps a
chosen passage of the same conversation is merged into it, and a hit adding nothing new, or repeating a
chosen text almost word for word (a forwarded message, a note saved twice), is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pllm_cli.memory.records import Chunk, Hit, Turn

NEIGHBOUR_MESSAGES = 4  # a neighbouring turn typed as a burst of short messages brings at most this many
NEAR_DUPLICATE = 0.85  # word-set Jaccard above which a text repeats one already chosen
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, order=True)
class PlacedTurn:
    """One chat turn and where it sits in its source (the order of turns)."""

    position: int  # its chunk's position in the source
    index: int  # its place in that chunk
    last: bool = field(compare=False)  # whether it ends its chunk
    continues: bool = field(compare=False)  # whether it opens a chunk that goes on from the one before
    turn: Turn = field(compare=False)

    def follows(self, other: PlacedTurn) -> bool:
        """Whether this turn comes right after `other` in the same exchange."""
        if other.position == self.position:
            return self.index == other.index + 1
        return other.last and self.continues and self.position == other.position + 1 and self.index == 0


@dataclass
class Passage:
    """What one memory in the prompt shows: a text chunk, or a run of consecutive chat turns."""

    source: str
    kind: str
    heading: str
    conversation: str
    score: float
    chunks: list[Chunk]  # the chunks it came from, best hit first
    turns: list[PlacedTurn] = field(default_factory=list)  # chat only, in order

    @property
    def text(self) -> str:
        if self.kind != "chat":
            return self.chunks[0].text
        return render_turns(self.turns)

    @property
    def message_ids(self) -> list[str]:
        if self.kind != "chat":
            return list(self.chunks[0].message_ids)
        return [placed.turn.message_id for placed in self.turns]

    @property
    def start_time(self) -> str:
        return min((c.start_time for c in self.chunks if c.start_time), default="")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "heading": self.heading,
            "conversation": self.conversation,
            "score": round(self.score, 6),
            "text": self.text,
            "message_ids": self.message_ids,
            "chunk_ids": [c.id for c in self.chunks],
            "start_time": self.start_time,
            "end_time": max((c.end_time for c in self.chunks if c.end_time), default=""),
        }


def approximate_tokens(text: str) -> int:
    """A model-free token count: round(1.3 x words), the measure of ../shared/eval/README.md."""
    return round(1.3 * len(text.split()))


def passage_tokens(passage: Passage) -> int:
    """A passage's model-free cost: what `memory search --tokens` and `pllm eval` pack by."""
    return approximate_tokens(passage.text)


class Neighbours(Protocol):
    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]: ...


def chunk_turns(chunk: Chunk) -> list[PlacedTurn]:
    last, continues = len(chunk.turns) - 1, bool(chunk.context)
    return [PlacedTurn(chunk.position, n, n == last, continues and n == 0, turn) for n, turn in enumerate(chunk.turns)]


def render_turns(turns: Sequence[PlacedTurn]) -> str:
    """The turns as lines; the "[time] " stamp only where a run starts or the day changes (it costs tokens)."""
    lines: list[str] = []
    previous: PlacedTurn | None = None
    previous_day = ""
    for placed in turns:
        day = placed.turn.time[:10] or previous_day
        running = previous is not None and placed.follows(previous) and day == previous_day
        lines.append(placed.turn.render(stamp=not running))
        previous, previous_day = placed, day
    return "\n".join(lines)


def _expanded(chunk: Chunk, neighbours: Neighbours | None) -> list[PlacedTurn]:
    """The chunk's turns with the turn before and the turn after, when they belong to the same exchange (a
    chunk carries a context exactly when its predecessor is of the same conversation, with no long pause)."""
    turns = chunk_turns(chunk)
    if neighbours is None:
        return turns
    before, after = neighbours.neighbours(chunk)
    if before is not None and chunk.context and before.kind == "chat":
        turns = _run(chunk_turns(before)[::-1])[::-1] + turns
    if after is not None and after.context and after.kind == "chat" and after.conversation == chunk.conversation:
        turns = turns + _run(chunk_turns(after))
    return turns


def _run(turns: Sequence[PlacedTurn]) -> list[PlacedTurn]:
    """The first turn of `turns` and those after it from the same speaker (one burst), at most NEIGHBOUR_MESSAGES."""
    run: list[PlacedTurn] = []
    for placed in turns:
        if run and (placed.turn.speaker != run[0].turn.speaker or len(run) >= NEIGHBOUR_MESSAGES):
            break
        run.append(placed)
    return run


def _words(chunk: Chunk) -> frozenset[str]:
    """The words people wrote in a chunk (not the times and speakers of its messages)."""
    return frozenset(word.lower() for word in _WORD.findall(chunk.plain_text))


def _near_duplicate(chunk: Chunk, chosen: Sequence[frozenset[str]]) -> bool:
    words = _words(chunk)
    return bool(words) and any(len(words & other) / len(words | other) >= NEAR_DUPLICATE for other in chosen)


def pack(
    hits: Sequence[Hit],
    budget: int,
    cost: Callable[[Passage], int],
    *,
    neighbours: Neighbours | None = None,
    limit: int | None = None,
) -> list[Passage]:
    """The passages of `hits` (best first) whose costs add up to at most `budget`; at most `limit` of them.

    `neighbours` (the index) adds each chat hit's turn before and after; without it, hits are taken as they are.
    """
    passages: list[Passage] = []
    costs: dict[int, int] = {}  # id(passage) -> its cost
    seen: list[frozenset[str]] = []
    for hit in hits:
        chunk = hit.chunk
        if _near_duplicate(chunk, seen):
            continue
        for candidate, replaced in _candidates(chunk, hit.score, passages, neighbours):
            price = cost(candidate)
            total = sum(costs.values()) - sum(costs[id(p)] for p in replaced) + price
            if total <= budget and (limit is None or len(passages) - len(replaced) + 1 <= limit):
                break
        else:
            continue
        passages = _replace(passages, replaced, candidate)
        for old in replaced:
            del costs[id(old)]
        costs[id(candidate)] = price
        seen.append(_words(chunk))
    return passages


def _candidates(
    chunk: Chunk, score: float, passages: list[Passage], neighbours: Neighbours | None
) -> Iterator[tuple[Passage, list[Passage]]]:
    """What a hit may add, largest first: a chat hit with its neighbouring turns, then (if that does not fit
    the budget) the hit's own turns alone; each with the chosen passages it would be merged with."""
    if chunk.kind != "chat":
        yield Passage(chunk.source, chunk.kind, chunk.heading, "", score, [chunk]), []
        return
    taken = {(t.position, t.index) for p in passages if p.source == chunk.source for t in p.turns}
    tried: list[PlacedTurn] = []
    for source in (neighbours, None) if neighbours is not None else (None,):
        turns = [t for t in _expanded(chunk, source) if (t.position, t.index) not in taken]
        if turns and turns != tried:
            tried = turns
            yield _merge(passages, chunk, score, turns)


def _merge(
    passages: list[Passage], chunk: Chunk, score: float, turns: list[PlacedTurn]
) -> tuple[Passage, list[Passage]]:
    """A passage of `turns` joined with every chosen passage of the same source it meets, and those passages."""
    joined = sorted(turns)
    chunks = [chunk]
    met: list[Passage] = []
    best = score
    for passage in passages:
        same = passage.kind == "chat" and (passage.source, passage.conversation) == (chunk.source, chunk.conversation)
        if same and _meets(passage.turns, joined):
            joined = sorted({*joined, *passage.turns})
            chunks = [*passage.chunks, *chunks]
            best = max(best, passage.score)
            met.append(passage)
    return Passage(chunk.source, "chat", chunk.heading, chunk.conversation, best, chunks, joined), met


def _meets(a: Sequence[PlacedTurn], b: Sequence[PlacedTurn]) -> bool:
    """Whether two sorted runs of turns overlap or touch."""
    return (a[0] <= b[-1] and b[0] <= a[-1]) or b[0].follows(a[-1]) or a[0].follows(b[-1])


def _replace(passages: list[Passage], replaced: list[Passage], new: Passage) -> list[Passage]:
    """`passages` with `new` in the place of the first of `replaced` (at the end if there is none)."""
    gone = {id(p) for p in replaced}
    result: list[Passage] = []
    for passage in passages:
        if id(passage) not in gone:
            result.append(passage)
        elif not any(r is new for r in result):
            result.append(new)
    return result if gone else [*result, new]
