"""E-mail: single .eml files and .mbox archives. Each message becomes a section."""

from __future__ import annotations

import email
import email.policy
import email.utils
import mailbox
import re
from email.message import EmailMessage
from pathlib import Path

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Section
from pllm_cli.ingest.readers.html import html_to_text
from pllm_cli.memory.records import Mail

_QUOTE_HEADER = re.compile(r"^On .{4,200} wrote:\s*$")


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_type() == "text/html":
        content = html_to_text(content)[1]
    return str(content)


def strip_quoted_reply(text: str) -> str:
    """Drop the quoted previous message ("> ..." lines and their "On ... wrote:" header)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    while lines and (not lines[-1].strip() or _QUOTE_HEADER.match(lines[-1].strip())):
        lines.pop()
    return "\n".join(lines).strip()


def _iso_date(value: str) -> str:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return ""
    return parsed.isoformat() if parsed else ""


def _addresses(message: EmailMessage, header: str) -> tuple[str, ...]:
    """The addresses of a header as written ("Zoe Park <zoe@example.com>"), one per recipient."""
    values = [str(value) for value in message.get_all(header, [])]
    return tuple(
        f"{name} <{address}>" if name and address else name or address
        for name, address in email.utils.getaddresses(values)
        if name or address
    )


def message_to_section(message: EmailMessage) -> Section | None:
    subject = str(message.get("subject", "") or "").strip()
    body = strip_quoted_reply(_body_text(message))
    attachments = [part.get_filename() for part in message.iter_attachments() if part.get_filename()]
    if attachments:
        body += "\n\n[attachments: " + ", ".join(str(name) for name in attachments) + "]"
    if not body.strip():
        return None
    date = _iso_date(str(message.get("date", "") or "").strip())
    headers = Mail(
        sender=str(message.get("from", "") or "").strip(),
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        date=date,
        subject=subject,
        message_id=str(message.get("message-id", "") or "").strip(),
    )
    return Section(heading=subject, text=body, time=date, mail=headers)


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def read_eml(path: Path, data: bytes) -> Document:
    message = _parse(data)
    if not message.keys():
        raise InputError(f"{path.name}: not an e-mail (no headers)", hint="an .eml file starts with headers")
    section = message_to_section(message)
    subject = str(message.get("subject", "") or path.stem)
    return Document(source=str(path), format="email", title=subject, sections=[section] if section else [])


def unescape_mbox_from(data: bytes) -> bytes:
    """Undo one level of mbox ">From " quoting (mboxrd): ">From" -> "From", ">>From" -> ">From"."""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", data)


def read_mbox(path: Path, data: bytes) -> Document:
    if not data.startswith(b"From "):
        raise InputError(f"{path.name}: not an mbox archive", hint='an mbox file starts with a "From " line')
    box = mailbox.mbox(path, create=False)
    sections = []
    try:
        for key in box.iterkeys():
            section = message_to_section(_parse(unescape_mbox_from(box.get_bytes(key))))
            if section:
                sections.append(section)
    finally:
        box.close()
    return Document(source=str(path), format="mbox", title=path.stem, sections=sections)
