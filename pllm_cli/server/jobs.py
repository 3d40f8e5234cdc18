"""The server's requests for its worker: a Job (a request and the connection its answer goes to) and the
bounded JobQueue they wait in."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pllm_cli.server import protocol
from pllm_cli.server.protocol import Message


class ClientGone(Exception):
    """The client closed its connection (Ctrl-C, or it was killed): what it asked for is dropped."""


class QueueFull(Exception):
    pass


@dataclass(eq=False)  # two jobs are never the same one, whatever they ask
class Job:
    """A request for the worker. Its answer goes to `connection` as protocol lines, or, for a request that came
    over HTTP, to `writer` (which raises ClientGone when the client is gone); `connection` is the client's
    socket either way (client_gone looks at it)."""

    message: Message
    connection: socket.socket
    writer: Callable[[Message], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def op(self) -> str:
        return str(self.message.get("op"))

    def send(self, message: Message) -> None:
        if self.writer is not None:
            self.writer(message)
            return
        try:
            self.connection.sendall(protocol.encode(message))
        except OSError as exc:  # EPIPE, ECONNRESET: the client is gone
            raise ClientGone(str(exc)) from None

    def send_quietly(self, message: Message) -> None:
        with contextlib.suppress(ClientGone):
            self.send(message)

    def client_gone(self) -> bool:
        """Whether the client closed its end while this waited (it sends nothing after its request)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class JobQueue:
    """First in, first out, at most `size` jobs waiting; `None` is the worker's stop marker (never refused).
    `take` lets a long job (a profile refresh) run the short ones that wait behind it, between its steps."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: deque[Job | None] = deque()
        self._changed = threading.Condition()

    def put(self, job: Job) -> None:
        """QueueFull if `size` jobs wait already."""
        with self._changed:
            if self._waiting() >= self.size:
                raise QueueFull
            self._items.append(job)
            self._changed.notify()

    def put_stop(self) -> None:
        with self._changed:
            self._items.append(None)
            self._changed.notify()

    def get(self, timeout: float | None = None) -> Job | None:
        """The next job, waiting for one (TimeoutError after `timeout` seconds without); None: stop."""
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._items), timeout):
                raise TimeoutError
            return self._items.popleft()

    def take(self, wanted: Callable[[Job], bool]) -> Job | None:
        """The first waiting job that is `wanted`, at once, or None (jobs after a stop marker are not taken)."""
        with self._changed:
            for job in self._items:
                if job is None:
                    return None
                if wanted(job):
                    self._items.remove(job)
                    return job
            return None

    def __len__(self) -> int:
        with self._changed:
            return self._waiting()

    def _waiting(self) -> int:
        return sum(job is not None for job in self._items)
