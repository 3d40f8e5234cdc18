"""Claude data export: the .zip as downloaded, or its conversations.json.

conversations.json is a list of {uuid, name, created_at, chat_messages: [{uuid, sender, text, content,
created_at}]}; `sender` is "human" or "assistant" and `content` a list of blocks, of which the "text" ones
are read (tool calls, tool results and thinking are left out).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.readers.exports import read_json_export

SPEAKERS = {"human": "User", "user": "User", "assistant": "Claude"}
_HINT = "expected Claude's conversations.json (Settings > Privacy > Export data), or the .zip itself"


def _conversations(parsed: Any) -> list[Any] | None:
    if isinstance(parsed, dict):
        if isinstance(parsed.get("chat_messages"), list):
            return [parsed]
        if isinstance(parsed.get("conversations"), list):
            return list(parsed["conversations"])
        return None
    return parsed if isinstance(parsed, list) else None


def is_claude(parsed: Any) -> bool:
    """A list of conversations (or one conversation) with `chat_messages`."""
    conversations = _conversations(parsed)
    if not conversations:
        return False
    first = next((item for item in conversations if isinstance(item, dict)), None)
    return first is not None and isinstance(first.get("chat_messages"), list)


def iso_time(value: Any) -> str:
    """'2024-03-05T10:21:33.123456Z' -> '2024-03-05T10:21:33+00:00'; anything unparseable -> ''."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat(timespec="seconds")
    except ValueError:
        return ""


def message_text(message: dict[str, Any]) -> str:
    """The text blocks of `content`, else the `text` field (which renders tool use as placeholders)."""
    blocks = message.get("content")
    if isinstance(blocks, list):
        texts = [
            block["text"].strip()
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        joined = "\n\n".join(text for text in texts if text)
        if joined:
            return joined
    text = message.get("text")
    return text.strip() if isinstance(text, str) else ""


def conversation_messages(conversation: dict[str, Any]) -> list[Message]:
    name = str(conversation.get("name") or conversation.get("uuid") or "").strip() or "Claude conversation"
    messages: list[Message] = []
    for number, message in enumerate(conversation.get("chat_messages") or []):
        if not isinstance(message, dict) or message.get("sender") not in SPEAKERS:
            continue
        text = message_text(message)
        if not text:
            continue
        sender = message["sender"]
        messages.append(
            Message(
                conversation=name,
                id=str(message.get("uuid") or f"{conversation.get('uuid', name)}-{number}"),
                speaker=SPEAKERS[sender],
                time=iso_time(message.get("created_at")),
                text=text,
                from_user=sender != "assistant",
            )
        )
    return messages


def claude_document(path: Path, parsed: Any) -> Document:
    """The Document of already parsed conversations.json content."""
    if not is_claude(parsed):
        raise InputError(f"{path.name}: not a Claude export (no conversations with 'chat_messages')", hint=_HINT)
    conversations = [item for item in _conversations(parsed) or [] if isinstance(item, dict)]
    messages = [message for conversation in conversations for message in conversation_messages(conversation)]
    return Document(source=str(path), format="claude", title="Claude conversations", messages=messages)


def read_claude(path: Path, data: bytes) -> Document:
    """The export .zip (its conversations.json is read) or conversations.json itself."""
    return read_json_export(path, data, "conversations.json", _HINT, claude_document)
