"""Text a user gives (a question, a query, stdin): it must be UTF-8, or it is refused with one clean error.

A command-line argument that is not UTF-8 reaches Python with lone surrogates standing for its bytes;
SQLite, JSON and the tokenizers refuse those with a traceback, so they are refused here first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pllm_cli.errors import InputError

UTF8_HINT = "pllm reads UTF-8 text: convert it first, e.g. with iconv -f latin1 -t utf-8"


def is_text(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_text(text: str, what: str) -> str:
    """`text`, or an InputError if it is not UTF-8 (`what` names it: "the question", "the query")."""
    if not is_text(text):
        where = next(i for i, char in enumerate(text) if not is_text(char))
        raise InputError(f"{what} is not valid UTF-8 (character {where + 1})", hint=UTF8_HINT)
    return text


def decoded_lines(lines: Iterable[bytes | str], what: str) -> Iterator[str]:
    """Lines (of stdin) as text: bytes decoded as UTF-8, each line checked; the first bad one is an InputError."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{what}, line {number}: not valid UTF-8 (byte {exc.start})", hint=UTF8_HINT) from None
        yield require_text(line, f"{what}, line {number},")
