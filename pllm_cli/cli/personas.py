"""pllm profiles: list, create and remove personas (separate memories and profiles)."""

from __future__ import annotations

import sys

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.cli.locks import lock_wait, wait_option
from pllm_cli.context import AppContext
from pllm_cli.errors import InputError
from pllm_cli.personas import create, list_personas, remove

app = typer.Typer(
    help="Personas: separate memories and profiles (work, personal...); pick one with --profile NAME.",
    no_args_is_help=True,
)


@app.command("list")
def list_command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Every persona, with its memory and profile sizes; '*' marks the one in use."""
    app_ctx: AppContext = ctx.obj
    personas = list_personas(app_ctx.paths.root)
    if json_output:
        print_json([{**p.to_dict(), "active": p.name == app_ctx.paths.persona} for p in personas])
        return
    for persona in personas:
        mark = "*" if persona.name == app_ctx.paths.persona else " "
        out().print(
            f"{mark} {persona.name:<20} {persona.chunks:>7} chunks {persona.facts:>5} facts  {persona.path}",
            markup=False,
        )


@app.command("create")
def create_command(ctx: typer.Context, name: str = typer.Argument(..., help="The new persona's name.")) -> None:
    """Create an empty persona; fill it with: pllm --profile NAME ingest PATH."""
    app_ctx: AppContext = ctx.obj
    persona = create(app_ctx.paths.root, name)
    if not app_ctx.quiet:
        err().print(f"created persona {persona.name}: pllm --profile {persona.name} ingest PATH", markup=False)


@app.command("remove")
def remove_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The persona to delete, with its memory and profile."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    wait: float | None = wait_option("its memory or profile"),
) -> None:
    """Delete a persona: its memory and profile are gone for good (your files are not touched)."""
    app_ctx: AppContext = ctx.obj
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"removing persona {name!r} deletes its memory and profile", hint="confirm with --yes")
        if not typer.confirm(f"Delete persona {name!r}, its memory and its profile?", default=False, err=True):
            raise typer.Exit(1)
    persona = remove(app_ctx.paths.root, name, lock_wait(app_ctx, wait))
    if not app_ctx.quiet:
        err().print(f"removed persona {persona.name} ({persona.chunks} chunks, {persona.facts} facts)", markup=False)
