"""`pllm feedback` with the REAL bundled models: a scripted round of questions, fixes and re-asks on a home of
two example notes. Every fixed question, asked again as it was and in other words, is answered with its fix;
an answer judged bad is not given again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, invoke

from pllm_cli.feedback import normalized

pytestmark = pytest.mark.e2e

# (question, the same question in other words, the user's fix, what an answer must hold): fixes the notes
# contradict and one they do not hold at all
ROUNDS = [
    ("Who is my manager?", "What's the name of my boss?", "Sofia Lind is your manager now.", "Sofia Lind"),
    ("What is my bike lock code?", "Which code opens my bike lock?", "4711", "4711"),
    (
        "When is the project deadline?",
        "By what date is the final design due?",
        "The deadline moved to 15 August 2026.",
        "15 August 2026",
    ),
]


@pytest.fixture
def two_notes(home: Path) -> Path:
    for name in ("slottsskogen-project.md", "running-plan.md"):
        done = invoke(["--no-server", "ingest", str(EXAMPLES / "notes" / name)])
        assert done.exit_code == 0, done.stderr
    return home


def ask(question: str) -> dict[str, Any]:
    result = invoke(["--no-server", "ask", "--json", "--seed", "1", "--max-tokens", "32", question])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_fixed_questions_are_answered_with_their_fix(two_notes: Path) -> None:
    assert "PLLM_MODEL" not in os.environ
    for question, _, fix, _ in ROUNDS:
        first = ask(question)
        judged = invoke(["feedback", "bad", "--fix", fix, "--json"])
        assert judged.exit_code == 0, judged.stderr
        record = json.loads(judged.stdout)
        assert (record["question"], record["answer"], record["fix"]) == (question, first["answer"], fix)
    for question, paraphrase, _, key in ROUNDS:
        for asked in (question, paraphrase):
            again = ask(asked)
            assert normalized(key) in normalized(again["answer"]), (asked, key, again["answer"])
            source = again["sources"][-1]
            assert source["kind"] == "correction" and source["cited"], again["sources"][-1:]
    listed = invoke(["feedback", "list", "--json"]).json_lines()
    assert [r["fix"] for r in listed] == [fix for _, _, fix, _ in ROUNDS]


def test_an_answer_judged_bad_is_not_given_again(two_notes: Path) -> None:
    question = "Which day is my long run?"
    first = ask(question)
    assert invoke(["feedback", "bad"]).exit_code == 0
    again = ask(question)
    assert normalized(again["answer"]) != normalized(first["answer"]), again["answer"]
    assert again["timings"].get("rejected_answers", 0) >= 1
