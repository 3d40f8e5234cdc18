"""Memory in a Chroma server (`memory_url`): connecting, and a persona's collections there.

On the server (in the database the URL names, Chroma's default one if none), a persona's memory is
- `pllm.<persona>.live`: holds no records; its metadata names the live generation, {"live": "pllm.<persona>.3"};
- `pllm.<persona>.<n>`: the generations. Each record is a chunk: its vector, its structured fields as the
  document (JSON) and small metadata (memory/mirror.py). The collection's metadata holds the embedding model,
  the forget rules any client stored (every client's ingests keep to them), and `revision`, a random value
  each writer replaces after writing: a client whose local index was synced at another revision syncs again
  (ChromaStore).

A forget cannot swap a directory on someone else's machine, so it does on the server what generations.py does
on disk: the records that remain are copied into generation n+1, the pointer is switched (one metadata write),
then generation n is deleted. A crash before the switch leaves n live and whole (n+1 is a leftover, deleted by
the next rebuild); after it, n+1 is live and whole (n is a leftover, deleted by the next client that opens).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from pllm_cli.errors import ConfigError, PllmError, StoreError, UnreachableError
from pllm_cli.memory.rebuild import collection_ids

TIMEOUT = 5.0  # seconds the heartbeat may take before the server counts as unreachable
BATCH = 1000
_KEPT_SETTINGS = ("space", "ef_construction", "ef_search", "max_neighbors", "resize_factor")
T = TypeVar("T")


@dataclass(frozen=True)
class MemoryServer:
    """Where a persona's memory lives on a Chroma server, and how to ask for it."""

    url: str
    token: str = ""
    persona: str = "default"

    def __post_init__(self) -> None:
        self._parts  # noqa: B018  (a bad URL is a ConfigError at once)

    @property
    def _parts(self) -> Any:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"memory_url must be http://host:port or https://host[:port], got {self.url!r}",
                hint="for example: pllm config set memory_url http://homeserver:8000",
            )
        try:
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise ConfigError(f"memory_url has a bad port: {self.url!r}") from None
        if parts.query or parts.fragment or not _database_name(parts.path.strip("/")):
            raise ConfigError(
                f"memory_url may name one Chroma database after the port, nothing else: {self.url!r}",
                hint="for example: http://homeserver:8000 or http://homeserver:8000/maya",
            )
        return parts

    @property
    def host(self) -> str:
        return str(self._parts.hostname)

    @property
    def ssl(self) -> bool:
        return bool(self._parts.scheme == "https")

    @property
    def port(self) -> int:
        port = self._parts.port
        return int(port) if port is not None else 443 if self.ssl else 8000

    @property
    def database(self) -> str:
        return str(self._parts.path.strip("/")) or "default_database"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def head_name(self) -> str:
        return f"pllm.{self.persona}.live"

    def generation_name(self, number: int) -> str:
        return f"pllm.{self.persona}.{number}"

    @property
    def where(self) -> str:
        """What `pllm status` shows: the URL (never the token) and the collections' database."""
        return f"{self.base_url} database {self.database}, collections pllm.{self.persona}.*"


def _database_name(name: str) -> bool:
    return not name or (name.replace("-", "").replace("_", "").isalnum() and name.isascii() and len(name) >= 3)


