"""Writing-style statistics measured, without a model, on the chat messages the user wrote."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pllm_cli.memory.records import Turn

_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_SKIN_TONE = re.compile("[\U0001f3fb-\U0001f3ff]")  # inside the emoji range, but only modifies the one before
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # letters and digits, with inner apostrophes ("don't")
_LETTERS = re.compile(r"[^\W\d_]+")  # apostrophes split words, so "c'est" gives "c" and "est"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CLOCK = re.compile(r"(?<!\d)(\d{1,2}):\d{2}(?::\d{2})?\s*([AaPp][Mm])?")
_TRAILING = " \t\r\n\"'”’»)]\ufe0f\u200d"  # stripped before looking at how a message ends

VOCABULARY_SAMPLE = 5000  # words: a fixed sample, so the measure does not shrink as more text comes in

LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}
_FUNCTION_WORDS = {
    "en": set(
        "the a an and or but of to in on at for with is are was were be been it this that i you he she we they my "
        "your not no yes have has do does did what when how why there here so just will would can could me from "
        "about if then all".split()
    ),
    "es": set(
        "el la los las un una unos y o pero de del a en con por para es son está están era fue que qué yo tú tu "
        "él ella nosotros ellos mi mis no sí muy como cuando dónde porque también hay lo le se me te esto eso".split()
    ),
    "fr": set(
        "le la les un une des et ou mais de du à au aux en dans avec pour par est sont était que qui je tu il "
        "elle nous vous ils mon ma mes pas ne oui non très comme quand où pourquoi aussi ce cette c j qu".split()
    ),
    "de": set(
        "der die das ein eine einen und oder aber von zu zum zur in im mit für ist sind war nicht kein ja nein "
        "ich du er sie wir ihr mein dein auch wie wann wo warum es auf dass sehr noch schon".split()
    ),
    "it": set(
        "il lo la gli le un una uno e o ma di del della a al in con per è sono era che chi io tu lui lei noi voi "
        "loro mio mia non sì molto come quando dove perché anche ci ho".split()
    ),
    "pt": set(
        "o a os as um uma e ou mas de do da dos das em no na com para por é são era que eu tu ele ela nós eles meu "
        "minha não sim muito como quando onde porque também isso isto".split()
    ),
    "nl": set(
        "de het een en of maar van te in op met voor is zijn was niet geen ja nee ik jij je hij zij wij mijn ook "
        "hoe wanneer waar waarom dat die er heb dit".split()
    ),
}
_NOT_FAVOURITE = set().union(*_FUNCTION_WORDS.values()) | set(
    "also get got don't i'm it's im dont ok okay yeah yep".split()
)


@dataclass(frozen=True)
class WritingStyle:
    """Shares are fractions of the messages (0-1); every float is rounded to 3 decimals."""

    messages: int
    median_words: float
    vocabulary: float  # distinct words / words, on the first VOCABULARY_SAMPLE words
    favourite_words: list[str]
    exclamation_share: float
    question_share: float
    ellipsis_share: float
    no_final_punctuation_share: float
    lowercase_start_share: float
    emoji_share: float
    top_emoji: list[str]
    languages: dict[str, float]  # language code -> share of the messages whose language is clear
    active_hours: list[int]  # hours of the day with most messages, busiest first

    def describe(self) -> str:
        """What `pllm profile show` prints: a few lines in the second person ("" without messages)."""
        if not self.messages:
            return ""
        lines = [
            f"Measured on {self.messages} message{'s' if self.messages != 1 else ''} you wrote.",
            f"- {_length(self.median_words).capitalize()} messages: a median of {_words(self.median_words)}.",
        ]
        if self.vocabulary:
            lines.append(f"- Vocabulary: {round(self.vocabulary * 100)} distinct words in every 100 you write.")
        lines.append(
            f"- '!' in {self.exclamation_share:.0%} of messages, questions in {self.question_share:.0%}, "
            f"'...' in {self.ellipsis_share:.0%}; {self.lowercase_start_share:.0%} start in lower case and "
            f"{self.no_final_punctuation_share:.0%} end without punctuation."
        )
        if self.emoji_share:
            lines.append(f"- Emoji in {self.emoji_share:.0%} of messages, most often {' '.join(self.top_emoji)}.")
        else:
            lines.append("- No emoji.")
        if self.languages:
            shares = ", ".join(f"{LANGUAGE_NAMES.get(c, c)} {s:.0%}" for c, s in self.languages.items())
            lines.append(f"- Languages: {shares}.")
        if self.active_hours:
            lines.append(f"- Most active around {_and(f'{h:02d}:00' for h in self.active_hours)}.")
        if self.favourite_words:
            lines.append("- Words you use often: " + ", ".join(self.favourite_words) + ".")
        return "\n".join(lines)

    def voice_instructions(self, name: str) -> str:
        """One line telling a model how to write like the user, for text the user wants in their own voice."""
        if not self.messages:
            return ""
        traits = [f"{_length(self.median_words)} messages (about {_words(self.median_words)})"]
        if self.lowercase_start_share >= 0.6:
            traits.append("mostly lower case")
        elif self.lowercase_start_share >= 0.3:
            traits.append("often starting in lower case")
        if self.no_final_punctuation_share >= 0.6:
            traits.append("rarely a final full stop")
        elif self.no_final_punctuation_share >= 0.3:
            traits.append("often no final punctuation")
        if self.exclamation_share >= 0.2:
            traits.append("often '!'")
        if self.ellipsis_share >= 0.15:
            traits.append("often trailing off with '...'")
        emoji = f" ({' '.join(self.top_emoji)})" if self.top_emoji else ""
        if self.emoji_share >= 0.4:
            traits.append(f"emoji often{emoji}")
        elif self.emoji_share >= 0.1:
            traits.append(f"emoji sometimes{emoji}")
        elif self.emoji_share > 0:
            traits.append(f"emoji rarely{emoji}")
        else:
            traits.append("no emoji")
        languages = [LANGUAGE_NAMES.get(code, code) for code, share in self.languages.items() if share >= 0.2]
        if languages:
            traits.append("in " + languages[0] + (f", sometimes {_and(languages[1:])}" if languages[1:] else ""))
        line = f"Write as {name.strip() or 'the user'} writes: " + ", ".join(traits)
        if self.favourite_words:
            line += "; words they often use: " + ", ".join(self.favourite_words[:5])
        return line + "."

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (the floats are already rounded to 3 decimals)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WritingStyle:
        """The inverse of to_dict; a missing field reads as zero or empty."""
        return cls(
            messages=int(data.get("messages", 0)),
            median_words=float(data.get("median_words", 0.0)),
            vocabulary=float(data.get("vocabulary", 0.0)),
            favourite_words=[str(w) for w in data.get("favourite_words", [])],
            exclamation_share=float(data.get("exclamation_share", 0.0)),
            question_share=float(data.get("question_share", 0.0)),
            ellipsis_share=float(data.get("ellipsis_share", 0.0)),
            no_final_punctuation_share=float(data.get("no_final_punctuation_share", 0.0)),
            lowercase_start_share=float(data.get("lowercase_start_share", 0.0)),
            emoji_share=float(data.get("emoji_share", 0.0)),
            top_emoji=[str(e) for e in data.get("top_emoji", [])],
            languages={str(c): float(s) for c, s in dict(data.get("languages", {})).items()},
            active_hours=[int(h) for h in data.get("active_hours", [])],
        )


def writing_style(turns: Sequence[Turn]) -> WritingStyle:
    """The style of `turns`, which must all be the user's own messages (blank ones are ignored)."""
    texts = [turn.text.strip() for turn in turns if turn.text.strip()]
    n = len(texts)
    if not n:
        return WritingStyle(0, 0.0, 0.0, [], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, [], {}, [])
    words = [[w.casefold() for w in _WORD.findall(text)] for text in texts]
    sample = [w for ws in words for w in ws][:VOCABULARY_SAMPLE]
    counts = Counter(w for ws in words for w in ws if w not in _NOT_FAVOURITE and _favourite_shape(w))
    emoji = Counter(e for text in texts for e in _EMOJI.findall(text) if not _SKIN_TONE.fullmatch(e))

    def share(test: Callable[[str], object]) -> float:
        return round(sum(1 for text in texts if test(text)) / n, 3)

    return WritingStyle(
        messages=n,
        median_words=round(float(statistics.median(len(ws) for ws in words)), 3),
        vocabulary=round(len(set(sample)) / len(sample), 3) if sample else 0.0,
        favourite_words=[w for w, c in counts.most_common(8) if c > 1],
        exclamation_share=share(lambda t: "!" in t),
        question_share=share(lambda t: "?" in t),
        ellipsis_share=share(lambda t: "..." in t or "…" in t),
        no_final_punctuation_share=share(_no_final_punctuation),
        lowercase_start_share=share(_lowercase_start),
        emoji_share=share(_EMOJI.search),
        top_emoji=[e for e, _ in emoji.most_common(3)],
        languages=_languages(texts),
        active_hours=_active_hours(turns),
    )


