"""Building the profile from memory.

For each aspect (identity, preferences, interests, goals) pllm picks the statements the user made about
themselves that are closest to the aspect: first-person sentences of their notes and their own chat
messages, never what others wrote. The local model rewrites them into a short summary, and every sentence of
that summary is checked against the statements: one whose words are not found there is dropped, so the
profile holds nothing the user did not say. The statements themselves are kept as evidence with their
sources. The writing style is measured, not generated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pllm_cli import __version__
from pllm_cli.embedding import Embedder
from pllm_cli.ingest.readers.mail import email_sender
from pllm_cli.memory.records import Chunk, Hit
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.profile.document import Profile
from pllm_cli.profile.style import messages_by, user_speakers, writing_style
from pllm_cli.runtime import ChatMessage, ChatModel


@dataclass(frozen=True)
class Aspect:
    name: str
    query: str
    subject: str


ASPECTS = (
    Aspect("Identity", "I work as, my job, I live in, my partner, my family, my sister", "who they are"),
    Aspect("Preferences", "I love, I like, my favourite, I hate, I can't stand, I'm allergic to", "likes and dislikes"),
    Aspect("Interests", "my hobbies, I play, I am learning, I practise, I train", "hobbies and interests"),
    Aspect("Goals and plans", "my goal, I plan to, my deadline, my exam, my race, I want to", "goals and plans"),
)
HITS_PER_ASPECT = 8
STATEMENTS_PER_ASPECT = 5
SUMMARY_TOKENS = 90
MIN_RELEVANCE = 0.15  # cosine to the aspect: below it a statement is small talk ("I literally told you.")
SUPPORT_THRESHOLD = 0.75  # share of a summary sentence's content words that must occur in the statements

_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'll|I'd|my|me|mine|myself)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TURN = re.compile(r"^\[[^\]]*\] (?P<speaker>[^:\n]{1,80}): (?P<text>.*)$")
_CONTENT_WORD = re.compile(r"[^\W_]{4,}", re.UNICODE)
_STOP = {"that", "this", "with", "from", "have", "they", "their", "them", "about", "also", "what", "when", "which"}


@dataclass(frozen=True)
class Statement:
    text: str
    source: str


@dataclass(frozen=True)
class BuildProgress:
    aspect: str
    done: int
    total: int


def own_statements(chunk: Chunk, me: str | Collection[str]) -> list[Statement]:
    """First-person sentences the user wrote: their chat turns, and their notes (mail only when from them)."""
    source = Path(chunk.source).name
    lines: list[str] = []
    names = [me] if isinstance(me, str) else list(me)
    if chunk.kind == "chat":
        speakers = user_speakers(chunk, names)
        for line in chunk.text.splitlines():
            match = _TURN.match(line)
            if match and match["speaker"].strip().casefold() in speakers:
                lines.append(match["text"])
    else:
        body = chunk.text.split("\n\n", 1)[-1] if chunk.heading else chunk.text
        sender = email_sender(chunk.heading)
        if sender is not None and not any(name and name.casefold() in sender.casefold() for name in names):
            return []
        lines = [body]
    sentences = (s.strip(" -*•\t") for line in lines for s in _SENTENCE.split(line))
    return [Statement(s, source) for s in sentences if 4 <= len(s.split()) <= 40 and _FIRST_PERSON.search(s)]


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _CONTENT_WORD.findall(text)} - _STOP


def supported_sentences(summary: str, statements: Sequence[Statement], name: str) -> list[str]:
    """The sentences of `summary` whose content words are (almost) all found in the statements."""
    known = set().union(*(content_words(s.text) for s in statements)) | content_words(name)
    kept = []
    for sentence in _SENTENCE.split(summary):
        words = content_words(sentence)
        if words and len(words & known) / len(words) >= SUPPORT_THRESHOLD and sentence.strip()[-1:] in ".!":
            kept.append(sentence.strip())
    return kept


def _rank(statements: list[Statement], query: str, embedder: Embedder) -> list[Statement]:
    unique = list({s.text.casefold(): s for s in statements}.values())
    if len(unique) <= 1:
        return unique
    vectors = embedder.embed([query] + [s.text for s in unique])
    scores = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    order = sorted(range(len(unique)), key=lambda i: scores[i], reverse=True)
    return [unique[i] for i in order if scores[i] >= MIN_RELEVANCE]


def _summary_prompt(aspect: Aspect, statements: Sequence[Statement], name: str) -> list[ChatMessage]:
    said = "\n".join(f"- {s.text}" for s in statements)
    return [
        ChatMessage("system", "You summarize what a person said about themselves. Use only their words' facts."),
        ChatMessage(
            "user",
            f"{name} said:\n{said}\n\n"
            f"In one or two sentences in the third person, summarize {name}'s {aspect.subject}.",
        ),
    ]


def build_section(
    aspect: Aspect, hits: Sequence[Hit], model: ChatModel, embedder: Embedder, name: str, me: Collection[str]
) -> str:
    statements = [s for hit in hits for s in own_statements(hit.chunk, me)]
    chosen = _rank(statements, aspect.query, embedder)[:STATEMENTS_PER_ASPECT]
    if not chosen:
        return "Nothing yet: none of your own statements in memory is about this."
    answer = "".join(
        model.stream(_summary_prompt(aspect, chosen, name), max_tokens=SUMMARY_TOKENS, temperature=0.0, seed=0)
    )
    summary = " ".join(supported_sentences(answer, chosen, name))
    evidence = "\n".join(f'- "{s.text}" ({s.source})' for s in chosen)
    return f"{summary}\n\nIn your words:\n{evidence}" if summary else f"In your words:\n{evidence}"


def build_profile(
    retriever: Retriever,
    model: ChatModel,
    *,
    name: str,
    chat_chunks: Iterable[Chunk],
    me: Collection[str] = (),
    on_progress: Callable[[BuildProgress], None] | None = None,
) -> Profile:
    """A fresh profile from memory; greedy decoding, so a rebuild of the same memory is the same.

    `name` is how the profile calls the user; `me` all the names they write under (default: `name`).
    """
    me = tuple(me) or ((name,) if name else ())
    retriever.require_memories()
    started = time.perf_counter()
    who = name or "the user"
    sections: dict[str, str] = {}
    for done, aspect in enumerate(ASPECTS):
        if on_progress:
            on_progress(BuildProgress(aspect.name, done, len(ASPECTS)))
        hits = retriever.search(aspect.query, HITS_PER_ASPECT)
        sections[aspect.name] = build_section(aspect, hits, model, retriever.embedder, who, me)
    if me:
        style = writing_style(messages_by(chat_chunks, me)).describe()
        sections["Writing style"] = style or f"No chat messages by {name!r} in memory yet."
    else:
        sections["Writing style"] = "Unknown: tell pllm your chat name with `pllm config set me NAME`."
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    note = (
        f"_Built by pllm {__version__} on {stamp} in {time.perf_counter() - started:.1f} s from your own "
        "statements in memory; summaries are checked against them. This file is yours: edit it, and pllm "
        "uses it as written._"
    )
    return Profile(title=f"Profile of {who}", note=note, sections=sections)
