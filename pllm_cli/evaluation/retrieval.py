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
from pllm_cli.evaluation.locomo import aggregate, evidence_share, extract_questions, recall_at_k
from pllm_cli.memory.passages import passage_tokens
from pllm_cli.memory.remote import MemoryServer
from pllm_cli.memory.retrieval import POOL, Retriever, Techniques
from pllm_cli.memory.store import SEARCH_MODES, SearchMode

BUDGETS = (512, 1024)
METRICS = ("within_512", "within_1024", "recall@5", "recall@10")
# `--ablate`: hybrid search again with one technique off at a time, to show what each adds.
ABLATIONS: dict[str, Techniques] = {
    "hybrid -time": Techniques(time_aware=False),
    "hybrid -neighbours": Techniques(neighbours=False),
}


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
    ablate: bool = False,
    server: MemoryServer | None = None,
) -> RetrievalEvaluation:
    """Every question of categories 1-4 of each conversation, in each mode: the passages packed within each
    budget by the packer `pllm ask` uses (counting 1.3 tokens a word, without the "[n] from FILE:" line ask
    puts before each memory), and the top 5 and 10 ranked chunks. "Now", for questions such as "last
    week", is the time of the conversation's last message."""
    result = RetrievalEvaluation()
    runs: dict[str, tuple[SearchMode, Techniques]] = {mode: (mode, Techniques()) for mode in modes}
    if ablate:
        runs.update({name: ("hybrid", techniques) for name, techniques in ABLATIONS.items()})
    scores: dict[str, list[tuple[int, dict[str, float]]]] = {name: [] for name in runs}
    for sample, records, store in conversation_memories(path, embedder, server=server):
        questions = extract_questions(sample)
        for name, (mode, techniques) in runs.items():
            retriever = Retriever(store, embedder, mode, now=store.latest_time(), techniques=techniques)
            found = retriever.search_many([q.question for q in questions], POOL) if questions else []
            for question, hits in zip(questions, found, strict=True):
                row = {
                    f"within_{budget}": evidence_share(
                        [p.to_dict() for p in retriever.pack(hits, budget, passage_tokens)], question.evidence
                    )
                    for budget in BUDGETS
                }
                chunks = [h.chunk.to_view() for h in hits]
                row.update({f"recall@{k}": recall_at_k(chunks, question.evidence, k) for k in (5, 10)})
                scores[name].append((question.category, row))
        result.chunks += store.count()
        result.conversations += 1
        result.turns += len(records)
        result.questions += len(questions)
        if on_progress:
            on_progress(f"{sample['sample_id']}: {len(records)} turns, {len(questions)} questions")
    result.by_mode = {name: aggregate(rows) for name, rows in scores.items()}
    return result


def render_table(evaluation: RetrievalEvaluation) -> str:
    header = f"{'mode':<18} {'group':<12} {'n':>5}  " + "  ".join(f"{m:>11}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for mode, groups in evaluation.by_mode.items():
        for group, values in groups.items():
            cells = "  ".join(f"{values.get(m, 0.0):>11.1f}" for m in METRICS)
            lines.append(f"{mode:<18} {group:<12} {int(values.get('n', 0)):>5}  {cells}")
    return "\n".join(lines)
