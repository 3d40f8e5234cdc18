"""Inputs for fuzzing the importers, shared by tests/test_fuzz_importers.py (a bounded run in the suite) and
bench/fuzz_importers.py (a long run). The property: any bytes under any supported name either become chunks
or fail as a clean InputError (a reported skip or failure of that one file), never a traceback."""

from __future__ import annotations

import io
import json
import traceback
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from pllm_cli.errors import ExitCode, PllmError
from pllm_cli.ingest.chunking import chunk_document
from pllm_cli.ingest.readers import SUPPORTED_SUFFIXES, read_document

# Keys of the exports pllm reads (ChatGPT, Claude, Telegram, chat JSONL): random JSON made of them reaches
# deep into each reader instead of stopping at its first shape test.
EXPORT_KEYS = (
    "mapping", "current_node", "message", "author", "role", "content", "content_type", "parts", "parent",
    "children", "create_time", "title", "id", "uuid", "name", "chat_messages", "sender", "text", "created_at",
    "messages", "date", "date_unixtime", "from", "from_id", "type", "chats", "list", "text_entities",
    "conversation", "speaker", "time", "metadata", "is_visually_hidden_from_conversation",
)  # fmt: skip
MEMBERS = ("conversations.json", "_chat.txt", "result.json", "WhatsApp Chat with Ann.txt", "users.json", "x.txt")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(EXPORT_KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


@st.composite
def whatsapp_lines(draw: Any) -> bytes:
    """A WhatsApp chat text with plausible and impossible dates, 12/24-hour clocks, iOS and Android layouts."""
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        day, month = draw(st.integers(0, 39)), draw(st.integers(0, 19))
        year = draw(st.sampled_from(["23", "2023", "1999", "0000", "99999"]))
        hour, minute = draw(st.integers(0, 29)), draw(st.integers(0, 69))
        stamp = f"{day:02d}/{month:02d}/{year}, {hour:02d}:{minute:02d}" + draw(st.sampled_from(["", " AM", " pm"]))
        name = draw(st.text(max_size=10))
        body = draw(st.text(max_size=30))
        layout = draw(st.sampled_from(["{s} - {n}: {b}", "[{s}] {n}: {b}", "{s} - {b}", "{b}"]))
        lines.append(layout.format(s=stamp, n=name, b=body))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines).encode("utf-8", "surrogatepass")


@st.composite
def zip_archives(draw: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from(MEMBERS) | st.text(min_size=1, max_size=12))
            data = draw(st.binary(max_size=200) | whatsapp_lines() | json_values.map(lambda v: json.dumps(v).encode()))
            archive.writestr(name, data)
    raw = buffer.getvalue()
    cut = draw(st.integers(0, len(raw)))  # sometimes truncated, as a download cut short
    return raw if draw(st.booleans()) else raw[:cut]


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _jsonl(values: list[Any]) -> bytes:
    return "\n".join(json.dumps(v) for v in values).encode("utf-8", "surrogatepass")


# (file name, bytes): every supported suffix with random bytes and text, and the shapes of each export.
inputs = st.one_of(
    st.tuples(st.sampled_from(SUPPORTED_SUFFIXES).map(lambda s: "f" + s), st.binary(max_size=400)),
    st.tuples(
        st.sampled_from(SUPPORTED_SUFFIXES).map(lambda s: "f" + s),
        st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    st.tuples(st.sampled_from(["chat.txt", "WhatsApp Chat with Zoe.txt", "_chat.txt"]), whatsapp_lines()),
    st.tuples(st.sampled_from(["conversations.json", "result.json", "x.json"]), json_values.map(_json_bytes)),
    st.tuples(st.just("chat.jsonl"), st.lists(json_values, max_size=4).map(_jsonl)),
    st.tuples(st.sampled_from(["export.zip", "f.docx"]), zip_archives()),
)


def traceback_of(name: str, data: bytes) -> str | None:
    """None if `data` as file `name` goes in or fails cleanly (an InputError with a printable message);
    else what went wrong, with its traceback."""
    try:
        document = read_document(Path("/fuzz") / name, data)
        chunk_document(document, ("Ann",))
    except PllmError as exc:
        if exc.exit_code != ExitCode.INPUT:
            return f"{name}: exit code {exc.exit_code!r} for bad input: {exc.message}"
        try:
            (exc.message + (exc.hint or "")).encode("utf-8")
        except UnicodeEncodeError:
            return f"{name}: the error message cannot be printed: {exc.message!r}"
    except RecursionError:
        return f"{name}: RecursionError"
    except Exception:
        return f"{name}: {traceback.format_exc()}"
    return None
