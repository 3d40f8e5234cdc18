"""llama.cpp's speed with 1 thread and with every core, on an idle machine and with one core kept busy.

    .venv/bin/python bench/threads_under_load.py [--repeats 2] [--prompt-tokens 500] [--tokens 32]

Each measurement is a fresh process (the bundled GGUF, pllm's context size) that evaluates a prompt and
generates greedily: prompt seconds and milliseconds per generated token. "busy" runs the same while a second
process spins on one core (what a cron job, a browser or a build does to a laptop). llama.cpp's threads wait
for each other at every step, so a thread that shares its core with another program holds all of them back:
the figure to read is how much slower each thread count gets when one core is taken.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pllm_cli.runtime import bundled_model_path  # noqa: E402

RUN = r"""
import json, sys, time
from llama_cpp import Llama
from pllm_cli.llama_backend import load_cpu_backend
load_cpu_backend()  # a build with runtime CPU dispatch has no CPU code until a variant is loaded (as pllm does)
path, threads, prompt_tokens, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False, seed=1)
words = ("the memory of a person holds notes, mail and chats about work, family and plans " * 200).split()
prompt = llm.tokenize(" ".join(words).encode())[:prompt_tokens]
started = time.perf_counter()
llm.eval(prompt)
evaluated = time.perf_counter()
for _ in range(tokens):
    token = llm.sample(top_k=1, temp=0.0)
    llm.eval([token])
done = time.perf_counter()
print(json.dumps({"prompt_s": evaluated - started, "ms_per_token": 1000 * (done - evaluated) / tokens}))
"""


def measure(threads: int, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    model = str(bundled_model_path())
    command = [sys.executable, "-c", RUN, model, str(threads), str(args.prompt_tokens), str(args.tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env, timeout=1800)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = sorted({1, cores})
    results: dict[str, dict[str, float]] = {}
    for load in ("idle", "busy"):
        spinner = None
        if load == "busy":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for threads in counts:
                runs = [measure(threads, args) for _ in range(args.repeats)]
                results[f"{load}, {threads} thread{'s' if threads > 1 else ''}"] = {
                    "prompt_s": statistics.median(r["prompt_s"] for r in runs),
                    "ms_per_token": statistics.median(r["ms_per_token"] for r in runs),
                }
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    if args.json:
        print(json.dumps({"cores": cores, "results": results}, indent=1))
        return
    print(f"{cores} cores; {args.prompt_tokens}-token prompt, {args.tokens} tokens generated; median of {args.repeats}")
    for name, figures in results.items():
        print(f"  {name:<18} prompt {figures['prompt_s']:6.2f} s   decode {figures['ms_per_token']:7.1f} ms/token")
    for threads in counts:
        label = f"{threads} thread{'s' if threads > 1 else ''}"
        idle, busy = results[f"idle, {label}"], results[f"busy, {label}"]
        print(
            f"  {label}: one core busy makes the prompt x{busy['prompt_s'] / idle['prompt_s']:.2f} "
            f"and decoding x{busy['ms_per_token'] / idle['ms_per_token']:.2f} slower"
        )


if __name__ == "__main__":
    main()
