"""pllm completion: print the shell completion script (the files in completions/ are its output).

Typer vendors click, so completion goes through Typer's own completion support.
"""

from __future__ import annotations

import typer

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_PLLM_COMPLETE"


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)


def enable_completion() -> None:
    """Register Typer's completion classes; only needed when the shell asks for completions."""
    from typer._completion_classes import completion_init

    completion_init()


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script  # Typer's script templates

    enable_completion()
    return get_completion_script(prog_name="pllm", complete_var=COMPLETE_VAR, shell=shell) + "\n"


def completion(shell: str = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script for SHELL (see completions/ for installed copies)."""
    if shell not in SHELLS:
        raise typer.BadParameter(f"use one of {', '.join(SHELLS)}", param_hint="SHELL")
    typer.echo(completion_script(shell), nl=False)
