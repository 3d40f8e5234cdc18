"""Latency and memory of `pllm ask` in a cold process, against bare llama.cpp, and of `pllm --help`.

In one run:
1. ingest examples/ (README.md excluded, `me` set to Maya, as `make demo` does) into a fresh temporary
   PLLM_HOME, and build the profile (`pllm profile refresh`; --no-profile leaves it out);
2. REPEATS x two `pllm ask --json --seed 1 QUESTION`, each a new process: the first with the prefix cache emptied
   (the prompt's stable beginning, system prompt and the profile's core, is evaluated and stored), the second
   with it (restored from disk): wall time, the JSON timings (time to first token, total = prepare + generate)
   and the peak RSS of that process (os.wait4 gives each child's own);
3. the baseline: REPEATS x a subprocess that only imports llama_cpp (and registers its CPU variant), loads the same
   GGUF with the same context and threads, evaluates a prompt of the same token count as pllm's and generates the
   same number of tokens;
4. `pllm --help` wall time, median of 10 runs, against `python -c pass` with the same interpreter.

    .venv/bin/python bench/ask_latency.py [QUESTION] [--repeats 3] [--busy] [--json]

With --busy a second process spins on one core the whole time (the other load line then says about 1.0):
compare its figures with a run without it to see what a busy core costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env, measured, pllm_command, set_up_demo_home  # noqa: E402  (bench/ is on sys.path when a script here runs)

from pllm_cli.paths import Paths  # noqa: E402
from pllm_cli.prefix_cache import PrefixCache  # noqa: E402
from pllm_cli.runtime import bundled_model_path  # noqa: E402

DEFAULT_QUESTION = "Who is my manager, and when is my project deadline?"  # the Makefile's DEMO_QUESTION
CONTEXT_SIZE = 4096  # pllm's default context_size

BASELINE = r"""
import json, sys, time
started = time.perf_counter()
from llama_cpp import Llama
from pllm_cli.llama_backend import load_cpu_backend
load_cpu_backend()  # a build with runtime CPU dispatch has no CPU code until a variant is loaded (as pllm does)
imported = time.perf_counter()
path, n_prompt, n_generate, n_ctx, threads = sys.argv[1], *map(int, sys.argv[2:6])
llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
loaded = time.perf_counter()
filler = b"My notes say the rehearsal moved to Thursday and the project deadline is at the end of March. " * 400
prompt = llm.tokenize(filler, add_bos=True)[:n_prompt]
first = None
count = 0
begun = time.perf_counter()
for _ in llm.generate(prompt, temp=0.0, top_k=1):  # generate() does not stop at end-of-text
    count += 1
    if first is None:
        first = time.perf_counter()
    if count >= n_generate:
        break
