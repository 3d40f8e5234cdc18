"""Evidence recall of pllm's memory search on LoCoMo, through the real CLI.

For each conversation of a LoCoMo file: write it as chat-jsonl, `pllm ingest` it into a fresh temporary
PLLM_HOME, send all its questions (categories 1-4) through one `pllm memory search - --json --k 50 --mode M`
per mode, and score the ranked hits: share of the evidence turns inside the first 512 / 1,024 tokens of
retrieved text (tokens = round(1.3 x words); a hit that would overflow is not taken) and in the top 5 / 10.

    .venv/bin/python bench/locomo_recall.py [LOCOMO_JSON] [--mode dense ...] [--sample conv-26 ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import clean_env, pllm_command  # noqa: E402  (bench/ is on sys.path when a script here runs)

from pllm_cli.evaluation.locomo import (  # noqa: E402
    Question,
    aggregate,
    count_tokens,
    extract_questions,
    hits_within_budget,
    load_locomo,
    sample_to_chat_records,
    score_hits,
    write_chat_jsonl,
)
from pllm_cli.paths import Paths  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "eval" / "locomo" / "locomo-dev.json"
MODES = ("dense", "lexical", "hybrid")
METRICS = ("within_512", "within_1024", "recall@5", "recall@10")
# eval/README.md: one turn per chunk, all-MiniLM-L6-v2 dense, categories 1-4 of locomo-dev.json
REFERENCE = {"within_512": 53.3, "within_1024": 64.7, "recall@5": 44.1, "recall@10": 54.6}


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run([*pllm_command(), *args], env=env, input=stdin, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pllm {' '.join(args)} exited {done.returncode}:\n{done.stderr.strip()}")
    return done.stdout, seconds


def chunk_stats(home: Path) -> dict[str, float]:
    """Chunks in the home's memory, with their mean size in tokens and in turns."""
    db = sqlite3.connect(f"file:{Paths(home).index_db}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT text, meta FROM chunks").fetchall()
    finally:
        db.close()
    tokens = [count_tokens(text) for text, _ in rows]
    turns = [len(json.loads(meta).get("message_ids", [])) for _, meta in rows]
    return {
        "chunks": len(rows),
        "tokens_mean": statistics.fmean(tokens) if tokens else 0.0,
        "turns_mean": statistics.fmean(turns) if turns else 0.0,
    }


def evaluate_sample(
    sample: dict[str, Any], modes: list[str], k: int, log: Any
) -> tuple[list[Question], dict[str, list[list[dict[str, Any]]]], dict[str, Any]]:
    """Ingest one conversation into a fresh home and search all its questions: (questions, hits by mode, info)."""
    sample_id = str(sample["sample_id"])
    questions = extract_questions(sample)
    records = sample_to_chat_records(sample)
    hits_by_mode: dict[str, list[list[dict[str, Any]]]] = {}
    info: dict[str, Any] = {"sample_id": sample_id, "turns": len(records), "questions": len(questions)}
    with tempfile.TemporaryDirectory(prefix="pllm-locomo-") as tmp:
        data = Path(tmp) / "data" / f"{sample_id}.jsonl"
        data.parent.mkdir()
        write_chat_jsonl(records, data)
        env = clean_env(Path(tmp) / "home")
        out, seconds = run(["ingest", str(data), "--json"], env)
        report = json.loads(out)
        info.update(ingest_wall_s=round(seconds, 2), chunks_written=report["chunks_written"])
        info.update(chunk_stats(Path(tmp) / "home"))
        log(
            f"{sample_id}: {len(records)} turns -> {report['chunks_written']} chunks "
            f"(mean {info['tokens_mean']:.0f} tokens, {info['turns_mean']:.1f} turns) in {seconds:.1f} s"
        )
        queries = "".join(q.question + "\n" for q in questions)
        for mode in modes:
            out, seconds = run(["memory", "search", "-", "--json", "--k", str(k), "--mode", mode], env, queries)
            lines = [json.loads(line) for line in out.splitlines() if line.strip()]
            if len(lines) != len(questions):
                raise SystemExit(f"{sample_id} {mode}: {len(questions)} queries but {len(lines)} answers")
            for question, line in zip(questions, lines, strict=True):
                if line["query"] != question.question:
                    wrong = f"answer for {line['query']!r}, expected {question.question!r}"
                    raise SystemExit(f"{sample_id} {mode}: {wrong}")
            hits_by_mode[mode] = [line["hits"] for line in lines]
            info[f"search_{mode}_s"] = round(seconds, 2)
            log(f"{sample_id}: {len(questions)} questions searched ({mode}) in {seconds:.1f} s")
    return questions, hits_by_mode, info


