"""A large chat export through `pllm ingest`, against the raw embedding throughput of the same texts.

In one run:
1. generate a chat log of N messages (default 100,000) in pllm's JSONL format, as an export lays it out: one
   conversation after another (40 chats, runs of 20-400 messages), short messages of varied length, a minute
   to a few hours apart;
2. `pllm ingest FILE --json` in a fresh PLLM_HOME, timed as a whole process, with its peak RSS (os.wait4);
3. the same command again (unchanged: the sha256 is the same, nothing is read further);
4. the baseline: the embedding model alone, in this process, on exactly the chunk texts the ingest embedded.

    .venv/bin/python bench/ingest_large.py [--messages 100000] [--json]

Targets (issue 3): messages/s of the ingest at least 0.85 of the raw embedding throughput of the same texts,
the unchanged second ingest under 5% of the first, peak memory under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env, measured, pllm_command  # noqa: E402  (bench/ is on sys.path when a script here runs)

WORDS = (
    "the a we I you it is was to and of in for on with at this that dinner tomorrow tonight run long easy "
    "coffee train late home work meeting park rain garden sister birthday cake buns cat vet appointment "
    "weekend plan ticket flight hotel book read lesson japanese trombone rehearsal band concert great "
    "thanks sorry ok sure maybe later call message photo beach forest lake bike groceries oat milk"
).split()
SPEAKERS = ("Maya", "Jonas", "Elin", "Mamma", "Karin", "Per", "Zoë", "Ólafur")


def generate(path: Path, messages: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    minute = 0
    conversation, left = 0, 0
    with path.open("w", encoding="utf-8") as handle:
        for n in range(messages):
            if left == 0:
                conversation, left = rng.randrange(40), rng.randint(20, 400)
            left -= 1
            minute += rng.choice((1, 1, 2, 3, 5, 12, 40, 180))
            day, rest = divmod(minute, 1440)
            stamp = f"2024-{1 + (day // 28) % 12:02d}-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00+01:00"
            length = max(1, int(rng.expovariate(1 / 9)))
            text = " ".join(rng.choice(WORDS) for _ in range(length))
            record = {
                "conversation": f"chat-{conversation}",
                "id": f"m{n}",
                "speaker": rng.choice(SPEAKERS),
                "time": stamp,
                "text": text,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def baseline(chat: Path) -> tuple[int, float]:
    """(chunks, seconds) to embed exactly the texts the ingest embeds, model already loaded."""
    from pllm_cli.embedding import SentenceTransformerEmbedder
    from pllm_cli.ingest.chunking import chunk_document
    from pllm_cli.ingest.pipeline import embed_in_batches
    from pllm_cli.ingest.readers import read_document

    texts = [c.embedding_text for c in chunk_document(read_document(chat, chat.read_bytes()))]
    embedder = SentenceTransformerEmbedder()
    embedder.embed(texts[:32])  # load and warm up outside the timing
    started = time.perf_counter()
    embed_in_batches(embedder, texts)
    return len(texts), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    load = OtherLoad()
    with tempfile.TemporaryDirectory() as tmp:
        chat = Path(tmp) / "export.jsonl"
        generate(chat, args.messages)
        env = clean_env(Path(tmp) / "home")
        command = [*pllm_command(), "ingest", str(chat), "--json"]
        out, first_wall, first_rss = measured(command, env)
        report = json.loads(out)
        chunks = report["chunks_written"]
        out2, second_wall, _ = measured(command, env)
        assert json.loads(out2)["summary"]["unchanged"] == 1
        base_chunks, base_seconds = baseline(chat)
    result = {
        "messages": args.messages,
        "chunks": chunks,
        "first_ingest_wall_s": round(first_wall, 2),
        "first_ingest_messages_per_s": round(args.messages / first_wall, 1),
        "first_ingest_peak_rss_mb": round(first_rss),
        "baseline_embed_s": round(base_seconds, 2),
        "baseline_messages_per_s": round(args.messages * base_chunks / chunks / base_seconds, 1),
        "ratio_to_baseline": round(base_seconds / first_wall, 3),
        "pipeline_s": report["seconds"],
        "pipeline_ratio_to_baseline": round(base_seconds / report["seconds"], 3),
        "second_ingest_wall_s": round(second_wall, 2),
        "second_to_first": round(second_wall / first_wall, 4),
        "other_load_cores": round(load.cores(), 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.messages} messages -> {chunks} chunks")
    print(
        f"  first ingest (whole CLI process): {first_wall:.1f} s = {result['first_ingest_messages_per_s']} msg/s, "
        f"peak RSS {first_rss:.0f} MB"
    )
    print(
        f"  baseline, embedding the same {base_chunks} texts in-process (model loaded): {base_seconds:.1f} s "
        f"= {result['baseline_messages_per_s']} msg/s"
    )
    print(f"  ingest throughput / raw embedding throughput: {result['ratio_to_baseline']:.3f}  (target >= 0.85)")
    print(
        f"  inside the pipeline (without process start and imports): {report['seconds']:.1f} s, ratio "
        f"{result['pipeline_ratio_to_baseline']:.3f}"
    )
    print(
        f"  second, unchanged ingest: {second_wall:.2f} s = {result['second_to_first']:.2%} of the first (target < 5%)"
    )
    print(f"  other processes kept {result['other_load_cores']} of 2 cores busy meanwhile")


if __name__ == "__main__":
    main()
