"""PDF documents: the text layer, page by page."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Section


def read_pdf(path: Path, data: bytes) -> Document:
    import pypdf
    from pypdf.errors import PdfReadError

    if not data.startswith(b"%PDF"):
        raise InputError(f"{path.name}: not a PDF file", hint="check the file, or give it its real extension")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InputError(f"{path.name}: the PDF is encrypted", hint="save an unencrypted copy and ingest that")
        title = str((reader.metadata.title if reader.metadata else None) or "").strip() or path.stem
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(heading=f"{title} > page {number}", text=text))
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path.name}: cannot read the PDF ({exc})", hint="is the file complete?") from None
    return Document(source=str(path), format="pdf", title=title, sections=sections)
