"""How often pllm's attribution check flags a question, on the memories `pllm ask` would be shown.

    python bench/attribution.py ../shared/eval/locomo/locomo-dev.json [--tokens 512]

The check (pllm_cli/grounding.py, `misattributed`) reads only the question and the retrieved memories, never
the model's answer, so it can be measured on every question of a LoCoMo-format file without generating
anything (a few minutes on 2 cores): each conversation is ingested into a temporary memory as `pllm eval`
does, every question's hits are packed into `--tokens` tokens, and the check runs on them. A good check flags
many category-5 questions (the answer is not in the conversation) and few of categories 1-4.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pllm_cli.embedding import SentenceTransformerEmbedder
from pllm_cli.evaluation.conversations import conversation_memories
from pllm_cli.evaluation.locomo import extract_questions
from pllm_cli.grounding import misattributed
from pllm_cli.memory.passages import passage_tokens
from pllm_cli.memory.retrieval import POOL, Retriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--tokens", type=int, default=512)
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    flagged: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for sample, _, store in conversation_memories(args.data, embedder):
        questions = extract_questions(sample, (1, 2, 3, 4, 5), require_evidence=False)
        retriever = Retriever(store, embedder, now=store.latest_time())
        found = retriever.search_many([q.question for q in questions], POOL)
        for question, hits in zip(questions, found, strict=True):
            memories = retriever.pack(hits, args.tokens, passage_tokens)
            group = "unanswerable (5)" if question.category == 5 else "answerable (1-4)"
            flag = misattributed(question.question, memories) is not None
            flagged[("all", group)].append(flag)
            flagged[(str(sample["sample_id"]), group)].append(flag)
    print(f"questions flagged by the attribution check, memories packed within {args.tokens} tokens")
    for (conversation, group), flags in sorted(flagged.items(), key=lambda item: (item[0][0] != "all", item[0])):
        print(f"{conversation:<10} {group:<17} {100 * sum(flags) / len(flags):5.1f}% of {len(flags)}")


if __name__ == "__main__":
    main()
