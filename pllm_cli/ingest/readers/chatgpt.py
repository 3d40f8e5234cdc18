"""ChatGPT data export: the .zip as downloaded, or its conversations.json.

conversations.json is a list of conversations; each keeps its messages as a tree (`mapping`: node id ->
{message, parent, children}) because editing a question or regenerating an answer starts a new branch.
Only the branch the user kept is read: from `current_node` up through the parents to the root.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.readers.exports import read_json_export

SPEAKERS = {"user": "User", "assistant": "ChatGPT"}
_TEXT_TYPES = ("text", "multimodal_text", "code")  # others are scaffolding: context, browsing, thoughts
_HINT = "expected ChatGPT's conversations.json (Settings > Data controls > Export data), or the .zip itself"


def is_chatgpt(parsed: Any) -> bool:
    """A list of conversations (or one conversation) with a message `mapping`."""
    if isinstance(parsed, dict):
        return isinstance(parsed.get("mapping"), dict)
    if isinstance(parsed, list) and parsed:
        first = next((item for item in parsed if isinstance(item, dict)), None)
        return first is not None and isinstance(first.get("mapping"), dict)
    return False


def epoch_time(value: Any) -> str:
    """Seconds since the epoch -> ISO 8601 in UTC ('2024-01-31T09:15:02+00:00'); anything else -> ''."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return ""
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return ""


def kept_branch(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of the branch shown in ChatGPT, root first.

    From `current_node` up through `parent`; without a usable current node, from the root down through the
    newest child at each step.
    """
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        return []
    nodes = {key: node for key, node in mapping.items() if isinstance(node, dict)}
    current = conversation.get("current_node")
    if not isinstance(current, str) or current not in nodes:
        current = _newest_leaf(nodes)
    branch: list[dict[str, Any]] = []
    seen: set[str] = set()
    while isinstance(current, str) and current in nodes and current not in seen:
        seen.add(current)
        branch.append(nodes[current])
        current = nodes[current].get("parent")
    branch.reverse()
    return branch


def _newest_leaf(nodes: dict[str, dict[str, Any]]) -> str | None:
    roots = [key for key, node in nodes.items() if node.get("parent") not in nodes]
    if not roots:
        return None
    current, seen = roots[0], {roots[0]}
    while True:
        children = [child for child in nodes[current].get("children") or [] if child in nodes and child not in seen]
        if not children:
            return current
        current = children[-1]
        seen.add(current)


def message_text(content: Any) -> str:
    """The readable text of a message's `content`; '' for scaffolding (custom instructions, browsing, ...)."""
    if not isinstance(content, dict):
        return ""
    kind = content.get("content_type")
    if kind not in _TEXT_TYPES:
        return ""
    pieces: list[str] = []
    if isinstance(content.get("text"), str):  # "code" keeps its text here
        pieces.append(content["text"])
    for part in content.get("parts") or []:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):  # audio_transcription in voice chats
                pieces.append(part["text"])
            elif part.get("content_type") == "image_asset_pointer":
                pieces.append("[image]")
    return "\n".join(piece.strip() for piece in pieces if piece.strip())


def conversation_messages(conversation: dict[str, Any]) -> list[Message]:
    name = str(conversation.get("title") or conversation.get("conversation_id") or conversation.get("id") or "")
    name = name.strip() or "ChatGPT conversation"
    messages: list[Message] = []
    for node in kept_branch(conversation):
        message = node.get("message")
        if not isinstance(message, dict):
            continue
        author = message.get("author")
        role = author.get("role") if isinstance(author, dict) else None
        if role not in SPEAKERS:
            continue  # system and tool messages
        metadata = message.get("metadata")
        if isinstance(metadata, dict) and (
            metadata.get("is_visually_hidden_from_conversation") or metadata.get("is_user_system_message")
        ):
            continue
        text = message_text(message.get("content"))
        if not text:
            continue
        messages.append(
            Message(
                conversation=name,
                id=str(message.get("id") or node.get("id") or ""),
                speaker=SPEAKERS[role],
                time=epoch_time(message.get("create_time")),
                text=text,
                from_user=role == "user",
            )
        )
    return messages


def chatgpt_document(path: Path, parsed: Any) -> Document:
    """The Document of already parsed conversations.json content."""
    if not is_chatgpt(parsed):
        raise InputError(f"{path.name}: not a ChatGPT export (no conversations with a 'mapping')", hint=_HINT)
    conversations = [parsed] if isinstance(parsed, dict) else [item for item in parsed if isinstance(item, dict)]
    messages = [message for conversation in conversations for message in conversation_messages(conversation)]
    return Document(source=str(path), format="chatgpt", title="ChatGPT conversations", messages=messages)


def read_chatgpt(path: Path, data: bytes) -> Document:
    """The export .zip (its conversations.json is read) or conversations.json itself."""
    return read_json_export(path, data, "conversations.json", _HINT, chatgpt_document)
