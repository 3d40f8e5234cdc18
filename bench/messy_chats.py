"""Make LoCoMo-format chats look like real ones, to measure retrieval where real exports are hard.

    python bench/messy_chats.py ../shared/eval/locomo/locomo-dev.json /tmp/messy.json [--seed 0]
    pllm eval retrieval /tmp/messy.json --ablate

LoCoMo's conversations were written by a model: one tidy paragraph a turn. People chat differently, and the
issue measured it: on real chats in the same format, what `pllm ask` is shown within 512 tokens held 53% of
the evidence, against 78% on LoCoMo. This script rewrites each conversation the way people type, keeping
its facts and its questions, so that the evidence can still be scored:

- a turn becomes a burst of short messages (split at sentence ends, long sentences at a comma or "and");
- most messages lose their capitals and final full stop; common words become chat slang (u, bc, gonna, rly);
- a few words get a typo (two letters swapped, one dropped or doubled), names included;
- the other person often reacts in between ("lol", "omg", "nice!!"), and people add fillers ("anyway").

Each message gets its own id (D<session>:<n>, renumbered), and a question's evidence becomes every message
of its evidence turns: recall is then the share of those messages retrieved. Questions are kept as written
(the user still asks properly). Seeded: the same input and seed give the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pllm_cli.evaluation.locomo import load_locomo, parse_evidence, session_numbers

SLANG = {
    "you": "u",
    "your": "ur",
    "are": "r",
    "because": "bc",
    "going to": "gonna",
    "want to": "wanna",
    "really": "rly",
    "tonight": "tonite",
    "thanks": "thx",
    "please": "pls",
    "probably": "prob",
    "definitely": "def",
    "though": "tho",
    "I don't know": "idk",
    "to be honest": "tbh",
    "oh my god": "omg",
    "okay": "ok",
    "something": "smth",
    "people": "ppl",
    "tomorrow": "tmrw",
}
REACTIONS = ["lol", "haha", "omg", "wow", "nice!!", "aww", "ikr", "😂😂", "❤️", "yess", "no way", "hmm", "same"]
FILLERS = ["anyway", "brb", "sorry was driving", "wait", "ok so", "lemme think"]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CLAUSE = re.compile(r",\s+|\s+and\s+")


def bursts(text: str, rng: random.Random) -> list[str]:
    """A turn as the short messages a person would send for it."""
    parts: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if len(sentence.split()) > 12 and rng.random() < 0.6:
            parts.extend(p for p in _CLAUSE.split(sentence, maxsplit=1) if p.strip())
        elif sentence.strip():
            parts.append(sentence)
    merged: list[str] = []
    for part in parts:  # sometimes two short sentences still go out as one message
        if merged and len(merged[-1].split()) < 5 and rng.random() < 0.3:
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return merged or [text]


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 5 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 2)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def roughen(message: str, rng: random.Random) -> str:
    """Slang, typos, lower case and no final stop, each with the rate people show in exports."""
    for formal, slang in SLANG.items():
        if rng.random() < 0.6:
            message = re.sub(rf"\b{re.escape(formal)}\b", slang, message, flags=re.IGNORECASE)
    words = [typo(w, rng) if rng.random() < 0.04 else w for w in message.split(" ")]
    message = " ".join(words)
    if rng.random() < 0.7:
        message = message.lower()
    if rng.random() < 0.6:
        message = message.rstrip(".")
    if rng.random() < 0.1:
        message = message.replace("!", "!!!")
    return message


def messy_session(
    turns: list[dict[str, Any]], session: int, rng: random.Random
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    out: list[dict[str, Any]] = []
    ids: dict[str, list[str]] = {}
    speakers = list(dict.fromkeys(str(t["speaker"]) for t in turns))

    def add(speaker: str, text: str, extra: dict[str, Any] | None = None) -> str:
        dia_id = f"D{session}:{len(out) + 1}"
        out.append({"speaker": speaker, "dia_id": dia_id, "text": text, **(extra or {})})
        return dia_id

    for turn in turns:
        speaker = str(turn["speaker"])
        messages = bursts(str(turn.get("text", "")), rng)
        if rng.random() < 0.1:
            add(speaker, rng.choice(FILLERS))
        new_ids = []
        for n, message in enumerate(messages):
            extra = (
                {"blip_caption": turn["blip_caption"]} if turn.get("blip_caption") and n == len(messages) - 1 else None
            )
            new_ids.append(add(speaker, roughen(message, rng), extra))
        ids[str(turn["dia_id"])] = new_ids
        others = [s for s in speakers if s != speaker]
        if others and rng.random() < 0.2:
            add(others[0], rng.choice(REACTIONS))
    return out, ids


def messy_sample(sample: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    conversation = dict(sample["conversation"])
    mapping: dict[str, list[str]] = {}
    for number in session_numbers(sample):
        turns, ids = messy_session(conversation[f"session_{number}"], number, rng)
        conversation[f"session_{number}"] = turns
        mapping.update(ids)
    qa = []
    for item in sample.get("qa", []):
        evidence = [new for old in parse_evidence(item.get("evidence") or []) for new in mapping.get(old, [])]
        qa.append({**item, "evidence": evidence})
    return {**sample, "conversation": conversation, "qa": qa}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    samples = [messy_sample(s, rng) for s in load_locomo(args.source)]
    args.target.write_text(json.dumps(samples, ensure_ascii=False, indent=1), encoding="utf-8")
    before = sum(len(s["conversation"][f"session_{n}"]) for s in load_locomo(args.source) for n in session_numbers(s))
    after = sum(len(s["conversation"][f"session_{n}"]) for s in samples for n in session_numbers(s))
    print(f"{len(samples)} conversations: {before} turns became {after} messages -> {args.target}")


if __name__ == "__main__":
    main()
