"""HNSW recall and search latency of a memory of 100,000 chunks of real language, models already loaded.

In one run, in this process (no CLI):
1. a corpus of N chat chunks (default 100,000): random runs of 2-40 consecutive LoCoMo turns (locomo-dev.json)
   from random conversations, placed at random times over 5 years in a few hundred sources
   ("bench/chat-000.jsonl", ~250 chunks each), cut by pllm's own chunk_document (its chat windows). LoCoMo has
   only ~2,760 turns, so each source renames the speakers (a seeded draw from a pool of 50 names) and chunks
   whose embedded text repeats are left out: N distinct vectors;
2. embedded with the bundled embedder, cached as .npy in ~/.cache/pllm/bench/ (keyed by texts and model);
3. written into a ChromaStore in a temporary directory through replace_source, one source at a time, timed;
4. HNSW recall@10: Q LoCoMo questions (default 200) embedded; exact top-10 by numpy brute-force cosine over the
   whole matrix (the baseline, also timed) against store.dense_search(vector, 10), at the configured ef_search
   and for a sweep (collection.modify, then the client reopened: an open collection keeps its old ef_search);
5. Retriever(store, embedder, mode).search(question, k=12) per question for each mode, query embedding
   included, and its parts alone (embedding the question, dense_search, lexical_search).

    .venv/bin/python bench/search_scale.py [--chunks 100000] [--queries 200] [--json]

Targets: HNSW returns >= 99% of the exact top-10 at the configured ef_search (or exact search is the cheaper of
the two); search p95 < 50 ms at 100,000 chunks with the models loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad  # noqa: E402  (bench/ is on sys.path when a script here runs)

from pllm_cli.embedding import SentenceTransformerEmbedder  # noqa: E402
from pllm_cli.evaluation.locomo import extract_questions, load_locomo, sample_to_chat_records  # noqa: E402
from pllm_cli.ingest.chunking import CHAT_CHUNK_TURNS, CHAT_CHUNK_WORDS, chunk_document  # noqa: E402
from pllm_cli.ingest.document import Document, Message  # noqa: E402
from pllm_cli.memory.index import fts_query  # noqa: E402
from pllm_cli.memory.passages import passage_tokens  # noqa: E402
from pllm_cli.memory.records import Chunk, SourceRecord  # noqa: E402
from pllm_cli.memory.retrieval import Retriever, Techniques  # noqa: E402
from pllm_cli.memory.store import HNSW, SEARCH_MODES, ChromaStore  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "eval" / "locomo" / "locomo-dev.json"
CACHE = Path.home() / ".cache" / "pllm" / "bench"
NAMES = (
    "Maya Jonas Elin Karin Per Zoe Olafur Amir Sofia Liam Noor Hana Diego Lucia Tomas Ines Yuki Kenji Aisha Omar "
    "Leila Mateo Clara Felix Ida Emil Astrid Nils Freya Hugo Lea Oskar Vera Anton Mira Jana Pavel Rosa Tariq Selma"
).split()  # with LoCoMo's own 10 speakers: a pool of 50
CHUNKS_PER_SOURCE = 250
TOP = 10  # recall@10
K = 12  # hits per search: the `k` setting's default
POOL = max(K * 4, 40)  # what ChromaStore.search asks each retriever for
MEMORY_TOKENS = 512  # the `memory_tokens` setting's default
SWEEP = (10, 20, 40, 80, 120, 200, 400, 800)
RECALL_TARGET, P95_TARGET_MS = 0.99, 50.0
VERDICT = {True: "PASS", False: "MISS"}
T = TypeVar("T")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def corpus(samples: list[dict[str, Any]], n: int, seed: int = 7) -> list[Chunk]:
    """N chat chunks with distinct embedded texts, source after source (see the docstring at the top)."""
    rng = random.Random(seed)
    conversations = [sample_to_chat_records(sample) for sample in samples]
    speakers = sorted({turn["speaker"] for turns in conversations for turn in turns})
    pool = [*NAMES, *speakers]
    sources = max(1, round(n / CHUNKS_PER_SOURCE))
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for number in range(sources):
        source, first, target = f"bench/chat-{number:03d}.jsonl", len(chunks), n * (number + 1) // sources
        names = dict(zip(speakers, rng.sample(pool, len(speakers)), strict=True))
        when = datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=rng.uniform(0, 4 * 365))
        for attempt in range(100_000):
            if len(chunks) >= target:
                break
            turns = rng.choice(conversations)
            start = rng.randrange(len(turns))
            when += timedelta(hours=rng.uniform(7, 240))  # longer than a chat window's pause: runs stay apart
            run = [
                Message(t["conversation"], f"{number}-{attempt}-{t['id']}", names[t["speaker"]], stamp, t["text"])
                for i, t in enumerate(turns[start : start + rng.randint(2, 40)])
                for stamp in [(when + timedelta(minutes=2 * i)).isoformat()]
            ]
            for chunk in chunk_document(Document(source, "chat-jsonl", source, messages=run)):
                if chunk.embedding_text in seen or len(chunks) >= target:
                    continue
                seen.add(chunk.embedding_text)
                position = len(chunks) - first
                chunks.append(replace(chunk, id=Chunk.make_id(source, position, chunk.text), position=position))
        else:
            raise SystemExit(f"cannot make {n} distinct chunks out of these LoCoMo turns")
    return chunks


def distinct_windows(chunks: list[Chunk]) -> int:
    """Distinct embedded texts once the speakers' names are taken off: how many different turn windows there are."""
    return len({tuple(turn.text for turn in (*c.context, *c.turns)) for c in chunks})


