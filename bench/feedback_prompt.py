"""How `pllm feedback` corrections should reach the bundled models: measured, not guessed (docs/feedback.md).

1. threshold: cosine (all-MiniLM-L6-v2) between a question and its paraphrases, and between a question and
   unrelated personal questions: where a correction must apply, and where it must not.
2. placement: with the real SmolLM2-135M and two example notes retrieved as `pllm ask` retrieves them, how
   often the answer holds the user's fix when the fix is put (a) as the first memory "[1] from your
   correction", with the question it answers, (b) the same without the question, (c) as a line right before
   the question; for the question itself and for a paraphrase.
3. bad answers: with the greedy answer judged bad (no fix), how often a second try differs from it: sampled at
   temperature 0.8 (seeds 1-3), or greedy with the bad answer named as wrong in the prompt.

    PYTHONPATH=. .venv/bin/python bench/feedback_prompt.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pllm_cli.chat import short_answer  # noqa: E402
from pllm_cli.embedding import SentenceTransformerEmbedder  # noqa: E402
from pllm_cli.feedback import normalized  # noqa: E402
from pllm_cli.ingest.pipeline import ingest_paths  # noqa: E402
from pllm_cli.memory.retrieval import Retriever  # noqa: E402
from pllm_cli.memory.store import ChromaStore  # noqa: E402
from pllm_cli.prompting import Budget, build_messages, memory_cost  # noqa: E402
from pllm_cli.runtime import ChatMessage, LlamaCppModel  # noqa: E402

NOTES = [ROOT / "examples" / "notes" / name for name in ("slottsskogen-project.md", "running-plan.md")]

# (question, a paraphrase, the user's fix); some fixes contradict the notes, some are not in them at all
CASES = [
    ("Who is my manager?", "What's the name of my boss?", "Sofia Lind is your manager now."),
    ("When is the project deadline?", "By what date is the final design due?", "The deadline moved to 15 August 2026."),
    ("What is my target time for the half marathon?", "How fast do I want to run Göteborgsvarvet?", "1:50"),
    ("What is my dentist's name?", "Who is my dentist?", "Dr. Lena Berg at Folktandvården Linné."),
    ("Which day is my long run?", "On what day do I do long runs?", "Saturday morning."),
    ("What is my bike lock code?", "Which code opens my bike lock?", "4711"),
]
UNRELATED = [
    "What does Elin collect?",
    "What should I pack for the trip?",
    "Which Japanese words am I studying?",
    "What is in my recipe for lentil soup?",
    "When is the brass band rehearsal?",
    "What did Jonas say about dinner?",
]


def cosine_table(embedder: SentenceTransformerEmbedder) -> dict[str, Any]:
    import numpy

    questions = [q for q, _, _ in CASES]
    paraphrases = [p for _, p, _ in CASES]
    q = numpy.asarray(embedder.embed(questions))
    p = numpy.asarray(embedder.embed(paraphrases))
    u = numpy.asarray(embedder.embed(UNRELATED))
    same = [float(q[i] @ p[i]) for i in range(len(CASES))]
    other_questions = [float(q[i] @ q[j]) for i in range(len(CASES)) for j in range(len(CASES)) if i != j]
    unrelated = [float(v) for v in (q @ u.T).ravel()]
    different = other_questions + unrelated
    return {
        "paraphrase": {"min": min(same), "mean": sum(same) / len(same), "values": [round(v, 3) for v in same]},
        "different": {"max": max(different), "mean": sum(different) / len(different)},
    }


def holds(answer: str, fix: str) -> bool:
    """The fix's words, in order, inside the answer (normalized: case, punctuation, citations)."""
    return normalized(fix) in normalized(answer)


def answer(model: LlamaCppModel, messages: list[ChatMessage], *, temperature: float = 0.0, seed: int = 1) -> str:
    pieces = model.stream(messages, max_tokens=40, temperature=temperature, seed=seed)
    return "".join(short_answer(pieces)).strip()


