"""The --wait option of the commands that change memory or the profile, and how long they wait for the lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from pllm_cli.cli.console import err
from pllm_cli.config import SETTINGS_BY_KEY
from pllm_cli.context import AppContext

LOCK_WAIT_ENV = SETTINGS_BY_KEY["lock_wait"].env_var


def wait_option(what: str, default: str = "the lock_wait setting, 0: exit 10 at once") -> Any:
    """--wait SECONDS, also read from PLLM_LOCK_WAIT; None when neither is given."""
    return typer.Option(
        None,
        "--wait",
        min=0,
        metavar="SECONDS",
        envvar=LOCK_WAIT_ENV,
        show_default=False,
        help=f"If another pllm is changing {what}, wait up to this many seconds for it (default: {default}).",
    )


def lock_wait(app: AppContext, given: float | None, at_least: float = 0.0) -> float:
    """Seconds to wait: --wait or PLLM_LOCK_WAIT if given, else the config file's lock_wait (or `at_least`)."""
    return given if given is not None else max(app.config.lock_wait, at_least)


def waiting_notice(app: AppContext) -> Callable[[str], None] | None:
    """What to print once when a command has to wait for the lock (nothing with --quiet)."""
    if app.quiet:
        return None
    return lambda message: err().print(message, markup=False, style="dim")
