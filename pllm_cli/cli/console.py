"""Consoles, created on first use: data goes to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

from rich.console import Console

from pllm_cli.errors import PllmError


@cache
def out() -> Console:
    return Console(soft_wrap=True, highlight=False)


@cache
def err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_json(data: Any) -> None:
    """One JSON document (or JSON line) on stdout, no colour, no wrapping."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def write(text: str) -> None:
    """Raw streamed text on stdout, flushed at once."""
    sys.stdout.write(text)
    sys.stdout.flush()


def report_error(error: PllmError) -> None:
    """`Error: ...` and `Hint: ...` on stderr."""
    err().print(f"Error: {error.message}", markup=False)
    if error.hint:
        err().print(f"Hint: {error.hint}", markup=False, style="dim")
