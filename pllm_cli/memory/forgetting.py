"""Forgetting parts of a source: a conversation, a speaker, or everything before a date.

A rule is stored with the memory and applied at every later ingest, so re-ingesting the same export never
brings forgotten messages back. Applying a rule now rebuilds each affected source from its file with the rule
in force; a source whose file is gone has the rule applied to its stored chunks (`apply_to_chunk`).

Each rule is written once, over the structured fields: a chat message's conversation, speaker and time, an
e-mail's sender and date. A rule never reads text: an e-mail *to* Zoe or a note about "Zoe's birthday" is not
a message by Zoe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message, Section
from pllm_cli.memory.records import Chunk, Mail, Turn

RuleKind = Literal["conversation", "speaker", "before"]


@dataclass(frozen=True)
class ForgetRule:
    kind: RuleKind
    value: str

    @classmethod
    def before(cls, value: str) -> ForgetRule:
        try:
            return cls("before", date.fromisoformat(value.strip()).isoformat())
        except ValueError:
            raise InputError(f"--before needs a date like 2024-01-31, got {value!r}") from None

    # the three rules, once each ----------------------------------------------------------------------
    def _drops(self, conversation: str, speaker: str, time: str) -> bool:
        """Whether a chat message with these fields is forgotten."""
        if self.kind == "conversation":
            return conversation == self.value
        if self.kind == "speaker":
            return speaker.strip().casefold() == self.value.strip().casefold()
        return self._is_before(time)

    def _is_before(self, time: str) -> bool:
        return self.kind == "before" and bool(time) and time[:10] < self.value

    def drops_mail(self, mail: Mail) -> bool:
        """--speaker matches an e-mail's sender (not its recipients), --before its date."""
        if self.kind == "speaker":
            return mail.sent_by(self.value)
        return self._is_before(mail.date)

    # where they apply --------------------------------------------------------------------------------
    def drops_message(self, message: Message) -> bool:
        return self._drops(message.conversation, message.speaker, message.time)

    def drops_turn(self, turn: Turn, conversation: str) -> bool:
        return self._drops(conversation, turn.speaker, turn.time)

    def drops_section(self, section: Section) -> bool:
        """Dated sections (e-mails) fall under --before; --speaker matches an e-mail's sender."""
        if section.mail is not None:
            return self.drops_mail(section.mail)
        return self._is_before(section.time)

    def drops_chunk(self, chunk: Chunk) -> bool:
        """A prose chunk is forgotten whole; a chat chunk when none of its turns is left."""
        if chunk.kind == "chat":
            return not any(not self.drops_turn(turn, chunk.conversation) for turn in chunk.turns)
        if chunk.mail is not None:
            return self.drops_mail(chunk.mail)
        return self._is_before(chunk.start_time)

    def touches(self, chunk: Chunk) -> bool:
        """Whether the rule changes the chunk: drops it, or one of its turns or the turn before it."""
        if chunk.kind != "chat":
            return self.drops_chunk(chunk)
        return any(self.drops_turn(turn, chunk.conversation) for turn in (*chunk.context, *chunk.turns))

    def describe(self) -> str:
        return {"conversation": "conversation", "speaker": "messages by", "before": "everything before"}[
            self.kind
        ] + f" {self.value}"


def apply_rules(document: Document, rules: Sequence[ForgetRule]) -> Document:
    if not rules:
        return document
    return replace(
        document,
        sections=[s for s in document.sections if not any(r.drops_section(s) for r in rules)],
        messages=[m for m in document.messages if not any(r.drops_message(m) for r in rules)],
    )


def apply_to_chunk(chunk: Chunk, rule: ForgetRule) -> Chunk | None:
    """A stored chunk with the rule applied (its source's file is gone, so it cannot be cut again): None if
    nothing is left; else the chunk without the forgotten turns, in its context too (same id and place)."""
    if rule.drops_chunk(chunk):
        return None
    if chunk.kind != "chat":
        return chunk
    turns = tuple(t for t in chunk.turns if not rule.drops_turn(t, chunk.conversation))
    context = tuple(t for t in chunk.context if not rule.drops_turn(t, chunk.conversation))
    start = chunk.start_time if turns[0] == chunk.turns[0] else turns[0].time
    end = chunk.end_time if turns[-1] == chunk.turns[-1] else turns[-1].time
    return replace(chunk, turns=turns, context=context, start_time=start, end_time=end)