def check_reachable(server: MemoryServer) -> None:
    """UnreachableError (exit 12) unless the server answers its heartbeat within TIMEOUT and takes the token."""
    import httpx

    try:
        response = httpx.get(f"{server.base_url}/api/v2/heartbeat", headers=server.headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise _unreachable(server, type(exc).__name__) from None
    if response.status_code in (401, 403):
        raise UnreachableError(
            f"the memory server {server.base_url} refuses pllm (HTTP {response.status_code})",
            hint="set memory_token to the token the server's proxy expects (docs/scale.md)",
        )
    if response.status_code != 200:
        raise _unreachable(server, f"HTTP {response.status_code} to its heartbeat")


def _unreachable(server: MemoryServer, reason: str) -> UnreachableError:
    return UnreachableError(
        f"the memory server {server.base_url} does not answer ({reason})",
        hint="start it (chroma run --path DIR --host 0.0.0.0 --port 8000) or fix memory_url; "
        "`pllm --memory-url '' ...` uses the embedded memory of this home instead",
    )


@contextmanager
def translated(server: MemoryServer) -> Iterator[None]:
    """Chroma's errors as pllm's: a lost connection is UnreachableError (exit 12), any other failure of the
    server StoreError (exit 9). Wraps calls into chromadb only: nothing of pllm's own runs inside."""
    import httpx

    try:
        yield
    except PllmError:
        raise
    except (httpx.TransportError, ConnectionError) as exc:
        raise _unreachable(server, type(exc).__name__) from None
    except Exception as exc:  # chromadb raises many unrelated types
        if "Could not connect" in str(exc):
            raise _unreachable(server, "connection refused") from None
        raise StoreError(f"the memory server {server.base_url} failed: {exc}", hint="see the server's log") from None


class GuardedCollection:
    """A Chroma collection whose every call goes through translated()."""

    def __init__(self, collection: Any, server: MemoryServer) -> None:
        self.raw = collection
        self._server = server

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.raw, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with translated(self._server):
                return value(*args, **kwargs)

        return call


def _settings(server: MemoryServer) -> Any:
    from chromadb.config import Settings

    return Settings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host=server.host,
        chroma_server_http_port=server.port,
        chroma_server_ssl_enabled=server.ssl,
        chroma_server_headers=server.headers or None,
        anonymized_telemetry=False,
    )


def connect(server: MemoryServer) -> Any:
    """A chromadb client of the server's database (created if missing)."""
    check_reachable(server)
    import chromadb
    from chromadb.errors import NotFoundError

    with translated(server):
        if server.database != "default_database":
            admin = chromadb.AdminClient(_settings(server))
            try:
                admin.get_database(server.database)
            except NotFoundError:
                try:
                    admin.create_database(server.database)
                except Exception:  # created by another client meanwhile
                    admin.get_database(server.database)
        return chromadb.HttpClient(
            host=server.host,
            port=server.port,
            ssl=server.ssl,
            headers=server.headers or None,
            settings=_settings(server),
            database=server.database,
        )


