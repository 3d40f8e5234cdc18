"""pllm eval answers: questions asked through the real session and prompt, scored as LoCoMo scores them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.errors import ExitCode
from pllm_cli.evaluation.answers import choose_questions, settings_for
from pllm_cli.evaluation.locomo import load_locomo
from tests.test_eval import LOCOMO_DEV, tiny_locomo


def answers_of(report: dict[str, Any], setting: str) -> dict[str, dict[str, Any]]:
    return {a["question"]: a for a in report["answers"] if a["setting"] == setting}


def test_every_question_in_every_setting_scored(tmp_path: Path, run: Any, fake_models: Any) -> None:
    fake_models.answer = "Gustavo [1]"
    result = run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert [s["name"] for s in report["settings"]] == ["no memory", "memory"]
    assert report["summary"]["no memory"]["citation_precision"] is None  # nothing cited: nothing to measure
    assert report["questions"] == 3 and len(report["answers"]) == 6

    remembered = answers_of(report, "memory")
    tortoise = remembered["What is the name of Ana's tortoise?"]
    # "Gustavo" is in both sessions: pllm cites both, and only the first holds the evidence
    assert tortoise["score"] == 1.0 and sorted(tortoise["cited"]) == [1, 2] and tortoise["cited_precision"] == 0.5
    assert tortoise["evidence_in_prompt"] == 1.0
    assert remembered["Where does Bo's band play?"]["score"] == 0.0
    assert remembered["Adversarial"]["abstained"] is False and remembered["Adversarial"]["score"] == 0.0

    alone = answers_of(report, "no memory")
    assert all(a["cited"] == [] and a["evidence_in_prompt"] is None for a in alone.values())
    summary = report["summary"]["memory"]
    assert summary["f1"] == 50.0 and summary["abstains_when_absent"] == 0.0 and summary["cites"] == 100.0
    assert json.loads(run("memory", "stats", "--json").stdout)["chunks"] == 0  # the user's memory untouched


def test_abstaining_scores_the_unanswerable_question(tmp_path: Path, run: Any, fake_models: Any) -> None:
    fake_models.answer = "That is not in my memories."
    report = json.loads(run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--json").stdout)
    summary = report["summary"]["memory"]
    assert summary["abstains_when_absent"] == 100.0 and summary["abstains_when_present"] == 100.0
    assert summary["f1"] == 0.0


def test_steering_settings_reach_the_model(tmp_path: Path, run: Any, fake_models: Any) -> None:
    result = run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--steer", "0.5", "--json")
    assert result.exit_code == 0, result.stderr
    assert [s["name"] for s in json.loads(result.stdout)["settings"]][-1] == "memory, steer 0.5"
    steered = [call for call in fake_models.calls if "strength" in call]
    assert len(steered) == 3 and {call["strength"] for call in steered} == {0.5}
    for call in steered:  # the contrast is the same question without the memories
        assert "My notes" in call["messages"][-1].content and "My notes" not in call["plain_messages"][-1].content


def test_the_table_names_every_setting(tmp_path: Path, run: Any, fake_models: Any) -> None:
    result = run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")))
    assert result.exit_code == 0, result.stderr
    rows = [line.split("  ")[0].strip() for line in result.stdout.splitlines()[3:]]
    assert rows == ["no memory", "memory"]


def test_bad_input_is_a_usage_error(tmp_path: Path, run: Any, fake_models: Any) -> None:
    data = str(tiny_locomo(tmp_path / "tiny.json"))
    assert run("eval", "answers", data, "--speaker", "c").exit_code == ExitCode.INPUT
    assert run("eval", "answers", data, "--steer", "-1").exit_code == ExitCode.INPUT
    assert run("eval", "answers", str(tmp_path / "missing.json")).exit_code == ExitCode.INPUT


def test_settings_side_by_side() -> None:
    names = [s.name for s in settings_for(profile=True, steer=[0, 1])]
    assert names == ["no memory", "memory", "memory + profile", "memory + profile, steer 1"]


@pytest.mark.skipif(not LOCOMO_DEV.exists(), reason="../shared/eval/locomo/locomo-dev.json is not beside the repo")
def test_the_draw_per_category_is_reproducible_and_ignores_file_order() -> None:
    samples = load_locomo(LOCOMO_DEV)
    chosen = choose_questions(samples, 10)
    shuffled = list(samples)
    random.Random(7).shuffle(shuffled)
    again = choose_questions(shuffled, 10)
    assert {(q.sample_id, q.question) for q in chosen} == {(q.sample_id, q.question) for q in again}
    counts = {c: sum(q.category == c for q in chosen) for c in range(1, 6)}
    assert counts == dict.fromkeys(range(1, 6), 10)
    assert len(choose_questions(samples, None)) > 900  # no limit: every question, the unanswerable ones too


@pytest.mark.e2e
def test_real_model_answers_are_scored(tmp_path: Path, run: Any) -> None:
    result = run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--steer", "1", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["answers"]) == 9 and report["model"].endswith(".gguf")
    for answer in report["answers"]:
        assert answer["answer"].strip() and answer["total_s"] > 0 and 0.0 <= answer["score"] <= 1.0


def test_ablate_asks_without_each_answering_technique(tmp_path: Path, run: Any, fake_models: Any) -> None:
    fake_models.answer = "\n1. Gustavo\nand more"
    report = json.loads(run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--ablate", "--json").stdout)
    assert [s["name"] for s in report["settings"]] == ["no memory", "memory", "memory -check", "memory -short -check"]
    question = "What is the name of Ana's tortoise?"
    answers = {a["setting"]: a["answer"] for a in report["answers"] if a["question"] == question}
    assert answers["memory"].startswith("Gustavo [") and answers["memory -check"] == "Gustavo"
    assert answers["memory -short -check"] == fake_models.answer


def test_profile_build_asks_with_the_users_profile(tmp_path: Path, run: Any, fake_models: Any) -> None:
    result = run("eval", "answers", str(tiny_locomo(tmp_path / "tiny.json")), "--profile-build", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["name"] for s in report["settings"]][-1] == "memory + profile"
    assert report["profile_facts"]["conv-x"] > 0  # Ana's "I adopted a tortoise named Gustavo yesterday."
    with_profile = [c for c in fake_models.calls if "grammar" not in c and "About Ana" in c["messages"][0].content]
    assert len(with_profile) == 3
