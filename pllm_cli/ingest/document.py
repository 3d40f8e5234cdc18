"""What a reader returns: a document made of text sections and/or chat messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from pllm_cli.memory.records import Format, Mail


@dataclass(frozen=True)
class Section:
    """A run of prose under a heading path ("Title > Heading > Subheading"); an e-mail's has its headers."""

    heading: str
    text: str
    time: str = ""
    mail: Mail | None = None


@dataclass(frozen=True)
class Message:
    """One chat message; `time` is ISO 8601 (with offset where the source gives one) or empty.

    `from_user` is True when the source itself says the user wrote it (the `user` role of ChatGPT and Claude
    exports), else None: the pipeline then decides by the user's names (`pllm config set me`).
    """

    conversation: str
    id: str
    speaker: str
    time: str
    text: str
    from_user: bool | None = None


@dataclass
class Document:
    source: str
    format: Format
    title: str
    sections: list[Section] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the reader left out, e.g. a line with a bad date

    @property
    def is_empty(self) -> bool:
        return not any(s.text.strip() for s in self.sections) and not any(m.text.strip() for m in self.messages)
