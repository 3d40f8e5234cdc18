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
) -> None:
    """Keep the models and memories loaded and answer ask, chat, memory search and profile refresh from them.

    Runs in the foreground and logs to stderr (as a systemd user service: docs/serve.md). It listens on a Unix
    socket in the home (0600), never on the network; commands use it by themselves when it runs (--no-server
    to run them in their own process). Requests run one at a time; `serve_queue` more may wait, and one more
    is refused as busy (exit code 11). --status exits 5 when no server is running.
    """
    app: AppContext = ctx.obj
    if status and stop:
        raise InputError("--status and --stop do not go together", hint="pllm serve --status, or pllm serve --stop")
    if json_output and not (status or stop):
        raise InputError("--json goes with --status or --stop", hint="pllm serve --status --json")
    if status:
        _status(app, json_output)
    elif stop:
        _stop(app, json_output)
    else:
        _run(app)


def _run(app: AppContext) -> None:
    from pllm_cli.server.server import serve_until_stopped

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s pllm serve: %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger("pllm.serve")
    logger.addHandler(handler)
    logger.propagate = False  # one line per event, whatever else configured logging
    logger.setLevel(logging.WARNING if app.quiet else logging.INFO)
    try:
        serve_until_stopped(app)
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
