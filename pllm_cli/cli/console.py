"""Consoles, created on first use: data goes to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from functools import cache
from typing import Any

import typer
from rich.console import Console

from pllm_cli.errors import PllmError
from pllm_cli.user_text import decoded_lines


@cache
def out() -> Console:
    return Console(soft_wrap=True, highlight=False)


@cache
def err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_json(data: Any) -> None:
    """One JSON document (or JSON line) on stdout, no colour, no wrapping."""
    write(json.dumps(data, ensure_ascii=False) + "\n")


def write(text: str) -> None:
    """Raw streamed text on stdout, flushed at once. A closed pipe (`| head`) ends the command quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(0) from None


def silence_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so the flush at exit cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests capture it in memory)
        pass


def report_error(error: PllmError) -> None:
    """`Error: ...` and `Hint: ...` on stderr."""
    err().print(f"Error: {error.message}", markup=False)
    if error.hint:
        err().print(f"Hint: {error.hint}", markup=False, style="dim")


def stdin_lines() -> Iterator[str]:
    """stdin a line at a time, as UTF-8 (its bytes decoded here: a line that is not UTF-8 is an InputError,
    whatever the locale makes of sys.stdin)."""
    buffer = getattr(sys.stdin, "buffer", None)
    return decoded_lines(buffer if buffer is not None else sys.stdin, "stdin")


def stdin_text() -> str:
    """All of stdin, as UTF-8 (see stdin_lines)."""
    return "".join(stdin_lines())
