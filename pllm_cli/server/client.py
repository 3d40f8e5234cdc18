"""Talking to a running `pllm serve`: finding it, sending one request, reading its answer as it comes.

This is on the path of every `pllm ask`, `chat` and `memory search`: it imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pllm_cli.errors import ExitCode, PllmError
from pllm_cli.server import protocol
from pllm_cli.server.protocol import Message, ProtocolError

if TYPE_CHECKING:
    from pllm_cli.context import AppContext

CONNECT_TIMEOUT = 2.0  # seconds; a server answers status at once, also while it is answering someone else
STATUS_TIMEOUT = 5.0


class ServerUnavailable(Exception):
    """No server answered: no socket, a stale one (the server was killed), or it closed before answering."""


class ServerClient:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exchange(self, message: Message, timeout: float | None = None) -> Iterator[Message]:
        """Send one request; yield the server's messages up to and including "end". An "error" message is
        raised as the PllmError it stands for. ServerUnavailable if nothing came back at all; a PllmError if the
        connection broke after the answer had begun. Closing the iterator closes the connection, which stops
        the server working on it."""
        connection = self._connect()
        reader = connection.makefile("rb")
        try:
            connection.settimeout(timeout)
            try:
                connection.sendall(protocol.encode(message))
            except OSError as exc:
                raise ServerUnavailable(str(exc)) from None
            first = True
            while True:
                try:
                    line = reader.readline(protocol.MAX_LINE)
                    received = protocol.decode(line)
                except (OSError, ProtocolError) as exc:
                    if first:
                        raise ServerUnavailable(str(exc)) from None
                    raise PllmError(
                        f"the connection to the pllm server broke: {exc}",
                        hint="see the server's log; pllm --no-server ... runs the command in its own process",
                        exit_code=ExitCode.INTERNAL,
                    ) from None
                first = False
                if received.get("type") == "error":
                    raise protocol.to_error(received)
                yield received
                if received.get("type") == "end":
                    return
        finally:
            reader.close()  # the socket closes only when its file is closed too
            connection.close()

    def call(self, message: Message, timeout: float | None = None) -> dict[str, Any]:
        """The "end" data of a request that streams nothing."""
        for received in self.exchange(message, timeout):
            if received.get("type") == "end":
                data = received.get("data")
                return data if isinstance(data, dict) else {}
        raise ServerUnavailable("the server sent no end")  # pragma: no cover - exchange ends with "end"

    def status(self) -> dict[str, Any]:
        return self.call(protocol.request("status"), timeout=STATUS_TIMEOUT)

    def stop(self) -> dict[str, Any]:
        return self.call(protocol.request("stop"), timeout=STATUS_TIMEOUT)

    def _connect(self) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(CONNECT_TIMEOUT)
        try:
            connection.connect(str(self.path))
        except OSError as exc:  # missing, refused (stale: nobody listens), too long a path, timed out
            connection.close()
            raise ServerUnavailable(str(exc)) from None
        return connection


def running_server(path: Path) -> tuple[ServerClient, dict[str, Any]] | None:
    """A client of the server listening at `path` and its status, or None if none answers there."""
    if not (path.exists() or path.is_symlink()):
        return None
    client = ServerClient(path)
    with contextlib.suppress(ServerUnavailable, PllmError):
        return client, client.status()
    return None


def find_server(app: AppContext) -> ServerClient | None:
    """The running server of this home, if there is one that can run this command as this process would:
    same protocol, same models (model, embedding_model, context_size, threads); None with --no-server."""
    if app.no_server:
        return None
    found = running_server(app.paths.socket_file)
    if found is None:
        return None
    client, status = found
    if status.get("protocol") != protocol.VERSION or status.get("stopping"):
        return None
    if status.get("models") != protocol.model_settings(app.config.as_dict()):
        return None
    return client
