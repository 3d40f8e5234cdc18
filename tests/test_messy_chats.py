"""bench/messy_chats.py: LoCoMo-format chats rewritten as people type, with the evidence still pointing at
the messages that hold it."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

from pllm_cli.evaluation.locomo import dia_ids, extract_questions

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "messy_chats.py"


def messy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("messy_chats", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = {
    "sample_id": "s1",
    "conversation": {
        "speaker_a": "Caroline",
        "speaker_b": "Melanie",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hey Mel! Good to see you! How have you been?"},
            {
                "speaker": "Melanie",
                "dia_id": "D1:2",
                "text": "I'm swamped with the kids and work, but I finally signed up for the charity race in June.",
            },
            {"speaker": "Caroline", "dia_id": "D1:3", "text": "That is great. Are you going to train with Anna?"},
        ],
    },
    "qa": [
        {"question": "What did Melanie sign up for?", "answer": "charity race", "evidence": ["D1:2"], "category": 4}
    ],
}


def test_turns_become_bursts_and_the_evidence_follows_them() -> None:
    module = messy()
    result = module.messy_sample(SAMPLE, random.Random(0))
    turns = result["conversation"]["session_1"]
    assert len(turns) > 3
    assert [t["dia_id"] for t in turns] == [f"D1:{n}" for n in range(1, len(turns) + 1)]
    [question] = extract_questions(result)
    assert set(question.evidence) <= dia_ids(result)
    evidence_text = " ".join(t["text"] for t in turns if t["dia_id"] in question.evidence).lower()
    assert "signed up" in evidence_text and "june" in evidence_text
    assert all(t["speaker"] == "Melanie" for t in turns if t["dia_id"] in question.evidence)
    assert module.messy_sample(SAMPLE, random.Random(0)) == result  # seeded: the same file every time


def test_roughening_keeps_words_recognisable() -> None:
    module = messy()
    assert module.bursts("One. Two three! Four?", random.Random(3))[-1] == "Four?"
    words = "because you are going to love this".split()
    rough = module.roughen(" ".join(words), random.Random(1)).split()
    assert 0 < len(rough) <= len(words)
    assert module.typo("Porto", random.Random(0)) != "Porto" and module.typo("cat", random.Random(0)) == "cat"
