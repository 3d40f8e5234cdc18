"""Finding memories for a piece of text: embed the query, search the store."""

from __future__ import annotations

from collections.abc import Sequence

from pllm_cli.embedding import Embedder
from pllm_cli.errors import NotFoundError
from pllm_cli.memory.records import Hit
from pllm_cli.memory.store import MemoryStore, SearchMode


class Retriever:
    def __init__(self, store: MemoryStore, embedder: Embedder, mode: SearchMode = "hybrid") -> None:
        self.store = store
        self.embedder = embedder
        self.mode = mode

    def require_memories(self) -> None:
        if self.store.count() == 0:
            raise NotFoundError(
                "memory is empty", hint="add your files first: pllm ingest ~/notes (or ask with --no-memory)"
            )

    def search(self, query: str, k: int) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Batch search: one embedding call for all queries."""
        vectors = self.embedder.embed(list(queries)) if self.mode != "lexical" else [[] for _ in queries]
        return [self.store.search(v, q, k, self.mode) for q, v in zip(queries, vectors, strict=True)]
