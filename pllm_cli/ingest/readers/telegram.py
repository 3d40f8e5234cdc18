"""Telegram Desktop export (Settings > Advanced > Export Telegram data, format JSON): result.json.

Either one chat ({name, type, id, messages}) or a full export ({personal_information, chats: {list: [...]},
left_chats: {list: [...]}}). Service messages (joins, pins, calls) are skipped; `text` is a string or a list
of strings and entities ({type, text}) whose texts are joined; a photo, sticker or file becomes a marker
such as "[photo]", before its caption if it has one.

Times: `date` is the exporting computer's local time without zone and `date_unixtime` the instant, so their
difference is the UTC offset then: times are emitted as that local time with its offset
("2023-05-01T10:00:00+02:00"), or in UTC when the two do not agree on a plausible offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.readers.exports import read_json_export

_HINT = "expected Telegram Desktop's result.json (Settings > Advanced > Export Telegram data, format JSON)"
_MEDIA_MARKERS = {
    "sticker": "[sticker]",
    "animation": "[GIF]",
    "video_file": "[video]",
    "video_message": "[video message]",
    "voice_message": "[voice message]",
    "audio_file": "[audio]",
}
_MAX_OFFSET = timedelta(hours=14)


def _is_chat(chat: Any) -> bool:
    """{type, id, messages}, whose messages (if any) have a type and a date."""
    if not isinstance(chat, dict) or not isinstance(chat.get("messages"), list) or not {"type", "id"} <= chat.keys():
        return False
    sample = [message for message in chat["messages"][:20] if isinstance(message, dict)]
    return not chat["messages"] or any("type" in message and "date" in message for message in sample)


def _chats(parsed: Any) -> list[dict[str, Any]] | None:
    if not isinstance(parsed, dict):
        return None
    if _is_chat(parsed):
        return [parsed]
    lists = [parsed.get(key) for key in ("chats", "left_chats")]
    found = [group["list"] for group in lists if isinstance(group, dict) and isinstance(group.get("list"), list)]
    if not found:
        return None
    return [chat for chat_list in found for chat in chat_list if isinstance(chat, dict)]


def is_telegram(parsed: Any) -> bool:
    """One chat with `messages`, or a full export with `chats.list`."""
    return _chats(parsed) is not None


def flatten_text(value: Any) -> str:
    """`text` as a string: a list of strings and entity objects ({type, text}) is joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            item if isinstance(item, str) else str(item.get("text") or "") if isinstance(item, dict) else ""
            for item in value
        )
    return ""


def message_time(message: dict[str, Any]) -> str:
    """Local time with its UTC offset, from `date` and `date_unixtime` (see the module docstring)."""
    local_text = message.get("date")
    try:
        local = datetime.fromisoformat(local_text) if isinstance(local_text, str) and local_text else None
    except ValueError:
        local = None
    unix = message.get("date_unixtime")
    try:
        instant = datetime.fromtimestamp(int(unix), UTC) if isinstance(unix, str | int) else None
    except (ValueError, OverflowError, OSError):
        instant = None
    if instant is None:
        return local.isoformat() if local is not None else ""
    if local is not None and local.tzinfo is None:
        offset = local - instant.replace(tzinfo=None)
        if abs(offset) <= _MAX_OFFSET and offset % timedelta(minutes=15) == timedelta(0):
            return instant.astimezone(timezone(offset)).isoformat()
    return instant.isoformat()


def media_marker(message: dict[str, Any]) -> str:
    """'[photo]', '[sticker 😀]', '[poll] question', ... or '' for a plain text message."""
    if "photo" in message:
        return "[photo]"
    media_type = message.get("media_type")
    if media_type == "sticker" and isinstance(message.get("sticker_emoji"), str):
        return f"[sticker {message['sticker_emoji']}]"
    if isinstance(media_type, str):
        return _MEDIA_MARKERS.get(media_type, f"[{media_type.replace('_', ' ')}]")
    poll = message.get("poll")
    if isinstance(poll, dict):
        return f"[poll] {poll.get('question') or ''}".strip()
    if "location_information" in message:
        return "[location]"
    if "contact_information" in message:
        return "[contact]"
    if "file" in message:
        name = message.get("file_name")
        return f"[file: {name}]" if isinstance(name, str) and name else "[file]"
    return ""


def chat_messages(chat: dict[str, Any], me: str | None = None) -> list[Message]:
    """The chat's messages; `me` is the exporting user's from_id ("user123"), known in a full export."""
    chat_id = chat.get("id", "")
    name = chat.get("name") or ("Saved Messages" if chat.get("type") == "saved_messages" else f"chat {chat_id}")
    conversation = f"Telegram: {name}"
    messages: list[Message] = []
    for message in chat.get("messages") or []:
        if not isinstance(message, dict) or message.get("type", "message") != "message":
            continue  # service messages: joins, pins, calls, title changes
        text = flatten_text(message.get("text")).strip()
        marker = media_marker(message)
        body = f"{marker} {text}".strip() if marker else text
        if not body:
            continue
        from_id = message.get("from_id")
        speaker = message.get("from") or message.get("author") or "Deleted Account"
        messages.append(
            Message(
                conversation=conversation,
                id=f"tg-{chat_id}-{message.get('id', len(messages))}",
                speaker=str(speaker),
                time=message_time(message),
                text=body,
                from_user=(from_id == me) if me and isinstance(from_id, str) else None,
            )
        )
    return messages


def telegram_document(path: Path, parsed: Any) -> Document:
    """The Document of already parsed result.json content."""
    chats = _chats(parsed)
    if chats is None:
        raise InputError(f"{path.name}: not a Telegram export (no 'messages' or 'chats')", hint=_HINT)
    me: str | None = None
    personal = parsed.get("personal_information")
    if isinstance(personal, dict) and isinstance(personal.get("user_id"), int | str):
        me = f"user{personal['user_id']}"
    messages = [message for chat in chats for message in chat_messages(chat, me)]
    title = f"Telegram: {parsed.get('name')}" if "messages" in parsed and parsed.get("name") else "Telegram export"
    return Document(source=str(path), format="telegram", title=title, messages=messages)


def read_telegram(path: Path, data: bytes) -> Document:
    """result.json, or a .zip of the export folder holding it."""
    return read_json_export(path, data, "result.json", _HINT, telegram_document)
