"""One AppContext per run: paths, settings, and the store and models, each built only when first used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pllm_cli.config import Config, load_config
from pllm_cli.cpu_load import LoadWatch
from pllm_cli.embedding import SentenceTransformerEmbedder
from pllm_cli.locking import Notice, memory_lock
from pllm_cli.memory.remote import MemoryServer
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths
from pllm_cli.prefix_cache import PrefixCache
from pllm_cli.remote_model import OpenAIServerModel
from pllm_cli.runtime import LlamaCppModel


@dataclass
class AppContext:
    paths: Paths
    overrides: dict[str, Any] = field(default_factory=dict)
    json: bool = False
    quiet: bool = False
    no_server: bool = False  # run in this process even if `pllm serve` is running (--no-server)
    load: LoadWatch = field(default_factory=LoadWatch)  # other programs' CPU use, for the model's threads

    @cached_property
    def config(self) -> Config:
        return load_config(self.paths.config_file, overrides=self.overrides)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        path = self.config.embedding_model
        return SentenceTransformerEmbedder(Path(path).expanduser() if path else None)

    @cached_property
    def memory_server(self) -> MemoryServer | None:
        """The Chroma server holding memory (memory_url), or None: the embedded store in the home."""
        url = self.config.memory_url
        return MemoryServer(url, self.config.memory_token, self.paths.persona) if url else None

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.paths.memory_dir, embedding_model=self.embedder.name, server=self.memory_server)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder)

    @cached_property
    def model(self) -> LlamaCppModel | OpenAIServerModel:
        """The GGUF model in this process, or the one behind an OpenAI-compatible server (model_url)."""
        if self.config.model_url:
            return OpenAIServerModel(
                self.config.model_url, self.config.model_token, context_size=self.config.context_size
            )
        path = self.config.model
        return LlamaCppModel(
            Path(path).expanduser() if path else None,
            context_size=self.config.context_size,
            threads=self.config.threads,
            load=self.load,
            prefix_cache=PrefixCache(self.paths.prefix_cache_dir),
        )

    @contextmanager
    def changing_memory(self, wait: float = 0.0, on_wait: Notice | None = None) -> Iterator[None]:
        """Hold the persona's memory lock for the block (BusyError, exit 10, if another pllm holds it after
        `wait` seconds). The store is closed before the lock is let go: the next writer finds its files settled."""
        with memory_lock(self.paths, wait, on_wait):
            try:
                yield
            finally:
                self.close()

    def for_persona(self, persona: str) -> AppContext:
        """A context for another persona of the same home that shares this one's settings and, once loaded, its
        models (`pllm serve` answers every persona with one embedder and one chat model)."""
        other = AppContext(paths=Paths(self.paths.root, persona), overrides=dict(self.overrides))
        for name in ("config", "embedder", "model"):  # cached_property keeps its value in the instance dict
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    def close(self) -> None:
        """Close the store, if it was opened; a later use opens it again."""
        self.__dict__.pop("retriever", None)
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.close()
