"""pllm status."""

from __future__ import annotations

import typer

from pllm_cli import __version__
from pllm_cli.cli.console import out, print_json
from pllm_cli.context import AppContext
from pllm_cli.errors import PllmError, UnreachableError
from pllm_cli.llama_backend import describe_cpu_backend
from pllm_cli.personas import describe
from pllm_cli.remote_model import OpenAIServerModel
from pllm_cli.server.client import running_server


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def _model_path(find: object) -> str:
    try:
        return str(find())  # type: ignore[operator]
    except PllmError as error:
        return f"missing ({error.message})"


def _server(app_ctx: AppContext) -> dict[str, object]:
    """Whether `pllm serve` runs for this home (asked over its socket, which loads nothing)."""
    found = running_server(app_ctx.paths.socket_file)
    if found is None:
        return {"running": False}
    status = found[1]
    return {"running": True, "pid": status.get("pid"), "socket": status.get("socket"), "http": status.get("http")}


def _memory(app_ctx: AppContext) -> tuple[dict[str, object], UnreachableError | None]:
    """Which memory is in use, its counts, and (on a server) whether it answers."""
    try:
        store = app_ctx.store
    except UnreachableError as error:
        server = app_ctx.memory_server
        assert server is not None
        return {"kind": "server", "url": server.base_url, "database": server.database, "reachable": False}, error
    return {**store.describe(), "sources": len(store.sources()), "chunks": store.count()}, None


def _chat_model(app_ctx: AppContext) -> tuple[object, UnreachableError | None]:
    """The GGUF file's path, or (with model_url) the server, its model and whether it answers."""
    model = app_ctx.model
    if isinstance(model, OpenAIServerModel):
        try:
            served = model.check()
        except UnreachableError as error:
            return {"url": model.base_url, "reachable": False}, error
        except PllmError as error:
            return {"url": model.base_url, "reachable": True, "model": f"unknown ({error.message})"}, None
        return {"url": model.base_url, "reachable": True, "model": served}, None
    return _model_path(lambda: model.path), None


def status(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Paths, models and memory (which, and whether their servers answer), without loading any model. Exit code 12
    after the report if the memory server or the model server does not answer."""
    app_ctx: AppContext = ctx.obj
    config = app_ctx.config
    memory, unreachable = _memory(app_ctx)
    chat_model, model_unreachable = _chat_model(app_ctx)
    persona = describe(app_ctx.paths)
    data = {
        "version": __version__,
        "persona": app_ctx.paths.persona,
        "paths": app_ctx.paths.as_dict(),
        "chat_model": chat_model,
        "embedding_model": _model_path(lambda: app_ctx.embedder.path),
        "llama_cpu_variant": describe_cpu_backend(),
        "context_size": config.context_size,
        "memory": memory,
        "profile": {"version": persona.profile_version, "facts": persona.facts},
        "me": config.me,
        "server": _server(app_ctx),
    }
    if json_output:
        print_json(data)
    else:
        for key, value in data.items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    out().print(f"{key + '.' + sub:<20} {subvalue}", markup=False)
            else:
                out().print(f"{key:<20} {value}", markup=False)
    error = unreachable or model_unreachable
    if error is not None:
        raise error
