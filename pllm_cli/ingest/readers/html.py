"""HTML pages: visible text only, headings kept as section boundaries."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from pllm_cli.ingest.document import Document
from pllm_cli.ingest.readers.markdown import split_markdown
from pllm_cli.ingest.text import decode_text

# <head> is not skipped as a whole: its end tag is optional, and its only text is the <title>, read apart
_SKIP = {"script", "style", "noscript", "template", "svg", "nav", "footer"}
_BLOCK = {"p", "div", "br", "li", "tr", "section", "article", "blockquote", "pre", "table", "ul", "ol", "hr"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip_depth += 1
        elif self._skip_depth:
            return
        elif tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP and self._skip_depth:
            self._skip_depth -= 1
        elif self._skip_depth:
            return
        elif tag in _HEADINGS or tag in _BLOCK:
            self.parts.append("\n\n" if tag in _HEADINGS else "\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self.parts.append(re.sub(r"\s+", " ", data))  # keep edge spaces: "chips <b>on</b> Friday"

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.parts).splitlines()]
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text with markdown-style headings) of an HTML page."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join(parser.title.split()), parser.text()


def read_html(path: Path, data: bytes) -> Document:
    page_title, text = html_to_text(decode_text(data, path.name))
    title, sections = split_markdown(text, page_title or path.stem)
    return Document(source=str(path), format="html", title=title, sections=sections)
