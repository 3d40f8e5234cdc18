"""Search latency with memory embedded vs in a local Chroma server (`chroma run`), in one run, models loaded.

1. the corpus of bench/search_scale.py (N chat chunks of LoCoMo language, default 100,000), embedded with the
   bundled embedder and cached there (~/.cache/pllm/bench/, the same cache: a size already run costs nothing);
2. a `chroma run` started on 127.0.0.1 on a free port with a temporary data folder (stopped at the end);
3. the corpus written through ChromaStore.replace_source into an embedded memory and into a memory on that
   server (memory_url), each timed;
4. for Q LoCoMo questions: Retriever.search (k=12, the question's embedding included) in each mode, and
   dense_search alone, on both; BM25 (the local FTS5 index, the same in both set-ups) against the alternative
   for a server without sparse search: fetching the chunks that contain a question's words from the server
   (`where_document` $contains, OR of the words) to rank them in the client;
5. whether both memories return the same hits for every question and mode.

    .venv/bin/python bench/search_remote.py [--chunks 100000] [--queries 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from search_scale import DEFAULT_DATA, POOL, K, corpus, embed_cached, log, timed, write  # noqa: E402

from pllm_cli.embedding import SentenceTransformerEmbedder  # noqa: E402
from pllm_cli.evaluation.locomo import extract_questions, load_locomo  # noqa: E402
from pllm_cli.memory.index import STOPWORDS, fts_terms  # noqa: E402
from pllm_cli.memory.remote import MemoryServer  # noqa: E402
from pllm_cli.memory.retrieval import Retriever  # noqa: E402
from pllm_cli.memory.store import SEARCH_MODES, ChromaStore  # noqa: E402


def start_chroma(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("chroma run did not answer within 60 s")


def words(question: str) -> list[str]:
    return [term.strip('"') for term in fts_terms(question) if term.strip('"') not in STOPWORDS]


def server_candidates(store: ChromaStore, question: str) -> int:
    """The chunks holding any of the question's words, fetched from the server (what BM25 in the client would
    rank; the document frequencies it needs would cost one more such query per word)."""
    terms = words(question)
    if not terms:
        return 0
    where: dict[str, Any] = {"$contains": terms[0]} if len(terms) == 1 else {"$or": [{"$contains": t} for t in terms]}
    return len(store.collection.get(where_document=where, include=["documents"])["ids"])


def measure(store: ChromaStore, embedder: SentenceTransformerEmbedder, questions: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    hits: dict[str, list[list[str]]] = {}
    now = store.latest_time()
    for mode in SEARCH_MODES:
        retriever = Retriever(store, embedder, mode, now=now)
        found, figures[f"search_{mode}"] = timed(lambda q: retriever.search(q, K), questions)  # noqa: B023
        hits[mode] = [[h.chunk.id for h in result] for result in found]
    vectors = [embedder.embed([q])[0] for q in questions]
    figures[f"dense_search_{POOL}"] = timed(lambda v: store.dense_search(v, POOL), vectors)[1]
    figures[f"lexical_fts5_{POOL}"] = timed(lambda q: store.index.lexical_search(q, POOL), questions)[1]
    return {"figures": figures, "hits": hits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in each memory (default 100,000)")
    parser.add_argument("--queries", type=int, default=100, help="LoCoMo questions to search (default 100)")
    parser.add_argument("--locomo", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON file")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    samples = load_locomo(args.locomo)
    chunks = corpus(samples, args.chunks)
    questions = [q.question for sample in samples for q in extract_questions(sample)][: args.queries]
    embedder = SentenceTransformerEmbedder()
    matrix, embed_seconds = embed_cached(embedder, [c.embedding_text for c in chunks])
    result: dict[str, Any] = {"chunks": len(chunks), "queries": len(questions), "embed_seconds": round(embed_seconds)}
    with tempfile.TemporaryDirectory(prefix="pllm-bench-remote-") as tmp:
        process, url = start_chroma(Path(tmp) / "chroma-server")
        try:
            stores = {
                "embedded": ChromaStore(Path(tmp) / "embedded", embedder.name),
                "server": ChromaStore(Path(tmp) / "client", embedder.name, server=MemoryServer(f"{url}/bench")),
            }
            measured = {}
            for name, store in stores.items():
                log(f"writing {len(chunks):,} chunks to the {name} memory")
                result[f"write_seconds_{name}"] = round(write(store, chunks, matrix), 1)
                log(f"searching the {name} memory")
                measured[name] = measure(store, embedder, questions)
                result[name] = measured[name]["figures"]
            log("fetching BM25 candidates from the server with where_document")
            server = stores["server"]
            counts, result["server_where_document_candidates"] = timed(
                lambda q: server_candidates(server, q), questions
            )
            result["server_where_document_candidates"]["mean_candidates"] = round(sum(counts) / len(counts), 1)
            result["same_hits"] = {
                mode: measured["embedded"]["hits"][mode] == measured["server"]["hits"][mode] for mode in SEARCH_MODES
            }
            for store in stores.values():
                store.close()
        finally:
            process.terminate()
            process.wait(10)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['chunks']:,} chunks, {result['queries']} questions; writing: embedded "
        f"{result['write_seconds_embedded']} s, server {result['write_seconds_server']} s"
    )
    print(f"{'latency (ms)':<34} {'embedded p50/p95':>18} {'server p50/p95':>18}")
    for key in result["embedded"]:
        e, s = result["embedded"][key], result["server"][key]
        print(f"{key:<34} {e['p50_ms']:>8.1f} /{e['p95_ms']:>7.1f} {s['p50_ms']:>10.1f} /{s['p95_ms']:>7.1f}")
    w = result["server_where_document_candidates"]
    print(
        f"{'where_document candidates (server)':<34} {'':>18} {w['p50_ms']:>10.1f} /{w['p95_ms']:>7.1f}"
        f"   ({w['mean_candidates']} chunks per question)"
    )
    print("same hits in both:", ", ".join(f"{m} {'yes' if same else 'NO'}" for m, same in result["same_hits"].items()))


if __name__ == "__main__":
    main()