def _favourite_shape(word: str) -> bool:
    return len(word) > 2 and word.replace("'", "").replace("’", "").isalpha()


def _no_final_punctuation(text: str) -> bool:
    end = _SKIN_TONE.sub("", text.rstrip(_TRAILING)).rstrip(_TRAILING)[-1:]
    return not end or not (end in ".!?…" or _EMOJI.match(end))


def _lowercase_start(text: str) -> bool:
    first = next((c for c in text if c.isalpha()), "")
    return first.islower()


def _language(text: str) -> str | None:
    """The language whose function words `text` uses most, or None when no language clearly wins."""
    tokens = [w.casefold() for w in _LETTERS.findall(text)]
    scores = sorted(((sum(t in words for t in tokens), code) for code, words in _FUNCTION_WORDS.items()), reverse=True)
    (best, code), (second, _) = scores[0], scores[1]
    return code if best > second else None


def _languages(texts: Sequence[str]) -> dict[str, float]:
    guesses = Counter(code for text in texts if (code := _language(text)))
    total = sum(guesses.values())
    shares = sorted(((round(c / total, 3), code) for code, c in guesses.items()), key=lambda s: (-s[0], s[1]))
    return {code: s for s, code in shares if s >= 0.05}


def _hour(time: str) -> int | None:
    """The hour of day (0-23) of a turn's time ("2026-01-27T21:15:00+01:00", "9:15 PM"), or None. The date
    is left out first: in an ISO time its day ("27T") would otherwise not stop the clock from matching."""
    match = _CLOCK.search(time[10:] if _ISO_DATE.match(time) else time)
    if not match:
        return None
    hour, meridiem = int(match[1]), (match[2] or "").lower()
    if meridiem and 1 <= hour <= 12:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    return hour if 0 <= hour <= 23 else None


def _active_hours(turns: Sequence[Turn]) -> list[int]:
    hours = Counter(h for turn in turns if turn.text.strip() and (h := _hour(turn.time)) is not None)
    return [h for h, _ in sorted(hours.items(), key=lambda item: (-item[1], item[0]))[:3]]


def _length(median_words: float) -> str:
    return "short" if median_words <= 10 else "medium-length" if median_words <= 25 else "long"


def _words(count: float) -> str:
    return f"{count:g} word{'' if count == 1 else 's'}"


def _and(items: Iterable[str]) -> str:
    """Join as "a", "a and b" or "a, b and c"."""
    listed = list(items)
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
