"""pllm ingest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import Progress

from pllm_cli.cli.console import err, print_json
from pllm_cli.cli.locks import lock_wait, wait_option, waiting_notice
from pllm_cli.context import AppContext
from pllm_cli.errors import ExitCode
from pllm_cli.file_names import shown
from pllm_cli.ingest.pipeline import IngestEvent, IngestOptions, IngestReport, ingest_paths


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Files and folders (searched recursively) to read into memory."),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Glob of files or folders to leave out (repeatable), e.g. 'drafts/*'."
    ),
    prune: bool = typer.Option(False, "--prune", help="Forget sources whose files no longer exist."),
    redact: bool | None = typer.Option(
        None,
        "--redact/--no-redact",
        envvar="PLLM_REDACT",
        help="Mask e-mail addresses, phone, card and IBAN numbers and secrets before anything is stored.",
        show_default=False,
    ),
    wait: float | None = wait_option("this memory"),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Read notes, documents, mail and chat logs into memory, incrementally.

    Formats: docs/formats.md. An unchanged file is skipped, a changed file's chunks are replaced, a renamed
    file is not embedded again. Folders may hold .pllmignore files (gitignore syntax). Exits 3 if some
    files failed; all the others went in. One command changes a memory at a time: while another ingest or
    `memory forget` runs, this exits 10 at once, or waits with --wait (docs/cron.md).
    """
    app: AppContext = ctx.obj
    app.overrides["redact"] = redact
    options = IngestOptions(me=app.config.me_names, redact=app.config.redact)
    with app.changing_memory(lock_wait(app, wait), waiting_notice(app)):
        show_progress = not app.quiet and not json_output and err().is_terminal
        on_event, progress = _progress_reporter() if show_progress else (None, None)
        try:
            report = ingest_paths(
                paths, app.store, app.embedder, exclude=exclude, prune=prune, options=options, on_event=on_event
            )
        finally:
            if progress is not None:
                progress.stop()
    if json_output:
        print_json(report.to_dict())
    elif not app.quiet:
        _render(report)
    else:
        for failure in report.failed:
            err().print(f"failed: {shown(failure.path)}: {shown(failure.reason)}", markup=False)
    if report.failed:
        raise typer.Exit(ExitCode.PARTIAL)


def _progress_reporter() -> tuple[Callable[[IngestEvent], None], Progress]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err(),
        transient=True,
    )
    task = progress.add_task("", total=None)
    progress.start()

    def on_event(event: IngestEvent) -> None:
        if event.kind == "planned":
            progress.update(task, total=event.total)
        elif event.kind == "part":  # a large file, a part at a time
            mib = f"{event.done / 2**20:.1f} of {event.total / 2**20:.1f} MiB"
            progress.update(task, description=f"{shown(Path(event.path).name)} {mib}")
        elif event.result is not None:
            progress.update(task, advance=1, description=shown(Path(event.result.path).name))

    return on_event, progress


def _render(report: IngestReport) -> None:
    console = err()
    for result in report.files:
        path = shown(result.path)
        if result.status == "failed":
            console.print(f"  failed     {path}: {shown(result.reason)}", markup=False, style="red")
            if result.hint:
                console.print(f"             hint: {shown(result.hint)}", markup=False, style="dim")
        elif result.status == "skipped":
            console.print(f"  skipped    {path}: {shown(result.reason)}", markup=False)
        elif result.status != "unchanged":
            console.print(f"  {result.status:<10} {path} ({result.chunks} chunks)", markup=False)
        for warning in result.warnings:
            console.print(f"  warning    {path}: {shown(warning)}", markup=False, style="yellow")
    data = report.to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in data["summary"].items() if n or s in ("added", "unchanged"))
    console.print(
        f"{summary}; {report.chunks_written} chunks written in {report.seconds:.1f} s",
        markup=False,
        style="bold",
    )
