"""Finding memories for a piece of text: read the times it names, embed it, search the store, and pack the
hits into passages within a token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pllm_cli.embedding import Embedder
from pllm_cli.errors import NotFoundError
from pllm_cli.memory.passages import Passage, pack
from pllm_cli.memory.records import Hit
from pllm_cli.memory.store import MemoryStore, QueryVector, SearchMode
from pllm_cli.memory.timeframes import Period, periods

POOL = 50  # hits ranked for packing: more than a budget of a few thousand tokens can hold


@dataclass(frozen=True)
class Techniques:
    """What retrieval does beyond plain search; each can be switched off to measure what it adds."""

    time_aware: bool = True  # questions naming a time favour chunks of that period
    neighbours: bool = True  # chat passages bring the turn before and the turn after


class Retriever:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        mode: SearchMode = "hybrid",
        *,
        now: datetime | None = None,
        techniques: Techniques = Techniques(),
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.now = now  # what "last week" is relative to; None: the clock
        self.techniques = techniques

    def require_memories(self) -> None:
        if self.store.count() == 0:
            raise NotFoundError(
                "memory is empty", hint="add your files first: pllm ingest ~/notes (or ask with --no-memory)"
            )

    def periods(self, query: str) -> list[Period]:
        if not self.techniques.time_aware:
            return []
        return periods(query, self.now or datetime.now())

    def search(self, query: str, k: int) -> list[Hit]:
        """The best `k` chunks for `query`; it is embedded while BM25 ranks."""
        vector: QueryVector = (lambda: self.embedder.embed([query])[0]) if self.mode != "lexical" else []
        return self.store.search(vector, query, k, self.mode, self.periods(query))

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The best `k` chunks for each query; one embedding call for all of them."""
        vectors = self.embedder.embed(list(queries)) if self.mode != "lexical" else [[] for _ in queries]
        return [self.store.search(v, q, k, self.mode, self.periods(q)) for q, v in zip(queries, vectors, strict=True)]

    def recall(
        self, query: str, tokens: int, cost: Callable[[Passage], int], limit: int | None = None
    ) -> list[Passage]:
        """The best passages for `query` whose costs add up to at most `tokens`: "the best N tokens"."""
        return self.recall_many([query], tokens, cost, limit)[0]

    def recall_many(
        self, queries: Sequence[str], tokens: int, cost: Callable[[Passage], int], limit: int | None = None
    ) -> list[list[Passage]]:
        if len(queries) == 1:
            return [self.pack(self.search(queries[0], POOL), tokens, cost, limit)]
        return [self.pack(hits, tokens, cost, limit) for hits in self.search_many(queries, POOL)]

    def pack(
        self, hits: Sequence[Hit], tokens: int, cost: Callable[[Passage], int], limit: int | None = None
    ) -> list[Passage]:
        """Ranked hits (of search()) as passages within `tokens`."""
        neighbours = self.store if self.techniques.neighbours else None
        return pack(hits, tokens, cost, neighbours=neighbours, limit=limit)
