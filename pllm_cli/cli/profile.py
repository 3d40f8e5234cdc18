"""pllm profile: refresh, show, pin, forget, history, diff, path."""

from __future__ import annotations

from collections.abc import Callable

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.cli.locks import lock_wait, wait_option
from pllm_cli.context import AppContext
from pllm_cli.errors import InputError
from pllm_cli.profile.facts import CATEGORIES
from pllm_cli.profile.manage import diff, forget, pin, profile_lock, refresh_profile
from pllm_cli.profile.refresh import Progress
from pllm_cli.profile.render import describe
from pllm_cli.profile.state import ProfileFiles, fact_summaries
from pllm_cli.server.client import find_server
from pllm_cli.server.remote import remote_refresh

app = typer.Typer(help="Your profile: facts about you with their sources, and how you write.", no_args_is_help=True)

JSON_HELP = "JSON on stdout."
HAND_WAIT_SECONDS = 10.0  # pin and forget are typed by hand: they wait a little for a refresh by default
HAND_WAIT_DEFAULT = f"{HAND_WAIT_SECONDS:g}, or the lock_wait setting if longer"


def _files(ctx: typer.Context) -> tuple[AppContext, ProfileFiles]:
    app_ctx: AppContext = ctx.obj
    return app_ctx, ProfileFiles(app_ctx.paths)


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    wait: float | None = wait_option("the profile"),
    rebuild: bool = typer.Option(False, "--rebuild", help="Read all of memory again (pinned facts stay)."),
    json_output: bool = typer.Option(False, "--json", help="A report on stdout: facts added, changed, removed."),
) -> None:
    """Read what memory gained since the last refresh into the profile; safe to run from cron.

    Only one refresh runs at a time: another exits with code 10 (busy), or waits with --wait. The profile is
    replaced atomically, so an interrupted refresh leaves the previous one whole.
    """
    app_ctx, files = _files(ctx)
    config = app_ctx.config
    seconds = lock_wait(app_ctx, wait)
    progress = None if app_ctx.quiet or json_output else _progress_printer()  # 11 lines: fine in a log

    def note() -> None:
        if not config.me_names and not app_ctx.quiet and not json_output:
            err().print(
                "note: pllm does not know your chat name, so it reads only your notes and the messages your "
                "exports mark as yours: pllm config set me NAME",
                markup=False,
                style="yellow",
            )

    report = None
    server = find_server(app_ctx)
    if server is not None:
        report = remote_refresh(server, app_ctx, wait=seconds, rebuild=rebuild, on_begin=note, on_progress=progress)
    if report is None:
        with profile_lock(files, seconds):
            note()
            report = refresh_profile(
                files,
                app_ctx.store.index,
                app_ctx.embedder,
                app_ctx.model,
                name=config.display_name,
                me=config.me_names,
                rebuild=rebuild,
                on_progress=progress,
            ).to_dict()
    if json_output:
        print_json(report)
    elif not app_ctx.quiet:
        what = f"version {report['version']}" if report["saved"] else f"unchanged at version {report['version']}"
        err().print(
            f"profile {what}: {len(report['added'])} facts added, {len(report['changed'])} changed, "
            f"{len(report['removed'])} removed; {report['facts']} in all; read {report['chunks_read']} new chunks "
            f"in {report['seconds']:.1f} s",
            markup=False,
        )


def _progress_printer() -> Callable[[Progress], None]:
    console = err()
    last = [-1]

    def show(progress: Progress) -> None:
        percent = progress.done * 100 // max(progress.total, 1)
        if percent // 10 != last[0] or progress.done == progress.total:
            last[0] = percent // 10
            console.print(
                f"  read {progress.done}/{progress.total} chunks, {progress.statements} statements about you",
                markup=False,
                style="dim",
            )

    return show


