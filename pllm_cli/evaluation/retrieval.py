"""`pllm eval retrieval`: evidence recall of memory search on LoCoMo-format data, every mode side by side.

Each conversation goes into its own temporary memory through the same importer and pipeline users get (its
turns written as pllm's JSONL chat format, then `ingest_paths`); the user's own memory is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pllm_cli.embedding import Embedder
from pllm_cli.evaluation.conversations import conversation_memories
from pllm_cli.evaluation.locomo import (
    aggregate,
    extract_questions,
    score_hits,
)
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import SEARCH_MODES, SearchMode

POOL = 50  # hits fetched per question: more than any budget below can hold
METRICS = ("within_512", "within_1024", "recall@5", "recall@10")


@dataclass
class RetrievalEvaluation:
    conversations: int = 0
    turns: int = 0
    chunks: int = 0
    questions: int = 0
    by_mode: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "turns": self.turns,
            "chunks": self.chunks,
            "questions": self.questions,
            "modes": self.by_mode,
        }


def evaluate_retrieval(
    path: Path,
    embedder: Embedder,
    modes: Sequence[SearchMode] = SEARCH_MODES,
    on_progress: Callable[[str], None] | None = None,
) -> RetrievalEvaluation:
    result = RetrievalEvaluation()
    scores: dict[str, list[tuple[int, dict[str, float]]]] = {mode: [] for mode in modes}
    for sample, records, store in conversation_memories(path, embedder):
        questions = extract_questions(sample)
        for mode in modes:
            retriever = Retriever(store, embedder, mode)
            found = retriever.search_many([q.question for q in questions], POOL) if questions else []
            for question, hits in zip(questions, found, strict=True):
                as_dicts = [{"text": h.chunk.text, "message_ids": list(h.chunk.message_ids)} for h in hits]
                scores[mode].append((question.category, score_hits(as_dicts, question.evidence)))
        result.chunks += store.count()
        result.conversations += 1
        result.turns += len(records)
        result.questions += len(questions)
        if on_progress:
            on_progress(f"{sample['sample_id']}: {len(records)} turns, {len(questions)} questions")
    result.by_mode = {mode: aggregate(scores[mode]) for mode in modes}
    return result


def render_table(evaluation: RetrievalEvaluation) -> str:
    header = f"{'mode':<8} {'group':<12} {'n':>5}  " + "  ".join(f"{m:>11}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for mode, groups in evaluation.by_mode.items():
        for group, values in groups.items():
            cells = "  ".join(f"{values.get(m, 0.0):>11.1f}" for m in METRICS)
            lines.append(f"{mode:<8} {group:<12} {int(values.get('n', 0)):>5}  {cells}")
    return "\n".join(lines)
