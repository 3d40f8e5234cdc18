"""pllm serve: run the resident server in the foreground, or ask a running one for its status or to stop."""

from __future__ import annotations

import logging
import sys
import time

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.context import AppContext
from pllm_cli.errors import ExitCode, InputError, PllmError
from pllm_cli.locking import is_held
from pllm_cli.server.client import running_server

STOP_WAIT_SECONDS = 120.0  # the server finishes the answers it has queued before it exits


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    status: bool = typer.Option(False, "--status", help="Is a server running for this home? Its pid, socket, uptime."),
    stop: bool = typer.Option(False, "--stop", help="Stop the running server (it finishes what it has queued)."),
    json_output: bool = typer.Option(False, "--json", help="With --status or --stop: JSON on stdout."),
    http: str | None = typer.Option(
        None,
        "--http",
        metavar="HOST:PORT",
        help="Also serve the OpenAI chat-completions API here (e.g. 127.0.0.1:8642), with the bearer token.",
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Let --http listen on an address other machines can reach (not loopback)."
    ),
    token: bool = typer.Option(
        False, "--token", help="Print the bearer token --http asks for (made in the home on first use) and exit."
    ),
) -> None:
    """Keep the models and memories loaded and answer ask, chat, memory search and profile refresh from them.

    Runs in the foreground and logs to stderr (as a systemd user service: docs/serve.md). It listens on a Unix
    socket in the home (0600), on the network only with --http; commands use it by themselves when it runs (--no-server
    to run them in their own process). Requests run one at a time; `serve_queue` more may wait, and one more
    is refused as busy (exit code 11). --status exits 5 when no server is running.

    With --http it also answers OpenAI clients (editors, llm, aichat, Open WebUI) on that address, loopback
    only unless --allow-remote, each request with the token `pllm serve --token` prints (docs/serve.md).
    """
    app: AppContext = ctx.obj
    actions = [name for name, given in (("--status", status), ("--stop", stop), ("--token", token)) if given]
    if len(actions) > 1:
        raise InputError(f"{' and '.join(actions)} do not go together", hint="pllm serve --status, or --stop")
    if json_output and not (status or stop):
        raise InputError("--json goes with --status or --stop", hint="pllm serve --status --json")
    if (http is not None or allow_remote) and actions:
        raise InputError(
            f"--http goes with pllm serve alone, not {actions[0]}", hint="pllm serve --http 127.0.0.1:8642"
        )
    if allow_remote and http is None:
        raise InputError("--allow-remote goes with --http", hint="pllm serve --http 0.0.0.0:8642 --allow-remote")
    if status:
        _status(app, json_output)
    elif stop:
        _stop(app, json_output)
    elif token:
        from pllm_cli.server.access import read_or_create_token

        out().print(read_or_create_token(app.paths.serve_token_file), markup=False, soft_wrap=True)
    else:
        from pllm_cli.server.access import parse_address

        _run(app, parse_address(http, allow_remote=allow_remote) if http is not None else None)


def _run(app: AppContext, http: tuple[str, int] | None) -> None:
    from pllm_cli.server.server import serve_until_stopped

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s pllm serve: %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger("pllm.serve")
    logger.addHandler(handler)
    logger.propagate = False  # one line per event, whatever else configured logging
    logger.setLevel(logging.WARNING if app.quiet else logging.INFO)
    try:
        serve_until_stopped(app, http)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _status(app: AppContext, json_output: bool) -> None:
    found = running_server(app.paths.socket_file)
    if found is None:
        if json_output:
            print_json({"running": False, "socket": str(app.paths.socket_file)})
        else:
            out().print(f"not running (no server at {app.paths.socket_file})", markup=False)
        raise typer.Exit(ExitCode.NOT_FOUND)
    _, data = found
    if json_output:
        print_json(data)
        return
    answering = f", answering: {data['answering']}" if data.get("answering") else ""
    rows = {
        "running": "yes" + (" (stopping)" if data.get("stopping") else ""),
        "pid": data.get("pid"),
        "socket": data.get("socket"),
        "uptime": _duration(float(data.get("uptime_s", 0.0))),
        "requests": f"{data.get('requests_served', 0)} served, {data.get('requests_refused_busy', 0)} refused busy",
        "queue": f"{data.get('queued', 0)} waiting of {data.get('queue_size', 0)}{answering}",
        "http": data.get("http") or "no (pllm serve --http HOST:PORT)",
        "version": f"pllm {data.get('version')}, protocol {data.get('protocol')}",
    }
    for key, value in rows.items():
        out().print(f"{key:<10} {value}", markup=False)


def _stop(app: AppContext, json_output: bool) -> None:
    found = running_server(app.paths.socket_file)
    if found is None:
        if json_output:
            print_json({"stopped": False, "running": False})
        elif not app.quiet:
            err().print(f"no pllm server is running for {app.paths.root}", markup=False)
        return
    client, _ = found
    pid = int(client.stop().get("pid", 0))
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while is_held(app.paths.serve_lock_file):
        if time.monotonic() > deadline:
            raise PllmError(
                f"the pllm server (pid {pid}) is still finishing its queue after {STOP_WAIT_SECONDS:g} s",
                hint="it stops when done; to stop it at once: kill " + str(pid),
                exit_code=ExitCode.SERVER_BUSY,
            )
        time.sleep(0.05)
    if json_output:
        print_json({"stopped": True, "pid": pid})
    elif not app.quiet:
        err().print(f"stopped the pllm server (pid {pid})", markup=False)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s"
