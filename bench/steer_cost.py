"""What context steering costs per token: steered decoding (λ = 1) against plain decoding, in one process.

One model (the bundled GGUF, context 4096), one realistic prompt: pllm's system prompt, a short profile and ~600
tokens of memories cut from examples/notes by pllm's own build_messages, then a question; the prompt without the
personal context is the same system prompt and question. Greedy, MAX_TOKENS new tokens. REPEATS rounds, each
running the three variants once in a rotating order (so a busy spell of the machine hits all of them alike):

- stream: LlamaCppModel.stream, llama-cpp-python's create_chat_completion (its prefix cache reset first);
- loop λ=0: LlamaCppModel.stream_steered at strength 0, the steering loop with one sequence (same tokens);
- steered λ=1: the steering loop with both sequences, one 2-token batch per step.

Per variant: prompt = time to the first text piece (prompt processing + the first token's sampling); decode =
ms per token after the first (pieces are tokens here: every piece is one token unless a character or a stop
text is cut across tokens). Ratios are taken within each round, then the median over rounds.

    .venv/bin/python bench/steer_cost.py [--repeats 5] [--max-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad  # noqa: E402  (bench/ is on sys.path when a script here runs)

from pllm_cli.memory.passages import Passage  # noqa: E402
from pllm_cli.memory.records import Chunk  # noqa: E402
from pllm_cli.prompting import Budget, build_messages  # noqa: E402
from pllm_cli.runtime import ChatMessage, LlamaCppModel  # noqa: E402

CONTEXT_SIZE = 4096  # pllm's default context_size
MEMORY_TOKENS = 600
PROFILE = "Maya Lindqvist, landscape architect at Grönstad Landskap in Göteborg. Runs three mornings a week."
QUESTION = "Give me a detailed overview of my project: team, milestones, risks and what I should do next."
NOTES = ["slottsskogen-project.md", "running-plan.md", "elin-gift-ideas.md", "japanese-study.md"]
TARGET = 2.2  # steered / plain, per generated token


def memories() -> list[Passage]:
    """The notes' sections as retrieved passages, in file order (build_messages keeps what fits)."""
    passages = []
    for name in NOTES:
        text = (ROOT / "examples" / "notes" / name).read_text(encoding="utf-8")
        for position, section in enumerate(re.split(r"\n(?=## )", text)):
            chunk = Chunk(id=f"{name}-{position}", source=name, position=position, kind="text", body=section.strip())
            passages.append(Passage(name, "text", "", "", 1.0, [chunk]))
    return passages


def prompts(model: LlamaCppModel, max_tokens: int) -> tuple[list[ChatMessage], list[ChatMessage], dict[str, int]]:
    budget = Budget(CONTEXT_SIZE, max_tokens, memory_tokens=MEMORY_TOKENS, profile_tokens=200)
    common = {"history": [], "budget": budget, "count": model.count_tokens, "name": "Maya"}
    full = build_messages(QUESTION, memories=memories(), profile=PROFILE, **common)
    plain = build_messages(QUESTION, memories=[], profile="", **common)
    sizes = {
        "memories": full.tokens["memories"],
        "with_context": model.count_prompt_tokens(full.messages),
        "without_context": model.count_prompt_tokens(plain.messages),
    }
    return full.messages, plain.messages, sizes


