"""One reader per format. `read_document` first looks at the content for the chat exports of other services
(ChatGPT, Claude, WhatsApp, Telegram: a .zip as downloaded, their JSON, a WhatsApp .txt), then picks a reader
by file suffix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pllm_cli.errors import InputError, NotAnExportError, PllmError
from pllm_cli.ingest.document import Document
from pllm_cli.memory.records import Format

Reader = Callable[[Path, bytes], Document]


def _readers() -> dict[str, tuple[Format, Reader]]:
    from pllm_cli.ingest.readers import chat_jsonl, docx, html, mail, markdown, pdf

    return {
        ".md": ("markdown", markdown.read_markdown),
        ".markdown": ("markdown", markdown.read_markdown),
        ".txt": ("text", markdown.read_plain_text),
        ".html": ("html", html.read_html),
        ".htm": ("html", html.read_html),
        ".pdf": ("pdf", pdf.read_pdf),
        ".eml": ("email", mail.read_eml),
        ".mbox": ("mbox", mail.read_mbox),
        ".jsonl": ("chat-jsonl", chat_jsonl.read_chat_jsonl),
        ".docx": ("docx", docx.read_docx),
    }


SUPPORTED_SUFFIXES = (
    ".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".eml", ".mbox", ".jsonl", ".docx", ".json", ".zip",
)  # fmt: skip
SNIFFED_SUFFIXES = (".txt", ".json", ".zip", "")  # where the content may be another service's chat export


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_document(path: Path, data: bytes) -> Document:
    """Parse `data` (the bytes of `path`): a recognised chat export by its content, else by suffix."""
    suffix = path.suffix.lower()
    entry = _readers().get(suffix)
    if suffix in SNIFFED_SUFFIXES:
        from pllm_cli.ingest.readers.exports import sniff

        entry = sniff(path, data) or entry
        if entry is None:
            raise NotAnExportError(
                f"{path.name}: not a chat export pllm knows",
                hint="pllm reads ChatGPT, Claude, WhatsApp and Telegram exports; see docs/formats.md",
            )
    if entry is None:
        raise InputError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'!r}",
            hint="supported: " + " ".join(SUPPORTED_SUFFIXES),
        )
    _, reader = entry
    try:
        document = reader(path, data)
    except PllmError:
        raise
    except Exception as exc:  # a malformed file must not stop the other files: report it as bad input
        raise InputError(
            f"{path.name}: cannot parse ({type(exc).__name__}: {exc})", hint="is the file complete and valid?"
        ) from exc
    if document.is_empty:
        raise InputError(f"{path.name}: no text found", hint="is it a scanned PDF or an empty export?")
    return document
