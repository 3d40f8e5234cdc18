"""Building the profile: for each aspect, retrieve the most relevant memories and let the local model
summarize them; the writing style is measured, not generated."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pllm_cli import __version__
from pllm_cli.memory.records import Chunk
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.profile.document import Profile
from pllm_cli.profile.style import messages_by, writing_style
from pllm_cli.prompting import format_memory
from pllm_cli.runtime import ChatMessage, ChatModel


@dataclass(frozen=True)
class Aspect:
    name: str
    query: str
    instruction: str


ASPECTS = (
    Aspect(
        "Identity",
        "my name, my job and work, where I live, my family and partner",
        "who they are: work, home and family",
    ),
    Aspect(
        "Preferences",
        "I love, I like, my favourite, I hate, I dislike, allergic to",
        "what they like and dislike",
    ),
    Aspect(
        "Interests",
        "my hobbies, sports, music, what I am learning and practising",
        "their hobbies and interests",
    ),
    Aspect(
        "Goals and plans",
        "my goals, plans, deadlines, exams, races and upcoming events",
        "their current goals and plans",
    ),
)
NOTES_PER_ASPECT = 4
SUMMARY_TOKENS = 120


@dataclass(frozen=True)
class BuildProgress:
    aspect: str
    done: int
    total: int


def _summary_prompt(aspect: Aspect, notes: str, name: str) -> list[ChatMessage]:
    return [
        ChatMessage(
            "system",
            "You write short factual profiles. Use only facts stated in the notes. No introduction.",
        ),
        ChatMessage(
            "user",
            f"Notes written by or about {name}:\n\n{notes}\n\n"
            f"In two or three short sentences, state {aspect.instruction} of {name}, "
            "using names, places and dates from the notes.",
        ),
    ]


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    # a cut-off final sentence is dropped rather than shown half-written
    if text and text[-1] not in ".!?" and "." in text:
        text = text[: text.rfind(".") + 1]
    return text


def build_profile(
    retriever: Retriever,
    model: ChatModel,
    *,
    name: str,
    chat_chunks: Iterable[Chunk],
    seed: int | None = 0,
    on_progress: Callable[[BuildProgress], None] | None = None,
) -> Profile:
    """A fresh profile from memory. Summaries are sampled at temperature 0 so a rebuild is repeatable."""
    retriever.require_memories()
    started = time.perf_counter()
    who = name or "the user"
    sections: dict[str, str] = {}
    used_chunks: set[str] = set()
    for done, aspect in enumerate(ASPECTS):
        if on_progress:
            on_progress(BuildProgress(aspect.name, done, len(ASPECTS)))
        hits = retriever.search(aspect.query, NOTES_PER_ASPECT)
        used_chunks.update(hit.chunk.id for hit in hits)
        notes = "\n\n".join(format_memory(i + 1, hit) for i, hit in enumerate(hits))
        answer = "".join(
            model.stream(_summary_prompt(aspect, notes, who), max_tokens=SUMMARY_TOKENS, temperature=0.0, seed=seed)
        )
        sources = ", ".join(sorted({hit.chunk.source.rsplit("/", 1)[-1] for hit in hits}))
        sections[aspect.name] = f"{_clean(answer)}\n\n_Sources: {sources}_"
    if name:
        style = writing_style(messages_by(chat_chunks, name)).describe()
        sections["Writing style"] = style or f"No chat messages by {name!r} in memory yet."
    else:
        sections["Writing style"] = "Unknown: tell pllm your chat name with `pllm config set me NAME`."
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    note = (
        f"_Built by pllm {__version__} on {stamp} from {len(used_chunks)} memories in "
        f"{time.perf_counter() - started:.1f} s. This file is yours: edit it, and pllm uses it as written._"
    )
    return Profile(title=f"Profile of {who}", note=note, sections=sections)
