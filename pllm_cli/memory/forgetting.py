"""Forgetting parts of a source: a conversation, a speaker, or everything before a date.

A rule is stored with the memory and applied at every later ingest, so re-ingesting the same export never
brings forgotten messages back. Applying a rule now rebuilds each affected source from its file with the rule
in force; a source whose file is gone loses its affected chunks whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message, Section
from pllm_cli.ingest.readers.mail import email_sender

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

    def drops_message(self, message: Message) -> bool:
        if self.kind == "conversation":
            return message.conversation == self.value
        if self.kind == "speaker":
            return message.speaker.strip().casefold() == self.value.strip().casefold()
        return bool(message.time) and message.time[:10] < self.value

    def drops_section(self, section: Section) -> bool:
        """Dated sections (e-mails) fall under --before; --speaker matches an e-mail's sender."""
        if self.kind == "before":
            return bool(section.time) and section.time[:10] < self.value
        sender = email_sender(section.heading)
        if self.kind == "speaker" and sender is not None:
            return self.value.strip().casefold() in sender.casefold()
        return False

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