done = time.perf_counter()
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported, "prompt_tokens": len(prompt),
    "generated": count, "first_token_s": first - begun, "generate_s": done - begun, "total_s": done - started,
}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wall_median(command: list[str], env: dict[str, str], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(row[key] for row in rows), 3) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--repeats", type=int, default=3, help="cold `pllm ask` processes (default 3)")
    parser.add_argument("--help-runs", type=int, default=10, help="runs of `pllm --help` (default 10)")
    parser.add_argument("--json", action="store_true", help="JSON object on stdout instead of the text report")
    parser.add_argument("--busy", action="store_true", help="keep one core busy the whole time (a spinning process)")
    parser.add_argument("--no-profile", action="store_true", help="ask without a profile (no `pllm profile refresh`)")
    args = parser.parse_args()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        run(args)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def run(args: argparse.Namespace) -> None:

    asks: list[dict[str, float]] = []  # with the prompt's stable beginning restored from disk
    uncached: list[dict[str, float]] = []  # the same, the prefix cache emptied first
    sources: dict[bool, list[str]] = {False: [], True: []}
    answers: list[str] = []
    prompt_tokens = 0
    load = OtherLoad()
    with tempfile.TemporaryDirectory(prefix="pllm-bench-ask-") as tmp:
        env = clean_env(Path(tmp) / "home")
        log("ingesting examples/ ...")
        set_up_demo_home(env)
        if not args.no_profile:
            log("building the profile ...")
            subprocess.run([*pllm_command(), "profile", "refresh"], env=env, capture_output=True, check=True)
        cache = PrefixCache(Paths(Path(env["PLLM_HOME"])).prefix_cache_dir)
        for repeat in range(args.repeats):
            for cached in (False, True):
                if not cached:
                    cache.clear()
                out, wall, rss = measured([*pllm_command(), "ask", "--json", "--seed", "1", args.question], env)
                reply: dict[str, Any] = json.loads(out)
                timings = reply["timings"]
                prompt_tokens = int(reply["prompt"]["tokens"].get("prompt_total", 0))
                stable = reply["prompt"].get("stable_prefix") or {}
                row = {
                    "wall_s": wall,
                    "retrieve_s": timings.get("retrieve_s", 0.0),
                    "prepare_s": timings.get("prepare_s", 0.0),
                    "first_token_s": timings.get("first_token_s", 0.0),
                    "generate_s": timings.get("generate_s", 0.0),
                    "total_s": timings.get("prepare_s", 0.0) + timings.get("generate_s", 0.0),
                    "completion_pieces": float(reply["completion_pieces"]),
                    "prompt_tokens": float(prompt_tokens),
                    "stable_tokens": float(stable.get("tokens", 0)),
                    "peak_rss_mb": rss,
                }
                (asks if cached else uncached).append(row)
                sources[cached].append(stable.get("from", "none"))
                answers.append(reply["answer"])
                log(
                    f"ask {repeat + 1} ({'beginning from disk' if cached else 'cache emptied'}): {wall:.2f} s wall, "
                    f"first token {row['first_token_s']:.2f} s, {rss:.0f} MB, {reply['completion_pieces']} pieces, "
                    f"stable beginning {stable.get('tokens', 0)} tokens ({stable.get('from', 'none')})"
                )

        generated = max(1, int(statistics.median(row["completion_pieces"] for row in asks)))
        threads = os.cpu_count() or 1
        baseline_rows: list[dict[str, float]] = []
        for repeat in range(args.repeats):
            command = [
                sys.executable,
                "-c",
                BASELINE,
                str(bundled_model_path()),
                str(max(1, prompt_tokens)),
                str(generated),
                str(CONTEXT_SIZE),
                str(threads),
            ]
            out, wall, rss = measured(command, env)
            row = json.loads(out)
            baseline_rows.append({"wall_s": wall, **{k: float(v) for k, v in row.items()}, "peak_rss_mb": rss})
            log(f"baseline {repeat + 1}: {wall:.2f} s wall, {rss:.0f} MB")

        help_median, help_times = wall_median([*pllm_command(), "--help"], env, args.help_runs)
        pass_median, pass_times = wall_median([sys.executable, "-c", "pass"], env, args.help_runs)

    result = {
        "question": args.question,
        "answers_identical": len(set(answers)) == 1,
        "answer": answers[0],
        "pllm_ask": {"runs": [{k: round(v, 3) for k, v in row.items()} for row in asks], "median": summary(asks)},
        "pllm_ask_cache_emptied": {
            "runs": [{k: round(v, 3) for k, v in row.items()} for row in uncached],
            "median": summary(uncached),
        },
        "stable_beginning_from": {"cache_emptied": sources[False], "cached": sources[True]},
        "profile": not args.no_profile,
        "bare_llama_cpp": {
            "runs": [{k: round(v, 3) for k, v in row.items()} for row in baseline_rows],
            "median": summary(baseline_rows),
        },
        "help": {
            "pllm_help_median_s": round(help_median, 3),
            "python_pass_median_s": round(pass_median, 3),
            "pllm_help_runs_s": [round(t, 3) for t in help_times],
            "python_pass_runs_s": [round(t, 3) for t in pass_times],
        },
        "other_processes_cores": round(load.cores(), 2),
    }
    # decode: from the first token to the last, per token after the first (pllm: all its cold asks)
    pllm_decode = statistics.median(
        1000 * (row["total_s"] - row["first_token_s"]) / max(row["completion_pieces"] - 1, 1) for row in asks + uncached
    )
    bare_decode = statistics.median(
        1000 * (row["generate_s"] - row["first_token_s"]) / max(row["generated"] - 1, 1) for row in baseline_rows
    )
    result["decode_ms_per_token"] = {
        "pllm": round(pllm_decode, 2),
        "bare": round(bare_decode, 2),
        "ratio": round(pllm_decode / bare_decode, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    ask, base = result["pllm_ask"]["median"], result["bare_llama_cpp"]["median"]
    cold = result["pllm_ask_cache_emptied"]["median"]
    print(f"question: {args.question}")
    print(f"answer (seed 1, identical in all runs: {result['answers_identical']}): {answers[0]!r}")
    print(
        f"pllm ask --json, {args.repeats} x 2 cold processes ({'with' if result['profile'] else 'without'} a profile; "
        f"prompt {prompt_tokens} tokens, of which the stable beginning {ask['stable_tokens']:.0f}; "
        f"{ask['completion_pieces']:.0f} pieces generated)"
    )
    for label, rows in (("prefix cache emptied first", uncached), ("stable beginning from the prefix cache", asks)):
        print(f"  {label}:")
        for row in rows:
            print(
                f"    wall {row['wall_s']:.2f} s  first token {row['first_token_s']:.2f} s  total {row['total_s']:.2f}"
                f" s (retrieve {row['retrieve_s']:.2f}, prepare {row['prepare_s']:.2f}, generate "
                f"{row['generate_s']:.2f})  peak RSS {row['peak_rss_mb']:.0f} MB"
            )
    for label, row in (("cache emptied", cold), ("from the cache", ask)):
        print(
            f"  median, {label}: wall {row['wall_s']:.2f} s, first token {row['first_token_s']:.2f} s, total "
            f"{row['total_s']:.2f} s, peak RSS {row['peak_rss_mb']:.0f} MB"
        )
    print(
        f"  the cached beginning saves {cold['first_token_s'] - ask['first_token_s']:.2f} s of the first token "
        f"(x{ask['first_token_s'] / max(cold['first_token_s'], 1e-9):.2f})"
    )
    print(
        f"baseline: bare llama_cpp in a fresh process, same model, n_ctx {CONTEXT_SIZE}, {threads} threads, "
        f"{base['prompt_tokens']:.0f}-token prompt, {base['generated']:.0f} tokens"
    )
    for row in baseline_rows:
        print(
            f"  wall {row['wall_s']:.2f} s  import {row['import_s']:.2f}  load {row['load_s']:.2f}  first token "
            f"{row['first_token_s']:.2f} s after load  generate {row['generate_s']:.2f} s  peak RSS "
            f"{row['peak_rss_mb']:.0f} MB"
        )
    print(
        f"  median: wall {base['wall_s']:.2f} s, peak RSS {base['peak_rss_mb']:.0f} MB; pllm overhead "
        f"{ask['wall_s'] - base['wall_s']:.2f} s wall, {ask['peak_rss_mb'] - base['peak_rss_mb']:.0f} MB"
    )
    decode = result["decode_ms_per_token"]
    print(
        f"decode after the first token: pllm {decode['pllm']:.1f} ms/token, bare llama_cpp {decode['bare']:.1f} "
        f"ms/token: x{decode['ratio']:.2f}"
    )
    print(
        f"pllm --help: median {help_median * 1000:.0f} ms over {args.help_runs} runs; "
        f"python -c pass: {pass_median * 1000:.0f} ms"
    )
    print(
        f"other processes kept {result['other_processes_cores']:.2f} of {os.cpu_count()} cores busy meanwhile"
        " (above ~0.2 the figures are disturbed)"
    )


if __name__ == "__main__":
    main()
