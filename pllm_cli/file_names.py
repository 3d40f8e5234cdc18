"""File names as text: the name a source is stored under, the file it names, and how a name is shown.

On Linux a file name is bytes; Python turns the bytes that are not UTF-8 into lone surrogates, which SQLite,
JSON and the terminal all refuse. Such a name is stored with those bytes written as `\\xNN` escapes, and
found again by undoing them. A name that is valid UTF-8 is stored as it is, so existing memories keep
their sources.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pllm_cli.user_text import is_text

_ESCAPED_BYTE = re.compile(rb"\\x([89a-f][0-9a-f])")  # undecodable bytes are >= 0x80
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def source_key(path: Path) -> str:
    """The name memory stores `path` under: str(path), its undecodable bytes (if any) as `\\xNN`."""
    name = str(path)
    return name if is_text(name) else _escaped(name)


def source_path(key: str) -> Path:
    """The file a stored source names (source_key reversed). A key with `\\xNN` escapes names the file with
    those bytes, unless a file with the literal name exists."""
    literal = Path(key)
    if "\\x" not in key or literal.exists():
        return literal
    raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), key.encode("utf-8"))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:  # the bytes were not UTF-8: the key was escaped by source_key
        return Path(os.fsdecode(raw))
    return literal


def shown(name: str) -> str:
    """`name` safe to print on one line: control characters (newlines too) and undecodable bytes escaped."""
    if not is_text(name):
        name = _escaped(name)
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), name)


def _escaped(name: str) -> str:
    """`name` with the bytes it stands for that are not UTF-8 written as `\\xNN`."""
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate that no undecodable byte made
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
