"""The command line: parse -> call the core -> render -> exit code. The only place that imports typer/rich."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from pllm_cli import __version__
from pllm_cli.cli.console import silence_stdout
from pllm_cli.context import AppContext
from pllm_cli.errors import ExitCode, PllmError, UsageError
from pllm_cli.file_names import shown
from pllm_cli.paths import Paths, home_problem, tighten_home
from pllm_cli.personas import check_name
from pllm_cli.user_text import is_text


class _Root(TyperGroup):
    """The root group: a reader that closes the pipe early (`pllm ... | head`) ends the command quietly.

    Typer would turn EPIPE into exit 1 before main() sees it, so it is caught here, below Typer.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(ExitCode.OK) from None


app = typer.Typer(
    name="pllm",
    cls=_Root,
    help="A personal language-model assistant that keeps everything on your machine.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pllm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", envvar="PLLM_HOME", help="Root folder for everything pllm stores.", show_default=False
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        envvar="PLLM_PROFILE",
        help="Persona: a separate memory and profile (default: default).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr: no progress or summaries."),
    no_server: bool = typer.Option(
        False,
        "--no-server",
        envvar="PLLM_NO_SERVER",
        help="Run ask, chat, memory search and profile refresh in this process even if `pllm serve` is running.",
    ),
    memory_url: str | None = typer.Option(
        None,
        "--memory-url",
        envvar="PLLM_MEMORY_URL",
        help="A Chroma server holding memory, http://host:port[/database] (docs/scale.md); default: in the home.",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pllm learns who you are from your own files and answers you personally, offline.

    Start with: pllm ingest ~/notes, then pllm profile refresh, then pllm ask "...".
    """
    root_dir = _checked_home(ctx, home) if home else None
    if profile is not None:
        check_name(profile)
    ctx.obj = AppContext(
        paths=Paths.resolve(root_dir, profile),
        overrides={"memory_url": memory_url},
        quiet=quiet,
        no_server=no_server,
    )
    tighten_home(ctx.obj.paths.root)
    ctx.call_on_close(ctx.obj.close)


def _checked_home(ctx: typer.Context, home: Path) -> Path:
    """--home (or PLLM_HOME) resolved, or one clean error if it is a file or cannot be created: a usage error
    for the option, a config error for the variable."""
    if not is_text(str(home)):
        raise UsageError(f"--home is not valid UTF-8: {shown(str(home))}", hint="give a folder with a UTF-8 name")
    root = home.expanduser().resolve()
    problem = home_problem(root)
    if problem:
        source = ctx.get_parameter_source("home")  # typer's own click: its enum is recognised by name
        from_env = source is not None and source.name == "ENVIRONMENT"
        raise PllmError(
            f"{'PLLM_HOME' if from_env else '--home'}: {shown(problem)}",
            hint="give a folder pllm can create or use (it need not exist yet)",
            exit_code=ExitCode.CONFIG if from_env else ExitCode.USAGE,
        )
    return root


def _register() -> None:
    from pllm_cli.cli import (
        chat,
        completion,
        config,
        evaluate,
        feedback,
        ingest,
        memory,
        personas,
        profile,
        serve,
        status,
    )

    for module in (ingest, chat, status, serve, completion):
        module.register(app)
    app.add_typer(memory.app, name="memory")
    app.add_typer(profile.app, name="profile")
    app.add_typer(feedback.app, name="feedback")
    app.add_typer(personas.app, name="profiles")
    app.add_typer(config.app, name="config")
    app.add_typer(evaluate.app, name="eval")


_register()


def main(argv: list[str] | None = None) -> Any:
    """Entry point and error boundary: expected failures print one line and a hint, Ctrl-C exits 130."""
    from pllm_cli.cli.completion import COMPLETE_VAR, enable_completion

    if COMPLETE_VAR in os.environ:
        enable_completion()
    os.umask(0o077)  # everything pllm creates is for its owner only: folders 0700, files 0600
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="pllm", standalone_mode=False)
        if code == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C inside a command into Exit(130)
            sys.stderr.write("\nInterrupted.\n")
    except PllmError as error:
        from pllm_cli.cli.console import report_error

        report_error(error)
        code = error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted.\n")
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        code = ExitCode.OK  # e.g. `pllm memory search ... | head`
    except Exception as error:
        # Typer vendors click: its usage errors and Abort are recognised by shape, not by import.
        if type(error).__name__ == "Abort":
            sys.stderr.write("\nInterrupted.\n")
            code = ExitCode.INTERRUPTED
        elif hasattr(error, "show") and hasattr(error, "exit_code"):
            error.show()
            code = error.exit_code
        else:
            raise
    sys.exit(int(code or 0))
