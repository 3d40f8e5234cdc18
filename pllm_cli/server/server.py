"""The server: a Unix socket in the home, one thread per connection, one worker thread that runs the requests
needing the models, one at a time, from a bounded queue.

Status and stop are answered at once by the connection's own thread, also while the worker is busy. A request
for the worker waits in the queue (at most `serve_queue` of them); one more is refused as busy (exit code 11).
A request runs to its end before the next one starts: an answer streaming to one client is never cut off by
another. The one exception is made by a profile refresh (minutes long): after each chunk it reads, the requests
waiting behind it run (Server._run_waiting), then it goes on. Stopping (SIGTERM, Ctrl-C, `pllm serve --stop`)
takes no new requests and finishes the queued ones.

With --http, an HTTP listener (http_endpoint.py) turns OpenAI chat completions into "ask" jobs for the same
queue and worker (Server.submit_and_wait).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pllm_cli import __version__
from pllm_cli.context import AppContext
from pllm_cli.errors import BusyError, ConfigError, ExitCode, PllmError, ServerBusyError
from pllm_cli.locking import exclusive
from pllm_cli.paths import Paths, ensure_private_dir
from pllm_cli.personas import check_name
from pllm_cli.profile.manage import profile_lock
from pllm_cli.profile.state import ProfileFiles
from pllm_cli.server import protocol
from pllm_cli.server.engine import Engine
from pllm_cli.server.jobs import ClientGone, Job, JobQueue, QueueFull
from pllm_cli.server.protocol import Message, ProtocolError

if TYPE_CHECKING:
    from pllm_cli.server.http_endpoint import HttpListener

log = logging.getLogger("pllm.serve")
WORK_OPS = ("open", "ask", "search", "refresh")
LONG_OPS = ("refresh",)  # they run the other requests waiting behind them between their steps
# While idle, the worker looks this often for memory another process changed, and closes it: a forget deletes
# the old vector store, whose files must not stay on disk because the server still has them open.
IDLE_CHECK_SECONDS = 1.0
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108, with its terminating NUL


class _Listener(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, path: Path, owner: Server) -> None:
        self.owner = owner
        super().__init__(str(path), _Connection)


class _Connection(socketserver.StreamRequestHandler):
    server: _Listener

    def handle(self) -> None:
        connection: socket.socket = self.request
        if not _same_user(connection):
            log.warning("refused a connection from another user")
            return
        try:
            message = protocol.decode(self.rfile.readline(protocol.MAX_LINE))
        except ProtocolError as exc:
            _send(connection, protocol.error(_bad_request(exc)))
            return
        self.server.owner.dispatch(message, connection)


class Server:
    """`pllm serve` for the home of `app` (its config names the models; every persona of the home is served)."""

    def __init__(self, app: AppContext, http: tuple[str, int] | None = None) -> None:
        """`http`: also serve the OpenAI-compatible endpoint at (host, port) (the caller checked the host)."""
        self.app = app
        self.http_address = http
        self._http: HttpListener | None = None
        self.engine = Engine(app)
        self.socket_path = app.paths.socket_file
        self._queue = JobQueue(app.config.serve_queue)
        self._stop_requested = threading.Event()
        self._stopping = False
        self._state = threading.Lock()
        self._served = 0
        self._refused = 0
        self._doing: list[str] = []  # the op being run; a refresh, and what it let run between its steps
        self._models: dict[str, Any] = {}
        self._started = time.monotonic()
        self._started_at = ""
        self._resources = contextlib.ExitStack()
        self._listener: _Listener | None = None
        self._socket_inode = 0
        self._threads: list[threading.Thread] = []

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Take the home's server lock (BusyError if another server has it), load the models, listen."""
        paths = self.app.paths
        ensure_private_dir(paths.root)
        os.chmod(paths.root, 0o700)  # the socket inside is reachable only through a folder of the user's own
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the socket path {self.socket_path} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket allows",
                hint="use a shorter home: --home DIR or PLLM_HOME",
            )
        try:
            self._resources.enter_context(exclusive(paths.serve_lock_file, "serving this home"))
        except BusyError:
            pid = _read_pid(paths.serve_lock_file)
            raise BusyError(
                f"a pllm server{f' (pid {pid})' if pid else ''} is already running for {paths.root}",
                hint="see it with: pllm serve --status; stop it with: pllm serve --stop",
            ) from None
        try:
            self._start_locked()
        except BaseException:
            self._resources.close()
            raise

    def _start_locked(self) -> None:
        self._models = self.engine.models
        log.info("loading the models (%s) ...", ", ".join(f"{k}={v!r}" for k, v in self._models.items()))
        seconds = self.engine.load()
        log.info("models loaded in %.1f s", seconds)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            # Under the lock no other server runs: this socket was left by one that was killed.
            log.info("replacing the stale socket %s left by a server that did not stop cleanly", self.socket_path)
            self.socket_path.unlink()
        if self.http_address is not None:
            self._http = self._open_http(self.http_address)
            self._resources.callback(self._http.server_close)
        listener = _Listener(self.socket_path, self)
        os.chmod(self.socket_path, 0o600)
        self._socket_inode = os.stat(self.socket_path).st_ino
        self._listener = listener
        self._started, self._started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
        self._threads = [
            threading.Thread(target=self._work, name="pllm-serve-worker", daemon=True),
            threading.Thread(target=listener.serve_forever, name="pllm-serve-accept", daemon=True),
        ]
        if self._http is not None:
            self._threads.append(threading.Thread(target=self._http.serve_forever, name="pllm-serve-http", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info(
            "listening on %s (pid %d, queue %d); stop with: pllm serve --stop",
            self.socket_path,
            os.getpid(),
            self._queue.size,
        )
        if self._http is not None:
            log.info(
                "OpenAI-compatible endpoint at %s (bearer token: pllm serve --token, or the file %s)",
                self._http.url,
                self.app.paths.serve_token_file,
            )

    def _open_http(self, address: tuple[str, int]) -> HttpListener:
        from pllm_cli.server.access import read_or_create_token
        from pllm_cli.server.http_endpoint import HttpListener

        token = read_or_create_token(self.app.paths.serve_token_file)
        try:
            return HttpListener(address, self, token)
        except OSError as exc:  # in use, not an address of this machine, a port below 1024
            raise ConfigError(
                f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}",
                hint="pick another port: pllm serve --http 127.0.0.1:PORT",
            ) from None

    def request_stop(self) -> None:
        """Ask the server to stop (safe from a signal handler or any thread); `wait` returns then."""
        self._stop_requested.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested (True) or `timeout` seconds pass (False)."""
        return self._stop_requested.wait(timeout)

    def stop(self) -> None:
        """Stop listening, finish the answer being given and those queued, let the models and the lock go."""
        with self._state:
            if self._stopping:
                return
            self._stopping = True
        log.info("stopping: finishing %d queued request(s)", len(self._queue))
        self._remove_socket()  # new commands run in their own process from here on
        if self._http is not None:
            self._http.shutdown()  # its connections still waiting for an answer get it
        if self._listener is not None:
            self._listener.shutdown()
            self._queue.put_stop()  # after every job already queued
            for thread in self._threads:
                thread.join()
            self._listener.server_close()
        self._resources.close()
        log.info("stopped after %d request(s)", self._served)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _remove_socket(self) -> None:
        """Remove the socket file, if it is still the one this server made."""
        with contextlib.suppress(OSError):
            if self._socket_inode and os.stat(self.socket_path).st_ino == self._socket_inode:
                self.socket_path.unlink()

    # requests -------------------------------------------------------------------------------------
    def dispatch(self, message: Message, connection: socket.socket) -> None:
        """On the connection's thread: answer status and stop at once; queue the rest for the worker and wait
        until it is done with them."""
        op = message.get("op")
        if op == "status":
            _send(connection, protocol.end(self.status()))
        elif op == "stop":
            _send(connection, protocol.end({"pid": os.getpid(), "stopping": True}))
            log.info("asked to stop by a client")
            self.request_stop()
        elif op in WORK_OPS:
            job = Job(message, connection)
            try:
                self.submit_and_wait(job)
            except PllmError as refused:  # busy: the queue is full, or the profile is being changed
                _send(connection, protocol.error(refused))
            except ProtocolError as exc:
                _send(connection, protocol.error(_bad_request(exc)))
        else:
            _send(connection, protocol.error(_bad_request(ProtocolError(f"unknown op {op!r}"))))

    def submit_and_wait(self, job: Job) -> None:
        """Queue `job` for the worker and wait until it is done with it; ServerBusyError if the queue is full or
        the server is stopping, BusyError if a refresh cannot have the profile lock."""
        with self._lock_for(job):
            self._submit(job)
            job.done.wait()

    @contextlib.contextmanager
    def _lock_for(self, job: Job) -> Iterator[None]:
        """A refresh holds the persona's profile lock from before it is queued until it is done, taken here on
        the connection's thread (waiting as long as the client's --wait says), so the worker never waits for
        a lock. The lock is the server's: a client that leaves cannot let it go while the worker still writes."""
        if job.op != "refresh":
            yield
            return
        persona, wait = job.message.get("persona"), job.message.get("wait", 0.0)
        if not isinstance(persona, str) or not isinstance(wait, int | float) or isinstance(wait, bool):
            raise ProtocolError("refresh needs a persona and a wait in seconds")
        check_name(persona)
        with profile_lock(ProfileFiles(Paths(self.app.paths.root, persona)), float(wait)):
            yield

    def _submit(self, job: Job) -> None:
        with self._state:
            if self._stopping or self._stop_requested.is_set():
                raise ServerBusyError("the pllm server is stopping", hint="try again: it will run in this process")
            try:
                self._queue.put(job)
            except QueueFull:
                self._refused += 1
                log.info("busy: refused a %s request, %d already waiting", job.op, self._queue.size)
                raise ServerBusyError(
                    f"the pllm server is busy: its queue is full ({self._queue.size} waiting)",
                    hint="try again in a moment, or run this one in its own process: pllm --no-server ...",
                ) from None

    def _work(self) -> None:
        """The worker thread: one request at a time, in order, until the stop marker."""
        try:
            try:
                self.engine.open_memory()
            except PllmError as failure:  # the first request that needs it gets the error
                log.warning("could not open the memory: %s", failure.message)
            while True:
                try:
                    job = self._queue.get(timeout=IDLE_CHECK_SECONDS)
                except TimeoutError:
                    self.engine.let_go_of_changed_memory()
                    continue
                if job is None:
                    break
                self._run(job)
        finally:
            self.engine.close()

    def _run(self, job: Job) -> None:
        op = job.op
        persona = job.message.get("persona")
        with self._state:
            self._doing.append(op)
        started = time.perf_counter()
        try:
            if job.client_gone():
                log.info("%s (%s): dropped, the client left while it waited", op, persona)
                return
            note = self.engine.handle(job.message, job.send, self._run_waiting)
            log.info("%s (%s): %s in %.2f s", op, persona, note, time.perf_counter() - started)
        except ClientGone:
            log.info("%s (%s): the client left after %.2f s; stopped", op, persona, time.perf_counter() - started)
        except PllmError as failure:
            log.info("%s (%s): %s (exit code %d)", op, persona, failure.message, failure.exit_code)
            job.send_quietly(protocol.error(failure))
        except ProtocolError as exc:
            log.warning("%s: bad request: %s", op, exc)
            job.send_quietly(protocol.error(_bad_request(exc)))
        except Exception as exc:
            log.exception("%s (%s): internal error", op, persona)
            internal = PllmError(
                f"internal error in the pllm server: {exc!r}",
                hint="its log has the traceback; pllm --no-server ... runs the command in its own process",
                exit_code=ExitCode.INTERNAL,
            )
            job.send_quietly(protocol.error(internal))
        finally:
            with self._state:
                self._served += 1
                self._doing.pop()
            job.done.set()

    def _run_waiting(self) -> None:
        """Between two steps of a long job: run the short requests waiting behind it (a question need not wait
        for a whole profile refresh)."""
        self.engine.let_go_of_changed_memory()
        while (job := self._queue.take(lambda waiting: waiting.op not in LONG_OPS)) is not None:
            self._run(job)

    def status(self) -> dict[str, Any]:
        with self._state:
            return {
                "running": True,
                "pid": os.getpid(),
                "socket": str(self.socket_path),
                "home": str(self.app.paths.root),
                "version": __version__,
                "protocol": protocol.VERSION,
                "started_at": self._started_at,
                "uptime_s": round(time.monotonic() - self._started, 3),
                "requests_served": self._served,
                "requests_refused_busy": self._refused,
                "answering": self._doing[-1] if self._doing else None,
                "doing": list(self._doing),
                "queued": len(self._queue),
                "queue_size": self._queue.size,
                "stopping": self._stopping or self._stop_requested.is_set(),
                "models": self._models,
                "http": self._http.url if self._http is not None else None,
            }


def serve_until_stopped(app: AppContext, http: tuple[str, int] | None = None) -> None:
    """`pllm serve` in the foreground: until SIGTERM, SIGINT (Ctrl-C) or `pllm serve --stop`."""
    server = Server(app, http)
    server.start()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(number).name)
        server.request_stop()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not server.wait(0.5):
            pass
    finally:
        server.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _send(connection: socket.socket, message: Message) -> None:
    with contextlib.suppress(OSError):
        connection.sendall(protocol.encode(message))


def _bad_request(exc: ProtocolError) -> PllmError:
    return PllmError(
        f"the pllm server could not read the request: {exc}",
        hint="is the server another version of pllm? pllm serve --stop, then start it again",
        exit_code=ExitCode.INTERNAL,
    )


def _same_user(connection: socket.socket) -> bool:
    """The peer runs as this user (the socket is 0600 in a 0700 folder; this checks once more)."""
    try:
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _, uid, _ = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
