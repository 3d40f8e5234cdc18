"""WhatsApp "Export chat": the .txt (Android "WhatsApp Chat with NAME.txt", iOS "_chat.txt") or the .zip
holding it with the media files.

Every message starts with a line like one of these (the layout follows the phone's locale):

    12/31/23, 9:41 PM - Anna: text             Android, 12-hour clock
    31/12/2023, 21:41 - Anna: text             Android, 24-hour clock
    [31/12/2023, 21:41:07] Anna: text          iOS
    [12/31/23, 9:41:07 PM] Anna: text          iOS, 12-hour clock (U+202F before PM in recent versions)

Lines that do not start like that continue the message before them. Lines without "Name:" are system
notices (encryption notice, "X added Y", ...) and are skipped, as are deleted messages; media placeholders
become a short marker such as "[photo]". On iOS, system notices and attachments are marked with U+200E.

Day and month order is decided once per file: a first number above 12 means day first, a second number
above 12 means month first; otherwise day first, unless the file uses a 12-hour clock with 2-digit years
(the US layout). The export has no time zone: times are the phone's local time, emitted as naive ISO 8601
("2023-12-31T21:41:00", no offset).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.readers.exports import is_zip, member_name, open_zip, read_member, zip_files
from pllm_cli.ingest.text import decode_text

_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_HEADER_START = "[" + _BIDI
_HINT = "expected a WhatsApp chat export (Chat > More > Export chat): the .txt or the .zip"

# One header line: an optional "[", date, optional ",", an optional short word ("klo", "um"), time with
# optional seconds and AM/PM, then "] " (iOS) or " - " (Android), then the rest.
_HEADER = re.compile(
    r"""
    (?P<open>\[)?
    (?P<d1>\d{1,4})(?P<sep>[./-])(?P<d2>\d{1,2})(?P=sep)(?P<d3>\d{2,4})\.?
    ,?\s(?:[^\W\d_]{1,4}\.?\s)?
    (?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?
    (?:\s?(?P<ampm>[AaPp]\.?\s?[Mm]\.?))?
    (?(open)\]\s|\s[-–]\s)
    (?P<rest>.*)
    """,
    re.VERBOSE,
)
_SENDER = re.compile(r"(?P<name>[^:]+?):(?:\s(?P<text>.*)|$)", re.DOTALL)
# "Name: text" where "Name" is really a system notice whose text has a colon ("X changed the subject to Y: Z")
_SYSTEM_NAME = re.compile(
    r" (?:changed the (?:subject|group|settings)|changed this group|changed their phone number|created group"
    r"|created this group|added |removed |pinned a message|turned (?:on|off) disappearing)"
)
_DELETED = re.compile(r"(?:this message was deleted|you deleted this message)\.?", re.IGNORECASE)
_EDITED = re.compile(r"\s*<this message was edited>\s*$", re.IGNORECASE)
_OMITTED = re.compile(
    r"(?P<kind>image|photo|video|audio|sticker|gif|document|contact card|video note) omitted", re.IGNORECASE
)
_DOCUMENT_OMITTED = re.compile(r"(?P<file>[^•]+?)\s*•.*\bdocument omitted", re.IGNORECASE | re.DOTALL)  # iOS
_ATTACHED = re.compile(r"<attached: (?P<file>[^>]+)>\s*(?P<caption>.*)", re.DOTALL)
_FILE_ATTACHED = re.compile(r"(?P<file>\S[^\n]*?\.\w{2,5}) \(file attached\)\s*(?P<caption>.*)", re.DOTALL)
_CHAT_NAME = re.compile(
    r"WhatsApp[\s_-]*Chat\s*(?:(?:with|mit|met|avec|con|com|med|z|с)\s+)?[-–]?\s*(?P<name>.+?)(?:\s*\(\d+\))?",
    re.IGNORECASE,
)

_KIND_MARKERS = {
    "image": "[photo]",
    "photo": "[photo]",
    "video": "[video]",
    "video note": "[video]",
    "audio": "[audio]",
    "sticker": "[sticker]",
    "gif": "[GIF]",
    "document": "[document]",
    "contact card": "[contact]",
}
_IOS_FILE = re.compile(r"\d+-(?P<kind>PHOTO|VIDEO|AUDIO|STICKER|GIF)-", re.IGNORECASE)  # 00000012-PHOTO-...
_ANDROID_PREFIXES = {"IMG": "[photo]", "VID": "[video]", "PTT": "[audio]", "AUD": "[audio]", "STK": "[sticker]"}
_EXTENSION_MARKERS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "heic", "webp"), "[photo]"),
    **dict.fromkeys(("mp4", "mov", "3gp"), "[video]"),
    **dict.fromkeys(("opus", "m4a", "mp3", "ogg", "aac", "wav"), "[audio]"),
    "vcf": "[contact]",
}


@dataclass
class _Draft:
    line: int
    time: str
    speaker: str
    lines: list[str]


_NO_BIDI = str.maketrans("", "", _BIDI)


def _strip_bidi(text: str) -> str:
    return text.translate(_NO_BIDI)


def _header(line: str) -> re.Match[str] | None:
    return _HEADER.match(line.lstrip(_BIDI))


def _is_sender_line(match: re.Match[str]) -> bool:
    sender = _SENDER.match(match["rest"].lstrip(_BIDI))
    return sender is not None and not _SYSTEM_NAME.search(sender["name"])


def looks_like_whatsapp(data: bytes | str) -> bool:
    """Whether the first non-empty lines are WhatsApp message lines (at least two, one with a sender)."""
    text = data if isinstance(data, str) else data[:65536].decode("utf-8-sig", errors="replace")
    lines = [line for line in (raw.strip() for raw in text.split("\n")[:200]) if line.strip(_BIDI)][:30]
    if not lines:
        return False
    headers = [match for match in map(_header, lines) if match is not None]
    if _header(lines[0]) is None or not any(_is_sender_line(match) for match in headers):
        return False
    return len(headers) >= 2 or len(lines) == 1


def _order(matches: list[re.Match[str]]) -> str:
    """'ymd', 'dmy' or 'mdy' for the whole file."""
    if any(len(match["d1"]) == 4 for match in matches):
        return "ymd"
    if any(int(match["d1"]) > 12 for match in matches):
        return "dmy"
    if any(int(match["d2"]) > 12 for match in matches):
        return "mdy"
    twelve_hour = any(match["ampm"] for match in matches)
    short_year = all(len(match["d3"]) == 2 for match in matches)
    return "mdy" if twelve_hour and short_year else "dmy"


def _time(match: re.Match[str], order: str) -> datetime:
    first, second, third = int(match["d1"]), int(match["d2"]), int(match["d3"])
    if order == "ymd":
        year, month, day = first, second, third
    elif order == "mdy":
        month, day, year = first, second, third
    else:
        day, month, year = first, second, third
    if year < 100:
        year += 2000
    hour = int(match["hour"])
    if match["ampm"]:
        hour = hour % 12 + (12 if match["ampm"][0] in "Pp" else 0)
    return datetime(year, month, day, hour, int(match["minute"]), int(match["second"] or 0))


def _media_marker(file_name: str) -> str:
    if ios := _IOS_FILE.match(file_name):
        return _KIND_MARKERS[ios["kind"].lower()]
    prefix = file_name[:4].upper()
    if prefix[3:] == "-" and prefix[:3] in _ANDROID_PREFIXES:  # IMG-20231231-WA0001.jpg
        return _ANDROID_PREFIXES[prefix[:3]]
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if extension in _EXTENSION_MARKERS:
        return _EXTENSION_MARKERS[extension]
    return f"[document: {file_name}]" if extension else "[media]"


def _message_text(raw: str) -> str | None:
    """The text to keep for a message body; None when the message is to be skipped."""
    marked = raw.startswith("\u200e")  # iOS marks attachments and system notices
    text = _EDITED.sub("", _strip_bidi(raw)).strip()
    if not text or _DELETED.fullmatch(text):
        return None
    if text.lower() == "<media omitted>":
        return "[media]"
    if omitted := _OMITTED.fullmatch(text):
        return _KIND_MARKERS[omitted["kind"].lower()]
    if document := _DOCUMENT_OMITTED.fullmatch(text):  # "Lease.pdf • 3 pages document omitted"
        return f"[document: {document['file'].strip()}]"
    if attached := _ATTACHED.match(text) or _FILE_ATTACHED.match(text):
        return " ".join(part for part in (_media_marker(attached["file"].strip()), attached["caption"].strip()) if part)
    if marked and text.lower().startswith("location:"):
        return "[location] " + text.split(":", 1)[1].strip()
    if marked:
        return None  # an iOS system notice: "Messages and calls are end-to-end encrypted", "Missed voice call"
    return text


def parse_whatsapp(text: str, conversation: str, warnings: list[str] | None = None) -> list[Message]:
    """The messages of a chat export's text; ids are "wa-" + the line number the message starts on.

    A message whose date cannot be (31/02/2023) is an InputError, or with `warnings` left out (its lines
    with it) and reported there: one bad line does not cost the rest of the chat."""
    lines = text.split("\n")
    headers: dict[int, re.Match[str]] = {}
    for index, line in enumerate(lines):
        if line and (line[0].isdigit() or line[0] in _HEADER_START):  # a cheap test first: 10,000s of lines
            match = _header(line.rstrip("\r"))
            if match is not None:
                headers[index] = match
    order = _order(list(headers.values()))
    messages: list[Message] = []
    draft: _Draft | None = None

    def flush() -> None:
        if draft is None:
            return
        body = _message_text("\n".join(draft.lines).rstrip())
        if body:
            messages.append(Message(conversation, f"wa-{draft.line}", draft.speaker, draft.time, body))

    for index, line in enumerate(lines):
        match = headers.get(index)
        if match is None:
            if draft is not None:
                draft.lines.append(line.rstrip("\r"))
            continue
        flush()
        draft = None
        rest = match["rest"].rstrip("\r")
        sender = _SENDER.match(rest.lstrip(_BIDI))
        if sender is None or _SYSTEM_NAME.search(sender["name"]):
            continue  # a system notice; its continuation lines are dropped with it
        try:
            when = _time(match, order).isoformat()
        except ValueError:
            problem = f"line {index + 1}: invalid date {match.group(0)[:40].strip()!r}"
            if warnings is None:
                raise InputError(problem, hint=_HINT) from None
            warnings.append(problem + ", message left out")
            continue
        name = re.sub(r"^~[\s\u202f]*", "", _strip_bidi(sender["name"]).strip()).strip()
        draft = _Draft(index + 1, when, name, [sender["text"] or ""])
    flush()
    return messages


def chat_name(file_name: str) -> str:
    """'WhatsApp Chat with Anna.txt' -> 'Anna', 'WhatsApp Chat - Anna.zip' -> 'Anna', else the file stem."""
    stem = PurePosixPath(file_name).stem.strip()
    match = _CHAT_NAME.fullmatch(stem)
    return match["name"].strip() if match and match["name"].strip() else stem


def find_chat_member(path: Path, archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """The chat text in an export archive: "_chat.txt" (iOS) or "WhatsApp Chat with NAME.txt" (Android)."""
    texts = [info for info in zip_files(archive) if member_name(info).lower().endswith(".txt")]
    texts.sort(key=lambda info: (member_name(info) != "_chat.txt", not member_name(info).startswith("WhatsApp")))
    for info in texts:
        try:
            with archive.open(info) as member:
                head = member.read(65536)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError):
            continue
        if looks_like_whatsapp(head):
            return info
    return None


def _conversation_name(path: Path, member: str | None) -> str:
    if member is not None and member_name_matches(member):
        return chat_name(member)
    if path.stem == "_chat" and path.parent.name:
        return chat_name(path.parent.name + ".txt")
    return chat_name(path.name)


def member_name_matches(name: str) -> bool:
    return _CHAT_NAME.fullmatch(PurePosixPath(name).stem.strip()) is not None


def read_whatsapp(path: Path, data: bytes) -> Document:
    """The chat .txt, or the export .zip holding it."""
    member: str | None = None
    if is_zip(data):
        with open_zip(path, data) as archive:
            info = find_chat_member(path, archive)
            if info is None:
                raise InputError(f"{path.name}: no WhatsApp chat .txt in the archive", hint=_HINT)
            member = info.filename
            data = read_member(path, archive, info)
    where = f"{path.name}: {member}" if member else path.name
    text = decode_text(data, where)
    conversation = "WhatsApp: " + _conversation_name(path, member)
    warnings: list[str] = []
    messages = parse_whatsapp(text, conversation, warnings)
    return Document(
        source=str(path),
        format="whatsapp",
        title=conversation,
        messages=messages,
        warnings=[f"{where}: {warning}" for warning in warnings],
    )
