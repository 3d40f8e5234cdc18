"""`pllm ask` in a cold process against the same questions through a warm `pllm serve`, and 4 clients at once.

In one run, on examples/ ingested (README.md excluded, as `make demo` does) into a fresh temporary PLLM_HOME:
1. baseline: each QUESTION once as `pllm --no-server ask --seed 1 Q`, a new process each: time to the first
   byte of the answer on stdout and wall time, both from the moment the process is started (what a user
   waits), and its peak RSS;
2. `pllm serve` is started (time until it answers --status), asked one other question to warm it, then each
   QUESTION once as `pllm ask --seed 1 Q` through it, measured the same way; the answers must be the
   baseline's, byte for byte;
3. the QUESTIONS asked by 4 client processes started at once: each one's first byte and wall time, all
   answered in full (each answer is its baseline answer), and the wall time until the last is done;
4. `pllm serve --stop`; the server's peak RSS (VmHWM).
Distinct questions, so the server cannot reuse a whole prompt from the run before (only what they share, the
system prompt and profile, as any server would).

    .venv/bin/python bench/serve_latency.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env, pllm_command  # noqa: E402  (bench/ is on sys.path when a script here runs)

QUESTIONS = [
    "Who is my manager, and when is my project deadline?",  # the Makefile's DEMO_QUESTION
    "What does Elin collect?",
    "When is the brass band rehearsal?",
    "What is in my packing list?",
]
WARM_UP = "What am I studying?"
CLIENTS = 4
START_SECONDS = 300.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed_ask(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command`; seconds from start to the first byte on stdout and to exit, its stdout, peak RSS in MB."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.read(1)
    first_byte = time.perf_counter() - started
    rest = process.stdout.read()
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{errors.decode().strip()}")
    return {
        "first_byte_s": first_byte,
        "wall_s": wall,
        "answer": (first + rest).decode(),
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def ask(question: str, env: dict[str, str], *, server: bool) -> dict[str, Any]:
    flags = [] if server else ["--no-server"]
    return timed_ask([*pllm_command(), *flags, "ask", "--seed", "1", question], env)


def concurrent(questions: list[str], env: dict[str, str]) -> tuple[list[dict[str, Any]], float]:
    results: list[dict[str, Any]] = [{} for _ in questions]
    start = threading.Barrier(len(questions) + 1)

    def client(number: int) -> None:
        start.wait()
        results[number] = ask(questions[number], env, server=True)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(questions))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - began


def status(env: dict[str, str]) -> dict[str, Any] | None:
    done = subprocess.run([*pllm_command(), "serve", "--status", "--json"], env=env, capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(row[key]) for row in rows), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON object on stdout instead of the text report")
    args = parser.parse_args()

    load = OtherLoad()
    with tempfile.TemporaryDirectory(prefix="pllm-bench-serve-") as tmp:
        env = clean_env(Path(tmp) / "home")
        log("ingesting examples/ ...")
        subprocess.run(
            [*pllm_command(), "--no-server", "ingest", str(ROOT / "examples"), "--exclude", "README.md", "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
        )
        cold = []
        for question in QUESTIONS:
            cold.append(ask(question, env, server=False))
            log(f"cold: {cold[-1]['first_byte_s']:.2f} s first byte, {cold[-1]['wall_s']:.2f} s wall: {question}")

        server_log = Path(tmp) / "serve.log"
        started = time.perf_counter()
        with server_log.open("wb") as stderr:
            server = subprocess.Popen(
                [*pllm_command(), "serve"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            while status(env) is None:
                if server.poll() is not None or time.perf_counter() - started > START_SECONDS:
                    raise SystemExit("pllm serve did not start:\n" + server_log.read_text())
                time.sleep(0.2)
            server_start = time.perf_counter() - started
            log(f"server answering after {server_start:.2f} s")
            warm_up = ask(WARM_UP, env, server=True)
            warm = []
            for question in QUESTIONS:
                warm.append(ask(question, env, server=True))
                log(f"warm: {warm[-1]['first_byte_s']:.2f} s first byte, {warm[-1]['wall_s']:.2f} s wall: {question}")
            together, together_wall = concurrent(QUESTIONS[:CLIENTS], env)
            log(f"{CLIENTS} clients at once: all done after {together_wall:.2f} s")
            final = status(env) or {}
            server_rss = peak_rss_mb(server.pid)
        finally:
            subprocess.run([*pllm_command(), "serve", "--stop"], env=env, capture_output=True)
            server.wait(120)

    identical = [c["answer"] == w["answer"] for c, w in zip(cold, warm, strict=True)]
    whole = [t["answer"] == c["answer"] for t, c in zip(together, cold, strict=True)]
    result = {
        "questions": QUESTIONS,
        "answers": [c["answer"] for c in cold],
        "cold_in_process": {
            "runs": [{k: v for k, v in row.items() if k != "answer"} for row in cold],
            "median_first_byte_s": median(cold, "first_byte_s"),
            "median_wall_s": median(cold, "wall_s"),
            "median_peak_rss_mb": median(cold, "peak_rss_mb"),
        },
        "server": {"start_s": round(server_start, 3), "warm_up_wall_s": round(warm_up["wall_s"], 3)},
        "warm_server": {
            "runs": [{k: v for k, v in row.items() if k != "answer"} for row in warm],
            "median_first_byte_s": median(warm, "first_byte_s"),
            "median_wall_s": median(warm, "wall_s"),
            "client_peak_rss_mb": median(warm, "peak_rss_mb"),
            "answers_identical_to_cold": identical,
        },
        "concurrent": {
            "clients": CLIENTS,
            "runs": [{k: v for k, v in row.items() if k != "answer"} for row in together],
            "all_answered_in_full": all(whole),
            "answered_in_full": whole,
            "wall_until_last_s": round(together_wall, 3),
            "sum_of_warm_walls_s": round(sum(row["wall_s"] for row in warm[:CLIENTS]), 3),
        },
        "server_status_at_end": {k: final.get(k) for k in ("requests_served", "requests_refused_busy")},
        "server_peak_rss_mb": round(server_rss, 1),
        "other_processes_cores": round(load.cores(), 2),
    }
    cold_first, cold_wall = result["cold_in_process"]["median_first_byte_s"], result["cold_in_process"]["median_wall_s"]
    warm_first, warm_wall = result["warm_server"]["median_first_byte_s"], result["warm_server"]["median_wall_s"]
    result["ratios"] = {
        "warm_first_byte_over_cold": round(warm_first / cold_first, 3),
        "warm_wall_over_cold": round(warm_wall / cold_wall, 3),
        "concurrent_wall_over_sum_of_warm": round(together_wall / result["concurrent"]["sum_of_warm_walls_s"], 3),
    }
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"questions: {len(QUESTIONS)} distinct, `pllm ask --seed 1 Q` (text), timed from process start")
    print(
        f"baseline: cold in-process (--no-server), one new process per question: first byte median {cold_first:.2f} s, "
        f"wall median {cold_wall:.2f} s, peak RSS median {result['cold_in_process']['median_peak_rss_mb']:.0f} MB"
    )
    for question, row in zip(QUESTIONS, cold, strict=True):
        print(f"  first byte {row['first_byte_s']:5.2f} s  wall {row['wall_s']:5.2f} s  {question}")
    print(
        f"pllm serve: answering --status {server_start:.2f} s after start; "
        f"warm-up question {warm_up['wall_s']:.2f} s"
    )
    print(
        f"warm server: first byte median {warm_first:.2f} s "
        f"({result['ratios']['warm_first_byte_over_cold']:.2f}x cold), "
        f"wall median {warm_wall:.2f} s ({result['ratios']['warm_wall_over_cold']:.2f}x cold), client peak RSS "
        f"{result['warm_server']['client_peak_rss_mb']:.0f} MB; answers identical to cold: {identical}"
    )
    for question, row in zip(QUESTIONS, warm, strict=True):
        print(f"  first byte {row['first_byte_s']:5.2f} s  wall {row['wall_s']:5.2f} s  {question}")
    print(
        f"{CLIENTS} clients at once through the server: all answered in full: {all(whole)}; last done after "
        f"{together_wall:.2f} s ({result['ratios']['concurrent_wall_over_sum_of_warm']:.2f}x the sum of their warm "
        f"walls, {result['concurrent']['sum_of_warm_walls_s']:.2f} s)"
    )
    for question, row in zip(QUESTIONS, together, strict=True):
        print(f"  first byte {row['first_byte_s']:5.2f} s  wall {row['wall_s']:5.2f} s  {question}")
    print(
        f"server: peak RSS {server_rss:.0f} MB; {final.get('requests_served')} requests served, "
        f"{final.get('requests_refused_busy')} refused busy"
    )
    print(
        f"other processes kept {result['other_processes_cores']:.2f} of {os.cpu_count()} cores busy meanwhile"
        " (above ~0.2 the figures are disturbed)"
    )


if __name__ == "__main__":
    main()