def prompt(retriever: Retriever, model: LlamaCppModel, question: str) -> list[ChatMessage]:
    memories = retriever.recall(question, 512, memory_cost(model.count_tokens), limit=12)
    budget = Budget(context_size=model.context_size, max_tokens=40, memory_tokens=512, profile_tokens=256)
    plan = build_messages(
        question, memories=memories, profile="", history=[], budget=budget, count=model.count_tokens, name="Maya"
    )
    return plan.messages


def with_correction(messages: list[ChatMessage], how: str, asked: str, fix: str, question: str) -> list[ChatMessage]:
    user = messages[-1].content
    if how == "memory":
        note = f"[1] from your correction:\nQuestion: {asked}\nAnswer: {fix}"
    elif how == "memory-fix-only":
        note = f"[1] from your correction:\n{fix}"
    else:
        note = ""
    if note:
        # renumber the retrieved memories after it
        import re

        body = re.sub(r"^\[(\d+)\] from ", lambda m: f"[{int(m.group(1)) + 1}] from ", user, flags=re.M)
        if body.startswith("My notes:\n\n"):
            user = "My notes:\n\n" + note + "\n\n" + body[len("My notes:\n\n") :]
        else:
            user = "My notes:\n\n" + note + "\n\nQuestion: " + body
    if how == "line":
        head, _, tail = user.rpartition(question)
        user = f"{head}The right answer (you corrected me): {fix}\n\nQuestion: {tail or question}"
        if head.endswith("Question: "):
            user = f"{head[: -len('Question: ')]}The right answer (you corrected me): {fix}\n\nQuestion: {question}"
    return [*messages[:-1], ChatMessage("user", user)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder()
    model = LlamaCppModel(context_size=2048)
    report: dict[str, Any] = {"cosine": cosine_table(embedder)}
    with tempfile.TemporaryDirectory() as folder:
        store = ChromaStore(Path(folder) / "memory", embedding_model=embedder.name)
        ingest_paths(NOTES, store, embedder)
        retriever = Retriever(store, embedder)
        placements: dict[str, dict[str, int]] = {}
        samples: list[dict[str, Any]] = []
        for how in ("none", "memory", "memory-fix-only", "line"):
            placements[how] = {"asked": 0, "paraphrase": 0, "of": len(CASES)}
            for question, paraphrase, fix in CASES:
                for kind, asked in (("asked", question), ("paraphrase", paraphrase)):
                    base = prompt(retriever, model, asked)
                    messages = base if how == "none" else with_correction(base, how, question, fix, asked)
                    said = answer(model, messages)
                    placements[how][kind] += holds(said, fix)
                    samples.append({"how": how, "question": asked, "fix": fix, "answer": said})
        report["placement"] = placements
        retries: dict[str, int] = {"sampled_differs": 0, "named_wrong_differs": 0, "of": len(CASES)}
        for question, _, _ in CASES:
            base = prompt(retriever, model, question)
            bad = answer(model, base)
            sampled = [answer(model, base, temperature=0.8, seed=seed) for seed in (1, 2, 3)]
            retries["sampled_differs"] += all(normalized(s) != normalized(bad) for s in sampled)
            named = with_correction(base, "none", question, "", question)
            named[-1] = ChatMessage(
                "user", named[-1].content.replace(f"Question: {question}", f'Not "{bad}".\n\nQuestion: {question}')
            )
            if not named[-1].content.startswith("My notes"):
                named[-1] = ChatMessage("user", f'Not "{bad}".\n\nQuestion: {question}')
            again = answer(model, named)
            retries["named_wrong_differs"] += normalized(again) != normalized(bad)
            samples.append({"how": "bad", "question": question, "bad": bad, "sampled": sampled, "named_wrong": again})
        report["bad_answers"] = retries
        store.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps({**report, "samples": samples}, ensure_ascii=False, indent=2))
        return
    print(json.dumps(report, indent=2))
    for sample in samples:
        print(json.dumps(sample, ensure_ascii=False))


if __name__ == "__main__":
    main()
