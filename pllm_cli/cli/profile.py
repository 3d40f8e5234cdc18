"""pllm profile: build, show, path."""

from __future__ import annotations

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.context import AppContext
from pllm_cli.profile.build import BuildProgress, build_profile
from pllm_cli.profile.document import load_profile, save_profile

app = typer.Typer(help="Your profile: who you are, what you like, how you write.", no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Print the new profile as JSON on stdout."),
) -> None:
    """Summarize memory into a profile with the local model (replaces the profile file)."""
    app_ctx: AppContext = ctx.obj

    def on_progress(progress: BuildProgress) -> None:
        if not app_ctx.quiet and not json_output:
            err().print(f"  [{progress.done + 1}/{progress.total}] {progress.aspect}", markup=False, style="dim")

    profile = build_profile(
        app_ctx.retriever,
        app_ctx.model,
        name=app_ctx.config.display_name,
        me=app_ctx.config.me_names,
        chat_chunks=(c for c in app_ctx.store.index.iter_chunks() if c.kind == "chat"),
        on_progress=on_progress,
    )
    save_profile(app_ctx.paths.profile_file, profile)
    if json_output:
        print_json(profile.to_dict())
    elif not app_ctx.quiet:
        out().print(profile.to_markdown(), markup=False)
        err().print(f"saved to {app_ctx.paths.profile_file}", markup=False, style="dim")


@app.command("show")
def show(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Print the profile."""
    app_ctx: AppContext = ctx.obj
    profile = load_profile(app_ctx.paths.profile_file)
    if json_output:
        print_json(profile.to_dict())
    else:
        out().print(profile.to_markdown(), markup=False)


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print where the profile file is (edit it freely)."""
    app_ctx: AppContext = ctx.obj
    typer.echo(str(app_ctx.paths.profile_file))
