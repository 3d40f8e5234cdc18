"""pllm's chat log format (docs/formats.md): one JSON object per line with
`conversation`, `id`, `speaker`, `time`, `text`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.text import decode_text

REQUIRED_KEYS = ("conversation", "id", "speaker", "time", "text")
_HINT = "each line must be one JSON object with conversation, id, speaker, time, text (docs/formats.md)"


def parse_time(value: str) -> str:
    """Normalise an ISO 8601 time; an empty string stays empty."""
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()


def parse_chat_line(line: str, where: str) -> Message:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg})", hint=_HINT) from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object", hint=_HINT)
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}", hint=_HINT)
    values = {key: record[key] for key in REQUIRED_KEYS}
    for key in ("conversation", "id", "speaker", "text"):
        if not isinstance(values[key], str | int) or isinstance(values[key], bool):
            raise InputError(f"{where}: {key} must be a string", hint=_HINT)
    if values["time"] is not None and not isinstance(values["time"], str):
        raise InputError(f"{where}: time must be an ISO 8601 string", hint=_HINT)
    try:
        time = parse_time(values["time"] or "")
    except ValueError:
        raise InputError(
            f"{where}: time {values['time']!r} is not ISO 8601",
            hint='for example "2026-02-03T19:04:00+01:00"',
        ) from None
    return Message(
        conversation=str(values["conversation"]),
        id=str(values["id"]),
        speaker=str(values["speaker"]),
        time=time,
        text=str(values["text"]),
    )


def read_chat_jsonl(path: Path, data: bytes) -> Document:
    text = decode_text(data, path.name)
    messages = [
        parse_chat_line(line, f"{path.name} line {number}")
        for number, line in enumerate(text.split("\n"), start=1)  # not splitlines(): JSON allows U+2028 raw
        if line.strip()
    ]
    return Document(source=str(path), format="chat-jsonl", title=path.stem, messages=messages)
