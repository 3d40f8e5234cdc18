"""pllm config: show, set, unset, path."""

from __future__ import annotations

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.config import SETTINGS, SETTINGS_BY_KEY, read_config_file, set_value, unset_value
from pllm_cli.context import AppContext
from pllm_cli.errors import ConfigError

app = typer.Typer(help="Settings: defaults < config.toml < PLLM_* environment < flags.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Every setting with its effective value and where it came from."""
    app_ctx: AppContext = ctx.obj
    import os

    in_file = read_config_file(app_ctx.paths.config_file)
    effective = app_ctx.config.as_dict()
    rows = []
    for setting in SETTINGS:
        origin = (
            setting.env_var if setting.env_var in os.environ else "config.toml" if setting.key in in_file else "default"
        )
        value = "(set)" if setting.secret and effective[setting.key] else effective[setting.key]
        rows.append({"key": setting.key, "value": value, "origin": origin, "help": setting.help})
    if json_output:
        print_json({row["key"]: {"value": row["value"], "origin": row["origin"]} for row in rows})
        return
    for row in rows:
        out().print(f"{row['key']:<16} {row['value']!r:<24} ({row['origin']})", markup=False)


@app.command("set")
def set_(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Setting name, see `pllm config show`."),
    value: str = typer.Argument(..., help="New value."),
) -> None:
    """Store a setting in config.toml."""
    app_ctx: AppContext = ctx.obj
    stored = set_value(app_ctx.paths.config_file, key, value)
    if not app_ctx.quiet:
        err().print(f"{key} = {stored!r}", markup=False)


@app.command("unset")
def unset(ctx: typer.Context, key: str = typer.Argument(..., help="Setting name.")) -> None:
    """Remove a setting from config.toml (back to its default)."""
    app_ctx: AppContext = ctx.obj
    if key not in SETTINGS_BY_KEY:
        raise ConfigError(f"unknown setting {key!r}", hint="known settings: " + ", ".join(SETTINGS_BY_KEY))
    unset_value(app_ctx.paths.config_file, key)


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print where the config file is."""
    app_ctx: AppContext = ctx.obj
    typer.echo(str(app_ctx.paths.config_file))