@app.command("show")
def show(
    ctx: typer.Context,
    all_facts: bool = typer.Option(False, "--all", help="Include superseded facts."),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print the profile: facts by category with id, confidence and source; your writing style."""
    _, files = _files(ctx)
    state = files.load(required=True)
    if json_output:
        facts = [f.to_dict() for f in state.facts if f.active or all_facts]
        print_json(
            {
                "name": state.name,
                "version": state.version,
                "updated_at": state.updated_at,
                "facts": facts,
                "writing_style": state.style,
            }
        )
    else:
        out().print(describe(state, all_facts=all_facts), markup=False)


@app.command("pin")
def pin_command(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="The fact, in your words: pinned facts are never overwritten."),
    category: str | None = typer.Option(None, "--category", help="One of: " + ", ".join(CATEGORIES) + "."),
    wait: float | None = wait_option("the profile", HAND_WAIT_DEFAULT),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Add a fact you state yourself; it is always in the prompt and extraction never changes it."""
    app_ctx, files = _files(ctx)
    with profile_lock(files, lock_wait(app_ctx, wait, HAND_WAIT_SECONDS)):
        fact = pin(files, text, app_ctx.embedder, category)
    if json_output:
        print_json(fact.to_dict())
    elif not app_ctx.quiet:
        err().print(f"pinned {fact.id} ({fact.category}): {fact.text}", markup=False)


@app.command("forget")
def forget_command(
    ctx: typer.Context,
    fact_id: str = typer.Argument(..., help="The fact's id, as `pllm profile show` prints it."),
    wait: float | None = wait_option("the profile", HAND_WAIT_DEFAULT),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove a fact from the profile; later refreshes do not bring it back."""
    app_ctx, files = _files(ctx)
    with profile_lock(files, lock_wait(app_ctx, wait, HAND_WAIT_SECONDS)):
        fact = forget(files, fact_id)
    if json_output:
        print_json({"forgotten": fact.to_dict()})
    elif not app_ctx.quiet:
        err().print(f"forgot {fact.id}: {fact.text}", markup=False)


@app.command("history")
def history(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every version of the profile: when, why, and how many facts it added, changed and removed."""
    _, files = _files(ctx)
    versions = files.history()
    if not versions:
        files.load(required=True)
    for version in versions:
        report = version.get("report", {})
        row = {
            "version": version["version"],
            "at": version["at"],
            "reason": version["reason"],
            "added": len(report.get("added", [])),
            "changed": len(report.get("changed", [])),
            "removed": len(report.get("removed", [])),
            "facts": sum(1 for f in version["facts"] if f["status"] == "active"),
        }
        if json_output:
            print_json(row)
        else:
            out().print(
                f"{row['version']:>4}  {row['at']}  {row['reason']:<14} +{row['added']} ~{row['changed']} "
                f"-{row['removed']}  {row['facts']} facts",
                markup=False,
            )


@app.command("diff")
def diff_command(
    ctx: typer.Context,
    version: int | None = typer.Argument(
        None, help="Compare this version with the current one (default: the one before)."
    ),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What changed in the profile since VERSION (default: since the version before the current one)."""
    _, files = _files(ctx)
    state = files.load(required=True)
    base = version if version is not None else state.version - 1
    if base == 0:
        old: list[dict[str, object]] = []
    else:
        if base < 0:
            raise InputError(f"there is no profile version {base}", hint="see them: pllm profile history")
        old = files.version(base)["facts"]
    changes = diff(old, fact_summaries(state.facts))
    if json_output:
        print_json({"from": base, "to": state.version, **changes})
        return
    console = out()
    console.print(f"version {base} -> {state.version}", markup=False, style="bold")
    for fact in changes["added"]:
        console.print(f"+ {fact['id']} {fact['text']}", markup=False, style="green")
    for fact in changes["removed"]:
        console.print(f"- {fact['id']} {fact['text']}", markup=False, style="red")
    for change in changes["changed"]:
        details = "; ".join(f"{k}: {v[0]} -> {v[1]}" for k, v in change.items() if k != "id")
        console.print(f"~ {change['id']} {details}", markup=False, style="yellow")
    if not any(changes.values()):
        console.print("no changes", markup=False)


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print where the profile file is."""
    app_ctx: AppContext = ctx.obj
    typer.echo(str(app_ctx.paths.profile_file))
