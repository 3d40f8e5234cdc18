"""Markdown and plain text: sections follow the heading structure."""

from __future__ import annotations

import re
from pathlib import Path

from pllm_cli.ingest.document import Document, Section
from pllm_cli.ingest.text import decode_text

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def split_markdown(text: str, title: str) -> tuple[str, list[Section]]:
    """Split markdown into sections keyed by their heading path; the first H1 becomes the title."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            path = [title] + [h for _, h in stack if h != title]
            sections.append(Section(heading=" > ".join(path), text=body))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            lines.append(line)
            continue
        flush()
        level, heading = len(match.group(1)), match.group(2).strip()
        if level == 1 and not sections and not stack:
            title = heading
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
    flush()
    return title, sections


def read_markdown(path: Path, data: bytes) -> Document:
    title, sections = split_markdown(decode_text(data, path.name), path.stem)
    return Document(source=str(path), format="markdown", title=title, sections=sections)


def read_plain_text(path: Path, data: bytes) -> Document:
    text = decode_text(data, path.name).strip()
    return Document(source=str(path), format="text", title=path.stem, sections=[Section(heading=path.stem, text=text)])
