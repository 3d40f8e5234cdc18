"""Chat exports recognised by their content: ChatGPT, Claude, WhatsApp and Telegram.

`sniff(path, data)` says which export a file is (a .zip as downloaded, the JSON or text file inside it, under
any name) and returns the reader for it; the readers share the zip and JSON helpers below.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document
from pllm_cli.ingest.text import decode_text
from pllm_cli.memory.records import Format

Reader = Callable[[Path, bytes], Document]
ParsedReader = Callable[[Path, Any], Document]

EXPORT_FORMATS = ("chatgpt", "claude", "whatsapp", "telegram")

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
_ZIP_HINT = "is the download complete? try downloading the export again"
_NOT_JSON = object()
_JSON_HINT = "is the file complete? exports are read as downloaded, without changes"


# --- shared helpers --------------------------------------------------------------------------------------


def is_zip(data: bytes) -> bool:
    return data[:4] in _ZIP_MAGIC


def open_zip(path: Path, data: bytes) -> zipfile.ZipFile:
    """The archive in `data`; a corrupt or truncated one is an InputError."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path.name}: not a valid zip archive ({exc})", hint=_ZIP_HINT) from None


def zip_files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's files, without folders and macOS metadata (__MACOSX/, ._name), shortest paths first."""
    infos = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not PurePosixPath(info.filename).name.startswith("._")
    ]
    return sorted(infos, key=lambda info: (info.filename.count("/"), info.filename))


def member_name(info: zipfile.ZipInfo) -> str:
    return PurePosixPath(info.filename).name


def read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The bytes of one archive member; a damaged or encrypted member is an InputError."""
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(f"{path.name}: {info.filename} is damaged ({exc})", hint=_ZIP_HINT) from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unsupported compression method
        raise InputError(
            f"{path.name}: cannot read {info.filename} ({exc})", hint="extract the archive and ingest the file in it"
        ) from None


def find_members(archive: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """Members called `name` (in any folder), shortest paths first."""
    return [info for info in zip_files(archive) if member_name(info).lower() == name.lower()]


def load_json(path: Path, data: bytes, member: str = "") -> Any:
    """Parse JSON bytes; `member` names the file inside an archive in the error message."""
    where = f"{path.name}: {member}" if member else path.name
    text = decode_text(data, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", hint=_JSON_HINT
        ) from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply", hint=_JSON_HINT) from None


def json_kind(parsed: Any) -> Format | None:
    """'chatgpt', 'claude' or 'telegram' when parsed JSON has that export's shape, else None."""
    from pllm_cli.ingest.readers import chatgpt, claude, telegram

    if chatgpt.is_chatgpt(parsed):
        return "chatgpt"
    if claude.is_claude(parsed):
        return "claude"
    if telegram.is_telegram(parsed):
        return "telegram"
    return None


# --- sniffing --------------------------------------------------------------------------------------------


def _parsed_readers() -> dict[Format, tuple[Reader, ParsedReader]]:
    from pllm_cli.ingest.readers import chatgpt, claude, telegram

    return {
        "chatgpt": (chatgpt.read_chatgpt, chatgpt.chatgpt_document),
        "claude": (claude.read_claude, claude.claude_document),
        "telegram": (telegram.read_telegram, telegram.telegram_document),
    }


def _bound(reader: Reader, from_parsed: ParsedReader, data: bytes, parsed: Any) -> Reader:
    """`reader`, but reusing the JSON sniff() already parsed when it is given the same bytes again."""

    def read(path: Path, given: bytes) -> Document:
        if given is data:
            return from_parsed(path, parsed)
        return reader(path, given)

    return read


def _sniff_zip(path: Path, data: bytes) -> tuple[Format, Reader] | None:
    from pllm_cli.ingest.readers import whatsapp

    with open_zip(path, data) as archive:
        for info in find_members(archive, "conversations.json") + find_members(archive, "result.json"):
            parsed = load_json(path, read_member(path, archive, info), info.filename)
            kind = json_kind(parsed)
            if kind is not None:
                reader, from_parsed = _parsed_readers()[kind]
                return kind, _bound(reader, from_parsed, data, parsed)
        if whatsapp.find_chat_member(path, archive) is not None:
            return "whatsapp", whatsapp.read_whatsapp
    return None


def _looks_like_json(data: bytes) -> bool:
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"{", b"[")


def read_json_export(
    path: Path, data: bytes, member: str, hint: str, build: Callable[[Path, Any], Document]
) -> Document:
    """An export that is a JSON file (`member`), given bare or inside the .zip as downloaded."""
    if is_zip(data):
        with open_zip(path, data) as archive:
            members = find_members(archive, member)
            if not members:
                raise InputError(f"{path.name}: no {member} in the archive", hint=hint)
            return build(path, load_json(path, read_member(path, archive, members[0]), members[0].filename))
    return build(path, load_json(path, data))


def sniff(path: Path, data: bytes) -> tuple[Format, Reader] | None:
    """(format, reader) when `data` is a ChatGPT, Claude, WhatsApp or Telegram export, else None.

    Looks at the content, not the name: a zip archive (the export as downloaded), JSON of an export's shape
    or a WhatsApp chat text. A corrupt zip, or a .json file that is not valid JSON, is an InputError; other
    content that merely is not JSON is left (None) to the reader for its suffix.
    """
    from pllm_cli.ingest.readers import whatsapp

    suffix = path.suffix.lower()
    if is_zip(data) or suffix == ".zip":
        return _sniff_zip(path, data)
    if whatsapp.looks_like_whatsapp(data):  # first: an iOS chat starts with "[" too
        return "whatsapp", whatsapp.read_whatsapp
    if _looks_like_json(data):
        parsed: Any = _NOT_JSON
        if suffix == ".json":
            parsed = load_json(path, data)
        else:
            with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                parsed = json.loads(data.decode("utf-8-sig"))  # JSON Lines fail here: not an export
        if parsed is not _NOT_JSON:
            kind = json_kind(parsed)
            if kind is None:
                return None
            reader, from_parsed = _parsed_readers()[kind]
            return kind, _bound(reader, from_parsed, data, parsed)
    return None
