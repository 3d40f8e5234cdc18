"""pllm eval retrieval: LoCoMo-format data through the real pipeline, in temporary memories only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.errors import ExitCode

pytestmark = pytest.mark.usefixtures("memory_backend")  # embedded and on a Chroma server (conftest.py)

LOCOMO_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "locomo" / "locomo-dev.json"


def tiny_locomo(path: Path) -> Path:
    sample = {
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a tortoise named Gustavo yesterday."},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Congratulations, what does Gustavo eat?"},
            ],
            "session_2_date_time": "10:00 am on 9 June, 2023",
            "session_2": [
                {"speaker": "Ana", "dia_id": "D2:1", "text": "Gustavo loves dandelion leaves and strawberries."},
                {"speaker": "Bo", "dia_id": "D2:2", "text": "My band plays the harbour festival in July."},
            ],
        },
        "qa": [
            {
                "question": "What is the name of Ana's tortoise?",
                "answer": "Gustavo",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {
                "question": "Where does Bo's band play?",
                "answer": "harbour festival",
                "evidence": ["D2:2"],
                "category": 4,
            },
            {"question": "Adversarial", "answer": "", "evidence": ["D1:2"], "category": 5},
        ],
    }
    path.write_text(json.dumps([sample]), encoding="utf-8")
    return path


def test_eval_reports_every_mode_and_leaves_the_users_memory_alone(tmp_path: Path, run: Any, fake_models: Any) -> None:
    data = tiny_locomo(tmp_path / "tiny.json")
    result = run("eval", "retrieval", str(data), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 2 and report["turns"] == 4 and report["conversations"] == 1
    assert set(report["modes"]) == {"dense", "lexical", "hybrid"}
    lexical = report["modes"]["lexical"]["overall"]
    assert lexical["n"] == 2 and lexical["within_512"] == 100.0
    assert lexical["recall@5"] == lexical["recall@10"] == 100.0  # 0.0 once when chunks lost message_ids
    assert json.loads(run("memory", "stats", "--json").stdout)["chunks"] == 0


def test_eval_ablate_adds_hybrid_without_each_technique(tmp_path: Path, run: Any, fake_models: Any) -> None:
    result = run("eval", "retrieval", str(tiny_locomo(tmp_path / "tiny.json")), "--mode", "lexical", "--ablate")
    assert result.exit_code == 0, result.stderr
    rows = {line[:18].strip() for line in result.stdout.splitlines()[3:]}
    assert {"lexical", "hybrid -time", "hybrid -neighbours"} <= rows


def test_eval_rejects_bad_input(tmp_path: Path, run: Any, fake_models: Any) -> None:
    (tmp_path / "bad.json").write_text('{"not": "a list"}', encoding="utf-8")
    assert run("eval", "retrieval", str(tmp_path / "bad.json")).exit_code == ExitCode.INPUT
    assert run("eval", "retrieval", str(tmp_path / "missing.json")).exit_code == ExitCode.INPUT
    assert run("eval", "retrieval", str(tmp_path / "bad.json"), "--mode", "psychic").exit_code == ExitCode.USAGE


@pytest.mark.e2e
@pytest.mark.embedded_only  # the whole dev set with the real model: the same figures on a server are checked on
# the small fixture (test_memory_server.py)
@pytest.mark.skipif(not LOCOMO_DEV.exists(), reason="../shared/eval/locomo/locomo-dev.json is not beside the repo")
def test_hybrid_recall_on_locomo_dev_does_not_regress(run: Any) -> None:
    """The real embedder on the real data (~80 s): 78.3 measured when this test was written (issue 5 asks for
    75); 76 guards it. Each technique must still add something (the ablation rows)."""
    result = run("eval", "retrieval", str(LOCOMO_DEV), "--json", "--mode", "hybrid", "--ablate")
    report = json.loads(result.stdout)
    assert report["questions"] == 760
    modes = report["modes"]
    assert modes["hybrid"]["overall"]["within_512"] >= 76.0
    assert modes["hybrid"]["overall"]["recall@10"] >= 50.0
    for ablation in ("hybrid -time", "hybrid -neighbours"):
        assert modes[ablation]["overall"]["within_512"] < modes["hybrid"]["overall"]["within_512"], ablation
