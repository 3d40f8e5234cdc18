"""Markdown and plain text: sections follow the heading structure."""

from __future__ import annotations

import re
from pathlib import Path

from pllm_cli.ingest.document import Document, Section
from pllm_cli.ingest.text import decode_text

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class MarkdownSplitter:
    """Sections of markdown fed a part at a time (a large file is read in parts): the heading path and an open
    code fence carry over from one part to the next. The first H1 becomes the title."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.stack: list[tuple[int, str]] = []
        self.in_fence = False
        self.seen_text = False

    def feed(self, text: str) -> list[Section]:
        sections: list[Section] = []
        lines: list[str] = []

        def flush() -> None:
            body = "\n".join(lines).strip()
            if body:
                path = [self.title] + [h for _, h in self.stack if h != self.title]
                sections.append(Section(heading=" > ".join(path), text=body))
                self.seen_text = True
            lines.clear()

        for line in text.splitlines():
            if _FENCE.match(line):
                self.in_fence = not self.in_fence
            match = None if self.in_fence else _HEADING.match(line)
            if match is None:
                lines.append(line)
                continue
            flush()
            level, heading = len(match.group(1)), match.group(2).strip()
            if level == 1 and not self.seen_text and not self.stack:
                self.title = heading
            while self.stack and self.stack[-1][0] >= level:
                self.stack.pop()
            self.stack.append((level, heading))
        flush()
        return sections


def split_markdown(text: str, title: str) -> tuple[str, list[Section]]:
    """Split markdown into sections keyed by their heading path; the first H1 becomes the title."""
    splitter = MarkdownSplitter(title)
    sections = splitter.feed(text)
    return splitter.title, sections


def read_markdown(path: Path, data: bytes) -> Document:
    title, sections = split_markdown(decode_text(data, path.name), path.stem)
    return Document(source=str(path), format="markdown", title=title, sections=sections)


def read_plain_text(path: Path, data: bytes) -> Document:
    text = decode_text(data, path.name).strip()
    return Document(source=str(path), format="text", title=path.stem, sections=[Section(heading=path.stem, text=text)])
