"""Candidate facts from memory chunks: the statements about the user, restated by the local model under a
grammar, and checked against the statement before they are kept.

1. Statements: sentences the user wrote about themselves (first person, not a question) in their chat turns,
   their notes and documents and the mail they sent; and sentences others wrote that name the user (or say
   "you" to them in a one-to-one chat), kept as "reported by others".
2. Restating: the model turns each statement into one third-person sentence. A llama.cpp grammar forces the
   answer into `{"fact": "<name> ..."}` with at most MAX_FACT_CHARS plain characters, so even the 135M default
   model always returns parsable JSON, and the answer is short enough to always finish within its budget.
3. Checking: the restatement is kept only if its content words are (nearly) all in the statement. Otherwise
   the statement itself becomes the fact, quoted: a profile must never say what the user did not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from pllm_cli.memory.index import STOPWORDS
from pllm_cli.memory.records import MAIL_FORMATS, Chunk, Format, format_time
from pllm_cli.profile.facts import Evidence, Origin
from pllm_cli.profile.turns import chat_turns
from pllm_cli.runtime import ChatMessage, StructuredModel

MAX_FACT_CHARS = 110
FACT_TOKENS = 4 * MAX_FACT_CHARS + 40  # a token is at least one byte, a character at most 4: always completes
SUPPORT_THRESHOLD = 1.0  # a restatement may only rearrange the statement's words: at 0.75 the demo kept
# "Maya has removed every single leaf from the world" for a sentence about the lawn
MIN_CONTENT_WORDS = 3  # fewer is small talk: "of course I have a list", "this is my cross to bear"
# What the user wrote themselves: not saved web pages, and of mail only what they sent
USER_WRITTEN_FORMATS: frozenset[Format] = frozenset({"markdown", "text", "docx", "pdf", *MAIL_FORMATS})

_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'll|i'd|im|ive|my|me|mine|myself|we|our|us)\b", re.IGNORECASE)
_FIRST_PERSON_SINGULAR = re.compile(r"\b(i|i'm|i've|i'll|i'd|my|me|mine|myself)\b", re.IGNORECASE)  # "we" in a
# document is usually its authors ("in this paper we propose"), not the user
_SECOND_PERSON = re.compile(r"\b(you|you're|you've|your|yours|yourself)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|no|never|nobody|nothing|none|nor|without|cannot|\w+n't|dont|cant|wont)\b", re.I)
_HEDGE = re.compile(r"\b(if|would|wish|maybe|might|used to)\b", re.IGNORECASE)


def _markers(text: str) -> tuple[bool, bool]:
    return bool(_NEGATION.search(text)), bool(_HEDGE.search(text))


_PERSONAL = re.compile(_FIRST_PERSON.pattern + "|" + _SECOND_PERSON.pattern, re.IGNORECASE)  # not restated
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_EXTRA_STOP = frozenset(
    "also really just like get got go going gonna wanna would could should one much many lot lots thing things "
    "something really pretty very so super totally always never ever still even well yeah yes ok okay oh wow "
    "haha lol hey hi thanks thank good great nice awesome cool amazing said says say".split()
)
MIN_WORDS, MAX_WORDS = 5, 45


@dataclass(frozen=True)
class Statement:
    """A sentence about the user, where it was found and who wrote it."""

    text: str
    origin: Origin  # "self": the user wrote it; "reported": someone else did
    evidence: Evidence


@dataclass(frozen=True)
class Candidate:
    text: str
    statement: Statement
    restated: bool  # False: the model's restatement failed the check and the statement is quoted


def _sentences(text: str) -> Iterator[str]:
    for sentence in _SENTENCE.split(text):
        sentence = sentence.strip(" -*•>\t\"'")
        if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS and not sentence.endswith("?"):
            yield sentence


def _names_pattern(me: Collection[str]) -> re.Pattern[str] | None:
    words = sorted({w for name in me for w in name.split() if len(w) > 1}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE) if words else None


def statements(chunk: Chunk, me: Collection[str], *, source_format: str, ingested_at: str) -> list[Statement]:
    """The statements about the user in one chunk."""
    found: list[Statement] = []
    if chunk.kind == "chat":
        turns = chat_turns(chunk, me)
        # "you" is the user only in a two-person exchange the user takes part in; a window may hold one speaker,
        # so the speaker of the turn before it counts too
        speakers = set(chunk.speakers or {t.speaker for t in turns})
        if chunk.context:
            speakers.add(chunk.context[-1].speaker)
        one_to_one = len(speakers) == 2 and any(t.by_user for t in turns)
        names = _names_pattern(me)
        for turn in turns:
            for sentence in _sentences(turn.text):
                evidence = Evidence(
                    chunk.id,
                    chunk.source,
                    sentence,
                    (turn.message_id,) if turn.message_id else (),
                    format_time(turn.time),
                    turn.speaker,
                )
                if len(content_words(sentence)) < MIN_CONTENT_WORDS:
                    continue
                if turn.by_user:
                    if _FIRST_PERSON.search(sentence):
                        found.append(Statement(sentence, "self", evidence))
                elif not _FIRST_PERSON_SINGULAR.search(sentence) and (
                    (names and names.search(sentence)) or (one_to_one and _SECOND_PERSON.search(sentence))
                ):  # about the user, not about the speaker ("I told Maya I am moving")
                    found.append(Statement(sentence, "reported", evidence))
        return found
    if source_format not in USER_WRITTEN_FORMATS:
        return []
    if chunk.mail is not None:  # mail: only what the user sent (a word of one of their names in From)
        names = _names_pattern(me)
        if names is None or not names.search(chunk.mail.sender):
            return []
    body = chunk.body
    when = chunk.start_time[:16].replace("T", " ") or ingested_at[:16].replace("T", " ")
    for sentence in _sentences(body):
        if _FIRST_PERSON_SINGULAR.search(sentence) and len(content_words(sentence)) >= MIN_CONTENT_WORDS:
            found.append(
                Statement(sentence, "self", Evidence(chunk.id, chunk.source, sentence, chunk.message_ids, when))
            )
    return found


def _stem(word: str) -> str:
    word = word.lower().replace("'s", "")
    for suffix in ("ing", "ies", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str, ignore: Collection[str] = ()) -> set[str]:
    skip = STOPWORDS | _EXTRA_STOP | {w.lower() for w in ignore}
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in skip and (len(w) > 2 or w.isdigit())}


def support(fact: str, statement: str, name: str) -> float:
    """The share of the fact's content words (the user's name aside) found in the statement; 0 if none, or if
    one of them negates or hedges and the other does not ("I never eat meat" is not "Maya eats meat")."""
    words = content_words(fact, ignore=name.split())
    if not words or _markers(fact) != _markers(statement):
        return 0.0
    return len(words & content_words(statement)) / len(words)


def _repeats(text: str) -> bool:
    """A three-word run said twice: the small model looping ("starting his own business, starting his own")."""
    words = [w.lower() for w in _WORD.findall(text)]
    runs = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(runs) != len(set(runs))


def quoted(statement: Statement, name: str) -> str:
    who = name if statement.origin == "self" else statement.evidence.speaker or "someone"
    return f'{who}: "{statement.text}"'


# --- the model, under a grammar ---------------------------------------------------------------------------

SYSTEM = (
    "Turn what was said into one short fact about {name}, in the third person, using only the words said. "
    "Do not add anything."
)
_SHOTS = (
    ("Sam", "Sam", "I adopted a puppy last week, her name is Luna!", "Sam adopted a puppy named Luna."),
    ("Li", "Li", "I've been working as a nurse for ten years now.", "Li has worked as a nurse for ten years."),
    ("Dana", "Ana", "Dana, you make the best lemon cake in town.", "Ana makes the best lemon cake in town."),
)


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fact_grammar(name: str) -> str:
    """GBNF for `{"fact": "<name> ..."}`: plain characters only (no quote, backslash or control character),
    so the string is always valid JSON, and at most MAX_FACT_CHARS of them, so it always ends."""
    prefix = '{"fact": "' + json.dumps(name, ensure_ascii=False)[1:-1] + " "
    return f'root ::= {_gbnf_literal(prefix)} char{{3,{MAX_FACT_CHARS}}} "\\"}}"\nchar ::= [^"\\\\\\x00-\\x1f]\n'


def restate_prompt(statement: Statement, name: str) -> list[ChatMessage]:
    messages = [ChatMessage("system", SYSTEM.format(name=name))]
    for speaker, subject, said, fact in _SHOTS:
        messages += [
            ChatMessage("user", f"{speaker} said: {said}\nFact about {subject}:"),
            ChatMessage("assistant", json.dumps({"fact": fact})),
        ]
    speaker = name if statement.origin == "self" else statement.evidence.speaker or "someone"
    messages.append(ChatMessage("user", f"{speaker} said: {statement.text}\nFact about {name}:"))
    return messages


def restate(model: StructuredModel, statement: Statement, name: str, grammar: str) -> Candidate:
    """The model's restatement if it passes the check against the statement, else the statement quoted."""
    answer = model.complete(restate_prompt(statement, name), grammar=grammar, max_tokens=FACT_TOKENS)
    try:
        text = str(json.loads(answer)["fact"]).strip()
    except (ValueError, KeyError, TypeError):  # cannot happen under the grammar; never trusted blindly either
        text = ""
    if (
        text
        and not _PERSONAL.search(text)
        and not _repeats(text)
        and support(text, statement.text, name) >= SUPPORT_THRESHOLD
    ):
        if text[-1] not in ".!":
            text += "."
        return Candidate(text, statement, restated=True)
    return Candidate(quoted(statement, name), statement, restated=False)
