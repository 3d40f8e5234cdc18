"""The command reference (docs/commands.md) and completion scripts, generated from the app itself.

`python scripts/generate.py` writes them; tests fail when the committed files differ from this output.
"""

from __future__ import annotations

import typer.main
from typer._click import core as click  # Typer vendors click: its Context, Command and Group

from pllm_cli.cli import app
from pllm_cli.cli.completion import SHELLS, completion_script
from pllm_cli.config import SETTINGS

WIDTH = 100
HELP = ["-h", "--help"]


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if hasattr(command, "list_commands"):  # a group
        for name in command.list_commands(click.Context(command)):
            sub = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
            if sub is not None and not sub.hidden:
                found += _walk(sub, [*path, name])
    return found


def help_text(path: list[str]) -> str:
    """What `pllm PATH... --help` prints, at a fixed width."""
    root = typer.main.get_command(app)
    parent: click.Context | None = None
    command: click.Command = root
    ctx = click.Context(root, info_name="pllm", terminal_width=WIDTH, max_content_width=WIDTH, help_option_names=HELP)
    for name in path:
        parent = ctx
        sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
        assert sub is not None
        command = sub
        ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def command_paths() -> list[list[str]]:
    return [path for path, _ in _walk(typer.main.get_command(app), [])]


def render_reference() -> str:
    parts = [
        "# Command reference",
        "",
        "Generated from `pllm --help` by `python scripts/generate.py`; a test fails when it is out of date.",
        "Exit codes: [exit-codes.md](exit-codes.md). Settings and environment variables:"
        " [configuration.md](configuration.md).",
    ]
    for path in command_paths():
        title = " ".join(["pllm", *path])
        parts += ["", f"## {title}", "", "```", help_text(path).rstrip(), "```"]
    return "\n".join(parts) + "\n"


def completion_files() -> dict[str, str]:
    names = {"bash": "pllm.bash", "zsh": "_pllm", "fish": "pllm.fish"}
    return {names[shell]: completion_script(shell) for shell in SHELLS}


def render_configuration() -> str:
    rows = "\n".join(f"| `{s.key}` | `{s.env_var}` | `{s.default!r}` | {s.help} |" for s in SETTINGS)
    return f"""# Configuration

Generated from the settings table in `pllm_cli/config.py` by `python scripts/generate.py`.

Each setting is resolved in this order, the last one found winning:
defaults < `config.toml` < `PLLM_*` environment variable < command-line flag.

`pllm config path` prints where `config.toml` is (under the pllm home, see below);
`pllm config set KEY VALUE` validates and stores a value; `pllm config show` prints every effective value and
where it came from. A bad value is an error naming the key and its origin (exit code 8).

| key | environment | default | meaning |
|---|---|---|---|
{rows}

## Where pllm keeps things

Everything lives under one root: `$PLLM_HOME` if set (or `--home DIR`), otherwise the platform's user data
directory (`~/.local/share/pllm` on Linux). `pllm status` prints every path.

```
$PLLM_HOME/
  config.toml
  personas/<name>/             one per --profile NAME (PLLM_PROFILE); "default" unless chosen
    profile.json               the profile: facts with their sources, writing style (pllm profile show)
    profile-read.txt           the memory chunks the profile has read
    profile-history/           one snapshot per profile version (pllm profile history, diff)
    profile.lock               held by a profile refresh, pin or forget (and memory forget, profiles remove)
    memory.lock                held by an ingest, memory forget or profiles remove (docs/cron.md)
    memory/index.sqlite3       sources, chunk texts and metadata, the BM25 (FTS5) index
    memory/chroma-<n>/         the vector store (Chroma); each forget writes the next one (memory/chroma/ before)
    memory/chroma.current      the name of the live one, switched atomically (docs/retrieval.md, "Forgetting")
    memory/chroma.build.lock   held while a forget builds the next one
```

With `memory_url` set, the vectors and the chunks' records are on a Chroma server instead of in
`memory/chroma-<n>/`. `memory/index.sqlite3` then holds this home's copy of the records and the BM25 index,
kept in step with the server ([scale.md](scale.md)).

Directories are created 0700 and files 0600: personal data is readable by you only. A home that already
exists is tightened to 0700 by any command, if it is yours and looks like pllm's (it holds `config.toml` or
`personas/`, or is empty), so `--home ~` never locks up your own folder. A `--home` or `PLLM_HOME` that is a
file, or that cannot be created, is refused with one line (exit 2 for the option, 8 for the variable).
"""