def embed_cached(embedder: SentenceTransformerEmbedder, texts: Sequence[str], batch: int = 2048) -> tuple[Any, float]:
    """(float32 matrix, seconds spent embedding: 0.0 when it came from the cache)."""
    import numpy

    key = hashlib.sha256("\0".join([embedder.name, *texts]).encode()).hexdigest()[:24]
    path = CACHE / f"search_scale-{key}.npy"
    if path.exists():
        log(f"embeddings from the cache: {path}")
        return numpy.load(path), 0.0
    started = time.perf_counter()
    rows = []
    for start in range(0, len(texts), batch):
        rows.append(numpy.asarray(embedder.embed(texts[start : start + batch]), dtype=numpy.float32))
        done = min(start + batch, len(texts))
        log(f"embedded {done:,} / {len(texts):,} chunks ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    matrix = numpy.vstack(rows)
    CACHE.mkdir(parents=True, exist_ok=True)
    unfinished = path.with_suffix(".unfinished.npy")
    numpy.save(unfinished, matrix)
    unfinished.replace(path)  # a run stopped half-way leaves no cache that looks complete
    return matrix, seconds


def write(store: ChromaStore, chunks: list[Chunk], matrix: Any) -> float:
    """Seconds to write every source through ChromaStore.replace_source, as an ingest does."""
    started = time.perf_counter()
    at = 0
    for count, (source, group) in enumerate(groupby(chunks, key=lambda c: c.source), start=1):
        batch = list(group)
        digest = hashlib.sha256("\n".join(c.text for c in batch).encode()).hexdigest()
        messages = sum(len(c.message_ids) for c in batch)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        record = SourceRecord(source, digest, "chat-jsonl", len(batch), messages, now)
        store.replace_source(record, batch, list(matrix[at : at + len(batch)]))
        at += len(batch)
        if count % 50 == 0:
            log(f"written {at:,} / {len(chunks):,} chunks ({time.perf_counter() - started:.0f} s)")
    return time.perf_counter() - started


def latency(seconds: Sequence[float]) -> dict[str, float]:
    import numpy

    ms = numpy.asarray(seconds) * 1000
    p50, p95 = numpy.percentile(ms, [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "max_ms": round(float(ms.max()), 2)}


def timed(call: Callable[[Any], T], items: Sequence[Any]) -> tuple[list[T], dict[str, float]]:
    """The results of call(item) for each item, and its latency; a first call to warm up is not counted."""
    call(items[0])
    results, seconds = [], []
    for item in items:
        started = time.perf_counter()
        results.append(call(item))
        seconds.append(time.perf_counter() - started)
    return results, latency(seconds)


def exact_top(matrix: Any, vector: Any) -> list[int]:
    """Rows of the exact top-10 by brute-force cosine (unit vectors: a dot product), best first."""
    import numpy

    sims = matrix @ vector
    best = numpy.argpartition(-sims, TOP)[:TOP]
    return [int(i) for i in best[numpy.argsort(-sims[best])]]


def hnsw_recall(store: ChromaStore, queries: Sequence[Any], truth: list[set[str]]) -> dict[str, float]:
    """Mean share of the exact top-10 in store.dense_search(vector, 10), and its latency."""
    found, figures = timed(lambda v: {i for i, _ in store.dense_search(v, TOP)}, queries)
    recall = sum(len(ids & expected) for ids, expected in zip(found, truth, strict=True)) / (TOP * len(truth))
    return {"recall_at_10": round(recall, 4), **figures}


def closed(store: ChromaStore) -> ChromaStore:
    """`store` closed, its Chroma client too (Chroma keeps one per path and process, with the settings it read)."""
    from chromadb.api.shared_system_client import SharedSystemClient

    store.close()
    SharedSystemClient.clear_system_cache()
    return store


def search_latency(store: ChromaStore, embedder: SentenceTransformerEmbedder, questions: list[str]) -> dict[str, Any]:
    """Per-question latency of Retriever.search (k hits) and of Retriever.recall (passages within
    memory_tokens, what `pllm ask` calls) in each mode, and of the parts."""
    figures: dict[str, Any] = {}
    now = store.latest_time()
    for mode in SEARCH_MODES:
        retriever = Retriever(store, embedder, mode, now=now)
        figures[f"search_{mode}"] = timed(lambda q: retriever.search(q, K), questions)[1]  # noqa: B023
        figures[f"recall_{mode}"] = timed(
            lambda q: retriever.recall(q, MEMORY_TOKENS, passage_tokens),  # noqa: B023
            questions,
        )[1]
    hybrid = Retriever(store, embedder, "hybrid", now=now)
    dated = [q for q in questions if hybrid.periods(q)]
    undated = [q for q in questions if not hybrid.periods(q)]
    figures["dated_questions"] = len(dated)
    for name, group in (("hybrid_dated", dated), ("hybrid_undated", undated), ("hybrid_no_time", questions)):
        retriever = Retriever(
            store, embedder, "hybrid", now=now, techniques=Techniques(time_aware=name != "hybrid_no_time")
        )
        if group:
            figures[f"search_{name}"] = timed(lambda q: retriever.search(q, K), group)[1]  # noqa: B023
    vectors, figures["embed_question"] = timed(lambda q: embedder.embed([q])[0], questions)
    figures[f"dense_search_{POOL}"] = timed(lambda v: store.dense_search(v, POOL), vectors)[1]
    figures[f"lexical_search_{POOL}"] = timed(lambda q: store.index.lexical_search(q, POOL), questions)[1]
    figures[f"lexical_all_words_{POOL}"] = timed(lambda q: all_words_bm25(store, q, POOL), questions)[1]
    if dated:
        figures[f"lexical_in_period_{POOL}"] = timed(
            lambda q: store.index.lexical_search(q, POOL, hybrid.periods(q)), dated
        )[1]
    figures["bm25_top10_kept"] = round(
        sum(
            len({i for i, _ in store.index.lexical_search(q, POOL)[:TOP]} & set(all_words_bm25(store, q, TOP)))
            / max(1, len(all_words_bm25(store, q, TOP)))
            for q in questions
        )
        / len(questions),
        4,
    )
    return figures


def all_words_bm25(store: ChromaStore, question: str, limit: int) -> list[str]:
    """The BM25 ranking with every content word of the question (lexical_search leaves out words found in
    more than 30% of the memory when the query would be slow): the baseline for bm25_top10_kept."""
    query = "SELECT id FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?"
    return [row[0] for row in store.index.db.execute(query, (fts_query(question), limit))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the memory (default 100,000)")
    parser.add_argument("--queries", type=int, default=200, help="LoCoMo questions to search (default 200)")
    parser.add_argument("--locomo", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON file")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    import numpy

    load = OtherLoad()
    samples = load_locomo(args.locomo)
    chunks = corpus(samples, args.chunks)
    questions = [q.question for sample in samples for q in extract_questions(sample)]
    questions = random.Random(11).sample(questions, min(args.queries, len(questions)))
    log(f"{len(chunks):,} chunks in {len({c.source for c in chunks})} sources, {len(questions)} questions")
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["load the model and warm it up"])
    matrix, embed_s = embed_cached(embedder, [c.embedding_text for c in chunks])
    matrix /= numpy.linalg.norm(matrix, axis=1, keepdims=True)
    rows = numpy.asarray(embedder.embed(questions), dtype=numpy.float32)
    queries = list(rows / numpy.linalg.norm(rows, axis=1, keepdims=True))
    ids = [c.id for c in chunks]
    result: dict[str, Any] = {
        "chunks": len(chunks),
        "sources": len({c.source for c in chunks}),
        "distinct_turn_windows": distinct_windows(chunks),
        "words_per_chunk": round(sum(len(c.text.split()) for c in chunks) / len(chunks), 1),
        "queries": len(questions),
        "embed_s": round(embed_s, 1),
        "embed_s_per_1000": round(1000 * embed_s / len(chunks), 2) if embed_s else None,
    }
    with tempfile.TemporaryDirectory(prefix="pllm-search-scale-") as tmp:
        store = ChromaStore(Path(tmp) / "memory", embedding_model=embedder.name)
        write_s = write(store, chunks, matrix)
        assert store.collection.count() == len(chunks) == store.count()
        result.update(write_s=round(write_s, 1), write_chunks_per_s=round(len(chunks) / write_s, 1))
        log("exact search and HNSW recall ...")
        tops, result["exact"] = timed(lambda v: exact_top(matrix, v), queries)
        truth = [{ids[row] for row in top} for top in tops]
        configured = int(str(HNSW["ef_search"]))
        result["hnsw_configured"] = {"ef_search": configured, **hnsw_recall(store, queries, truth)}
        log("search latency ...")
        result["latency"] = search_latency(store, embedder, questions)
        log("ef_search sweep ...")
        store.collection.modify(configuration={"hnsw": {"ef_search": SWEEP[0]}})
        result["modify_open_client"] = {"ef_search": SWEEP[0], **hnsw_recall(store, queries, truth)}
        sweep = []
        for ef in SWEEP:
            store.collection.modify(configuration={"hnsw": {"ef_search": ef}})
            store = ChromaStore(closed(store).directory, embedder.name)  # a new client: see modify_open_client
            effective = store.collection.configuration["hnsw"]["ef_search"]
            sweep.append({"ef_search": ef, "reads_back": effective, **hnsw_recall(store, queries, truth)})
            log(f"  ef_search {ef}: recall@10 {sweep[-1]['recall_at_10']:.4f}")
        result["sweep"] = sweep
        closed(store)
    before, live, smallest = result["hnsw_configured"], result["modify_open_client"], sweep[0]
    if before["recall_at_10"] == smallest["recall_at_10"]:
        result["modify_takes_effect_live"] = None  # recall the same at both: undecided
    else:
        result["modify_takes_effect_live"] = live["recall_at_10"] == smallest["recall_at_10"]
    result["sweep_changes_recall"] = len({s["recall_at_10"] for s in sweep}) > 1
    hnsw_p95, exact_p95 = before["p95_ms"], result["exact"]["p95_ms"]
    result["cheaper"] = "hnsw" if hnsw_p95 <= exact_p95 else "exact"
    result["recall_pass"] = before["recall_at_10"] >= RECALL_TARGET
    result["p95_pass"] = {mode: result["latency"][f"search_{mode}"]["p95_ms"] < P95_TARGET_MS for mode in SEARCH_MODES}
    result["other_load_cores"] = round(load.cores(), 2)
    if args.json:
        print(json.dumps(result))
        return
    report(result)


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['chunks']:,} chunks in {r['sources']} sources ({r['distinct_turn_windows']:,} distinct turn windows, "
        f"speakers renamed), {r['words_per_chunk']} words each (windows of at most {CHAT_CHUNK_TURNS} turns / "
        f"{CHAT_CHUNK_WORDS} words)"
    )
    if r["embed_s"]:
        print(f"  embedding: {r['embed_s']:.0f} s = {r['embed_s_per_1000']} s per 1,000 chunks (cached for next time)")
    else:
        print(f"  embedding: from the cache in {CACHE}")
    print(f"  written through ChromaStore.replace_source: {r['write_s']:.1f} s = {r['write_chunks_per_s']:,} chunks/s")

    def row(name: str, f: dict[str, Any]) -> str:
        recall = f"{f['recall_at_10']:.4f}" if "recall_at_10" in f else "1 (exact)"
        ratio = f["p95_ms"] / r["exact"]["p95_ms"]
        return (
            f"  {name:<34} recall@10 {recall:<9}  p50 {f['p50_ms']:7.2f}  p95 {f['p95_ms']:7.2f}  max "
            f"{f['max_ms']:7.2f} ms  p95 x{ratio:.2f} of exact"
        )

    print(f"HNSW against exact search, {r['queries']} LoCoMo questions, top {TOP}:")
    print(row("exact search (numpy, the baseline)", r["exact"]))
    configured = r["hnsw_configured"]
    print(row(f"HNSW, configured ef_search {configured['ef_search']}", configured))
    print("  sweep (collection.modify, then the client reopened):")
    for s in r["sweep"]:
        print(row(f"  ef_search {s['ef_search']} (reads back {s['reads_back']})", s))
    live = r["modify_open_client"]
    print(row(f"  modify({live['ef_search']}), client left open", live))
    effect = {None: "cannot tell (same recall)", True: "yes", False: "no, only once the client is reopened"}
    print(f"  collection.modify(ef_search) reaches an open client: {effect[r['modify_takes_effect_live']]}")
    if not r["sweep_changes_recall"]:
        print("  NOTE: recall did not change over the sweep: ef_search may not have taken effect, or does not matter")
    print(
        f"  {VERDICT[r['recall_pass']]}: recall@10 {configured['recall_at_10']:.4f} at ef_search "
        f"{configured['ef_search']} (target >= {RECALL_TARGET}); at p95 the cheaper is {r['cheaper']} search"
    )
    print(f"Search latency per question, k={K}, models loaded, query embedding included:")
    lat = r["latency"]
    for name, f in lat.items():
        if isinstance(f, dict):
            mode = name.removeprefix("search_")
            passed = r["p95_pass"].get(mode)
            mark = "" if passed is None else f"  {VERDICT[passed]} (target p95 < {P95_TARGET_MS:.0f} ms)"
            print(f"  {name:<22} p50 {f['p50_ms']:7.2f}  p95 {f['p95_ms']:7.2f}  max {f['max_ms']:7.2f} ms{mark}")
    print(
        f"  BM25 without the common words of slow queries keeps {lat['bm25_top10_kept']:.3f} of the top {TOP} "
        "ranked with every word"
    )
    print(f"other processes kept {r['other_load_cores']} of {os.cpu_count()} cores busy meanwhile")


if __name__ == "__main__":
    main()