class RemoteVectors:
    """A persona's generations on the server: the live one opened lazily, switched by rebuild()."""

    def __init__(self, server: MemoryServer, embedding_model: str, hnsw: dict[str, Any]) -> None:
        self.server = server
        self.embedding_model = embedding_model
        self.hnsw = hnsw
        self.client = connect(server)
        with translated(server):
            self.head = self.client.get_or_create_collection(
                server.head_name, metadata={"pllm": "names the live generation"}, embedding_function=None
            )
        self._collection: GuardedCollection | None = None
        self._live: str | None = None

    def live_name(self) -> str:
        """The live generation's name, read from the server; the first generation is made if there is none."""
        with translated(self.server):
            metadata = dict(self.client.get_collection(self.server.head_name).metadata or {})
            if metadata.get("live"):
                return str(metadata["live"])
            first = self.server.generation_name(1)
            self._create(first, {"embedding_model": self.embedding_model, "revision": ""}, self.hnsw, exist_ok=True)
            self.head.modify(metadata={**metadata, "live": first})
            return first

    def _create(self, name: str, metadata: dict[str, Any], hnsw: dict[str, Any], exist_ok: bool = False) -> Any:
        make = self.client.get_or_create_collection if exist_ok else self.client.create_collection
        return make(
            name,
            configuration=cast(Any, {"hnsw": hnsw}),  # chromadb types it as a TypedDict
            metadata=metadata,
            embedding_function=None,
        )

    @property
    def collection(self) -> GuardedCollection:
        if self._collection is None:
            self._open(self.live_name())
        assert self._collection is not None
        return self._collection

    def _open(self, name: str) -> None:
        with translated(self.server):
            raw = self.client.get_collection(name, embedding_function=None)
        recorded = (raw.metadata or {}).get("embedding_model")
        if recorded != self.embedding_model:
            raise StoreError(
                f"the memory on {self.server.base_url} was built with the embedding model {recorded!r}, "
                f"not {self.embedding_model!r}",
                hint="set embedding_model to the one the other clients use",
            )
        self._collection, self._live = GuardedCollection(raw, self.server), name
        self._remove_older(name)

    def _remove_older(self, live: str) -> None:
        """Delete generations older than the live one (a forget that stopped after its switch)."""
        number = _number(self.server, live)
        with translated(self.server):
            names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        for name in names:
            older = _number(self.server, name)
            if older is not None and number is not None and older < number:
                with translated(self.server):
                    self.client.delete_collection(name)

    def read(self, call: Callable[[Any], T]) -> T:
        """call(collection), once more on the new live generation if a forget elsewhere switched meanwhile."""
        try:
            return call(self.collection)
        except PllmError:
            if self.live_name() == self._live:
                raise
        self._collection = None
        return call(self.collection)

    # revisions ----------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The live generation's metadata, fresh from the server."""
        name = self.live_name()
        if name != self._live:
            self._collection = None
        with translated(self.server):
            return dict(self.client.get_collection(name, embedding_function=None).metadata or {})

    def revision(self) -> str:
        return str(self.metadata().get("revision", ""))

    def bump(self) -> tuple[str, str]:
        """Give the live generation a new revision, after a write: (the one before, the new one)."""
        current = self.metadata()
        new = uuid.uuid4().hex
        self.collection.modify(metadata={**current, "revision": new})
        return str(current.get("revision", "")), new

    def forget_rules(self) -> list[tuple[str, str]]:
        """The forget rules stored with this memory by any client: (kind, value)."""
        return [(str(kind), str(value)) for kind, value in json.loads(self.metadata().get("forget_rules") or "[]")]

    def add_forget_rules(self, rules: Sequence[tuple[str, str]]) -> None:
        """Store forget rules with the memory (the live generation's metadata: a rebuild copies them along)."""
        current = self.metadata()
        known = {(str(k), str(v)) for k, v in json.loads(current.get("forget_rules") or "[]")}
        merged = sorted(known | {(str(k), str(v)) for k, v in rules})
        self.collection.modify(metadata={**current, "forget_rules": json.dumps(merged)})

    def count(self) -> int:
        return int(self.read(lambda c: c.count()))

    # forgetting ---------------------------------------------------------------------------------
    def rebuild(self, chunk_ids: Sequence[str]) -> tuple[str, int, int]:
        """Copy the records of `chunk_ids` still on the server into the next generation, make it live and
        delete the old one: (the new generation's name, records copied, ids left out as missing)."""
        old = self.collection
        number = _number(self.server, old.name) or 1
        present = collection_ids(old)
        kept = [chunk_id for chunk_id in chunk_ids if chunk_id in present]
        hnsw = {k: v for k, v in (old.configuration_json.get("hnsw") or {}).items() if k in _KEPT_SETTINGS}
        target = self.server.generation_name(number + 1)
        with translated(self.server):
            if target in [c if isinstance(c, str) else c.name for c in self.client.list_collections()]:
                self.client.delete_collection(target)  # left by a rebuild cut short
            new = GuardedCollection(
                self._create(target, {**self.metadata(), "revision": uuid.uuid4().hex}, hnsw), self.server
            )
        for start in range(0, len(kept), BATCH):
            batch = kept[start : start + BATCH]
            got = old.get(ids=batch, include=["embeddings", "documents", "metadatas"])
            if len(got["ids"]) != len(batch):
                raise StoreError(
                    "records went missing from the memory server during a rebuild (is another client forgetting?)",
                    hint="the previous generation is still live; run the forget again",
                )
            new.add(
                ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"], metadatas=got["metadatas"]
            )
        if new.count() != len(kept):
            raise StoreError(f"the rebuilt memory on the server holds {new.count()} records, not {len(kept)}")
        self._switch(target)
        self._collection, self._live = new, target
        with translated(self.server):
            self.client.delete_collection(old.name)
        return target, len(kept), len(chunk_ids) - len(kept)

    def _switch(self, target: str) -> None:
        """Make `target` the live generation: one metadata write."""
        with translated(self.server):
            head = dict(self.client.get_collection(self.server.head_name).metadata or {})
            self.head.modify(metadata={**head, "live": target})

    def drop(self) -> None:
        """Delete every collection of this memory from the server (a temporary memory: pllm eval)."""
        with translated(self.server):
            for name in [c if isinstance(c, str) else c.name for c in self.client.list_collections()]:
                if name == self.server.head_name or _number(self.server, name) is not None:
                    self.client.delete_collection(name)
        self._collection = None

    def close(self) -> None:
        """Let go of the connection (the client's shared system stops with the last client of this server)."""
        self._collection = None
        self.client.close()


def _number(server: MemoryServer, name: str) -> int | None:
    prefix = f"pllm.{server.persona}."
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None
