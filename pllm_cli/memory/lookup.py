"""`pllm memory search` as data: for each query, its hits (or packed passages) as the --json output gives them.
The CLI renders these dicts, whether this process searched or `pllm serve` did."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pllm_cli.errors import InputError
from pllm_cli.memory.passages import passage_tokens
from pllm_cli.memory.records import Hit
from pllm_cli.memory.retrieval import POOL, Retriever
from pllm_cli.memory.timeframes import describe
from pllm_cli.user_text import require_text

BATCH = 64  # queries embedded at once when they come from stdin


def look_up(retriever: Retriever, query: str, *, k: int, tokens: int | None) -> dict[str, Any]:
    """One query (checked not to be empty, after memory was checked not to be)."""
    retriever.require_memories()
    if not require_text(query, "the query").strip():
        raise InputError("the query is empty", hint="pllm memory search 'what I wrote about running'")
    return found(retriever, query, retriever.search(query, POOL if tokens else k), tokens)


def look_up_many(
    retriever: Retriever, queries: Iterable[str], *, k: int, tokens: int | None
) -> Iterator[dict[str, Any]]:
    """One result per non-blank query, in order, embedded in batches. `queries` is read only after memory was
    checked not to be empty."""
    retriever.require_memories()
    texts = [require_text(text, "a query").strip() for text in queries if text.strip()]
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        for text, hits in zip(batch, retriever.search_many(batch, POOL if tokens else k), strict=True):
            yield found(retriever, text, hits, tokens)


def found(retriever: Retriever, query: str, hits: list[Hit], tokens: int | None) -> dict[str, Any]:
    """The query, the time periods it names, and its hits, or with `tokens` the best passages within them."""
    result: dict[str, Any] = {"query": query, "periods": list(describe(retriever.periods(query)))}
    if tokens is None:
        result["hits"] = [hit.to_dict() for hit in hits]
        return result
    passages = retriever.pack(hits, tokens, passage_tokens)
    result["tokens"] = sum(passage_tokens(p) for p in passages)
    result["passages"] = [p.to_dict() for p in passages]
    return result