def timed(pieces: Iterator[str]) -> dict[str, Any]:
    started = time.perf_counter()
    times, text = [], []
    for piece in pieces:
        times.append(time.perf_counter())
        text.append(piece)
    if len(times) < 2:
        raise SystemExit("the answer had fewer than 2 pieces: no decode time to measure")
    return {
        "prompt_s": times[0] - started,
        "decode_ms_per_token": 1000 * (times[-1] - times[0]) / (len(times) - 1),
        "pieces": len(times),
        "text": "".join(text),
    }


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mappings_of(path: Path) -> int:
    """How many times the file is mapped into this process (its weights: llama.cpp mmaps the GGUF)."""
    return sum(1 for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args()

    load = OtherLoad()
    memory: dict[str, float] = {"rss_before_load_mb": rss_mb()}
    model = LlamaCppModel(context_size=CONTEXT_SIZE)
    with_context, without_context, sizes = prompts(model, args.max_tokens)  # loads the model
    settings = {"max_tokens": args.max_tokens, "temperature": 0.0, "seed": 0}

    def stream() -> Iterator[str]:
        model.llama.reset()  # no prefix cache: every variant processes its whole prompt
        return model.stream(with_context, **settings)

    def steered(strength: float) -> Callable[[], Iterator[str]]:
        return lambda: model.stream_steered(with_context, without_context, strength=strength, **settings)

    variants: dict[str, Callable[[], Iterator[str]]] = {
        "stream": stream,
        "loop λ=0": steered(0.0),
        "steered λ=1": steered(1.0),
    }
    timed(stream())  # warm up: every weight has been read once
    memory["rss_model_loaded_mb"] = rss_mb()
    memory["gguf_mappings_before"] = mappings_of(model.path)
    for run in variants.values():  # warm up; builds the steering context
        timed(run())
    memory["rss_steering_context_mb"] = rss_mb()
    memory["gguf_mappings_after"] = mappings_of(model.path)
    memory["steering_cells_per_sequence"] = model.steering_context.cells_per_sequence

    rounds: list[dict[str, dict[str, Any]]] = []
    names = list(variants)
    for number in range(args.repeats):
        order = names[number % len(names) :] + names[: number % len(names)]
        rounds.append({name: timed(variants[name]()) for name in order})
    texts = {name: {r[name]["text"] for r in rounds} for name in names}

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in rounds)

    def ratio(key: str, over: str) -> float:
        return statistics.median(r["steered λ=1"][key] / r[over][key] for r in rounds)

    result = {
        "prompt_tokens": sizes,
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "threads": model.threads,
        "variants": {
            name: {
                "prompt_s": median(name, "prompt_s"),
                "decode_ms_per_token": median(name, "decode_ms_per_token"),
                "pieces": median(name, "pieces"),
            }
            for name in names
        },
        "decode_ratio_steered_over_stream": ratio("decode_ms_per_token", "stream"),
        "decode_ratio_steered_over_loop": ratio("decode_ms_per_token", "loop λ=0"),
        "prompt_ratio_steered_over_stream": ratio("prompt_s", "stream"),
        "same_answer_stream_and_loop": texts["stream"] == texts["loop λ=0"] and len(texts["stream"]) == 1,
        "memory": memory,
        "other_load_cores": load.cores(),
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(
        f"prompt: {sizes['with_context']} tokens with the personal context ({sizes['memories']} of memories), "
        f"{sizes['without_context']} without; {args.max_tokens} new tokens, greedy, {model.threads} threads, "
        f"{args.repeats} rounds (medians)"
    )
    print(f"{'':14}{'prompt':>10}{'decode':>14}{'pieces':>8}")
    for name, figures in result["variants"].items():
        print(
            f"{name:14}{figures['prompt_s'] * 1000:>8.0f}ms{figures['decode_ms_per_token']:>9.2f} ms/tok"
            f"{figures['pieces']:>8.0f}"
        )
    steered_ratio = result["decode_ratio_steered_over_stream"]
    print(
        f"steered / stream per token: x{steered_ratio:.2f} "
        f"({'PASS' if steered_ratio <= TARGET else 'MISS'} target x{TARGET}); "
        f"steered / loop λ=0: x{result['decode_ratio_steered_over_loop']:.2f}; "
        f"prompt processing steered / stream: x{result['prompt_ratio_steered_over_stream']:.2f}"
    )
    print(f"loop λ=0 gave the same answer as stream in every round: {result['same_answer_stream_and_loop']}")
    print(
        f"RSS: {memory['rss_before_load_mb']:.0f} MB before the model, {memory['rss_model_loaded_mb']:.0f} MB loaded, "
        f"{memory['rss_steering_context_mb']:.0f} MB with the steering context "
        f"({memory['steering_cells_per_sequence']:.0f} cells per sequence); the GGUF is mapped "
        f"{memory['gguf_mappings_before']:.0f} time(s) before it and {memory['gguf_mappings_after']:.0f} after"
    )
    print(f"other processes kept {result['other_load_cores']:.2f} of 2 cores busy meanwhile")


if __name__ == "__main__":
    main()
