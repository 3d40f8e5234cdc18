"""Writing-style statistics computed from what the user wrote in chats, without a model."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pllm_cli.memory.records import Chunk

_TURN = re.compile(r"^(?:\[(?P<time>[^\]]*)\] )?(?P<speaker>[^:\n]{1,80}): (?P<text>.*)$")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def user_speakers(chunk: Chunk, names: str | Collection[str]) -> set[str]:
    """The casefolded speaker names under which the user appears in `chunk`: their names, plus "user" where
    the source marked the user's own messages (the `user` role of ChatGPT and Claude exports)."""
    wanted = {names.casefold()} if isinstance(names, str) else {n.casefold() for n in names}
    if chunk.user_message_ids:
        wanted.add("user")
    return {w for w in wanted if w}


def messages_by(chunks: Iterable[Chunk], names: str | Collection[str]) -> list[str]:
    """The texts the user (any of `names`) wrote, recovered from chat chunks (continuation lines join)."""
    texts: list[str] = []
    for chunk in chunks:
        if chunk.kind != "chat":
            continue
        wanted = user_speakers(chunk, names)
        current: list[str] | None = None
        for line in chunk.text.splitlines():
            match = _TURN.match(line)
            if match:
                current = [match["text"]] if match["speaker"].strip().casefold() in wanted else None
                if current is not None:
                    texts.append("")
            if current is not None:
                if not match:
                    current.append(line)
                texts[-1] = "\n".join(current)
    return [t for t in texts if t.strip()]


@dataclass(frozen=True)
class WritingStyle:
    messages: int
    median_words: float
    emoji_share: float
    exclamation_share: float
    question_share: float
    lowercase_start_share: float
    favourite_words: list[str]

    def describe(self) -> str:
        if not self.messages:
            return ""
        lines = [
            f"Measured on {self.messages} chat messages you wrote.",
            f"- Messages are short: a median of {self.median_words:g} words."
            if self.median_words <= 12
            else f"- Messages run long: a median of {self.median_words:g} words.",
            f"- Emoji in {self.emoji_share:.0%} of messages; '!' in {self.exclamation_share:.0%}; "
            f"questions in {self.question_share:.0%}.",
            f"- {self.lowercase_start_share:.0%} of messages start in lower case.",
        ]
        if self.favourite_words:
            lines.append("- Words you use often: " + ", ".join(self.favourite_words) + ".")
        return "\n".join(lines)


_COMMON = set(
    "the a an and or but to of in on at for with is are was were be been it its this that i you he she we they "
    "me my your our their so do did not no yes just have has had will would can could if then there here what "
    "when how about from as by up out too also all get got im i'm it's don't ok".split()
)


def writing_style(texts: list[str]) -> WritingStyle:
    if not texts:
        return WritingStyle(0, 0, 0, 0, 0, 0, [])
    n = len(texts)
    words = Counter(w.lower() for t in texts for w in _WORD.findall(t) if len(w) > 2 and w.lower() not in _COMMON)
    return WritingStyle(
        messages=n,
        median_words=float(statistics.median(len(t.split()) for t in texts)),
        emoji_share=sum(1 for t in texts if _EMOJI.search(t)) / n,
        exclamation_share=sum(1 for t in texts if "!" in t) / n,
        question_share=sum(1 for t in texts if "?" in t) / n,
        lowercase_start_share=sum(1 for t in texts if t.lstrip()[:1].islower()) / n,
        favourite_words=[w for w, c in words.most_common(8) if c > 1],
    )
