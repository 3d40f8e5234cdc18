"""One AppContext per run: paths, settings, and the store and models, each built only when first used."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pllm_cli.config import Config, load_config
from pllm_cli.embedding import SentenceTransformerEmbedder
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths
from pllm_cli.runtime import LlamaCppModel


@dataclass
class AppContext:
    paths: Paths
    overrides: dict[str, Any] = field(default_factory=dict)
    json: bool = False
    quiet: bool = False

    @cached_property
    def config(self) -> Config:
        return load_config(self.paths.config_file, overrides=self.overrides)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        path = self.config.embedding_model
        return SentenceTransformerEmbedder(Path(path).expanduser() if path else None)

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.paths.memory_dir, embedding_model=self.embedder.name)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder)

    @cached_property
    def model(self) -> LlamaCppModel:
        path = self.config.model
        return LlamaCppModel(
            Path(path).expanduser() if path else None,
            context_size=self.config.context_size,
            threads=self.config.threads,
        )

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
