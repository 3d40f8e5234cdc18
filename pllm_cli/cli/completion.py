"""pllm completion: print the shell completion script (the files in completions/ are its output)."""

from __future__ import annotations

import typer

SHELLS = ("bash", "zsh", "fish")


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)


def completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from pllm_cli.cli import app

    import typer.main

    cls = get_completion_class(shell)
    if cls is None:
        raise typer.BadParameter(f"unsupported shell {shell!r}; use one of {', '.join(SHELLS)}")
    return cls(typer.main.get_command(app), {}, "pllm", "_PLLM_COMPLETE").source()


def completion(shell: str = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script for SHELL, e.g. `pllm completion bash > ~/.local/share/bash-completion/completions/pllm`."""
    if shell not in SHELLS:
        raise typer.BadParameter(f"use one of {', '.join(SHELLS)}", param_hint="SHELL")
    typer.echo(completion_script(shell), nl=False)