def render(results: dict[str, dict[str, dict[str, float]]], extra: dict[str, dict[str, float]]) -> str:
    header = f"{'mode':<8} {'group':<12} {'n':>4}  " + "  ".join(f"{m:>11}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for mode, table in results.items():
        for group, row in table.items():
            cells = "  ".join(f"{row.get(m, 0.0):>11.1f}" for m in METRICS)
            lines.append(f"{mode:<8} {group:<12} {int(row['n']):>4}  {cells}")
        lines.append(
            f"{'':<8} {'':<12} {'':>4}  hits taken within 512 tokens: {extra[mode]['hits_in_512']:.1f}, "
            f"within 1,024: {extra[mode]['hits_in_1024']:.1f} (mean per question)"
        )
    cells = "  ".join(f"{REFERENCE[m]:>11.1f}" for m in METRICS)
    lines.append(f"{'ref':<8} {'overall':<12} {760:>4}  {cells}   (one turn per chunk, MiniLM dense)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON file")
    parser.add_argument("--mode", action="append", choices=MODES, help="search mode (repeatable; default all)")
    parser.add_argument("--sample", action="append", help="only this sample_id (repeatable)")
    parser.add_argument("--k", type=int, default=50, help="hits per query (default 50)")
    parser.add_argument("--json", action="store_true", help="JSON object on stdout; the table goes to stderr")
    args = parser.parse_args()
    modes = args.mode or list(MODES)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    samples = load_locomo(args.data)
    if args.sample:
        samples = [s for s in samples if s["sample_id"] in args.sample]
    started = time.perf_counter()
    scored: dict[str, list[tuple[int, dict[str, float]]]] = {mode: [] for mode in modes}
    taken: dict[str, dict[int, list[int]]] = {mode: {512: [], 1024: []} for mode in modes}
    conversations = []
    for sample in samples:
        questions, hits_by_mode, info = evaluate_sample(sample, modes, args.k, log)
        conversations.append(info)
        for mode in modes:
            for question, hits in zip(questions, hits_by_mode[mode], strict=True):
                scored[mode].append((question.category, score_hits(hits, question.evidence)))
                for budget in (512, 1024):
                    taken[mode][budget].append(len(hits_within_budget(hits, budget)))
    results = {mode: aggregate(scored[mode]) for mode in modes}
    extra = {
        mode: {f"hits_in_{b}": statistics.fmean(taken[mode][b]) if taken[mode][b] else 0.0 for b in (512, 1024)}
        for mode in modes
    }
    total = sum(c["questions"] for c in conversations)
    summary = (
        f"LoCoMo evidence recall (%), {args.data.name}: {len(conversations)} conversations, "
        f"{sum(c['turns'] for c in conversations)} turns -> {sum(c['chunks'] for c in conversations)} chunks, "
        f"{total} questions (categories 1-4), k={args.k}, {time.perf_counter() - started:.0f} s"
    )
    table = render(results, extra)
    if args.json:
        log(summary + "\n" + table)
        payload = {
            "data": str(args.data),
            "questions": total,
            "k": args.k,
            "token_count": "round(1.3 * words) of the hit text",
            "results": results,
            "hits_taken": extra,
            "reference_one_turn_per_chunk_dense": REFERENCE,
            "conversations": conversations,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(summary)
        print(table)


if __name__ == "__main__":
    main()
