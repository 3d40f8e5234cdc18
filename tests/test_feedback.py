"""`pllm feedback` and chat's /good, /bad, /fix with the fake models: the last answer kept, judgements recorded,
listed and forgotten, fixes used at once, bad answers not given again, the same through `pllm serve`.
The real models: test_feedback_e2e.py."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeChatModel, FakeEmbedder
from serve_support import InProcessServer

from pllm_cli.chat import NOT_AGAIN, ChatSession, GenerationSettings
from pllm_cli.feedback import Feedback, FeedbackStore, LastAnswer, normalized, preference_pairs
from pllm_cli.paths import Paths
from pllm_cli.runtime import ChatMessage

QUESTION = "Who is my manager?"
FIX = "Sofia Lind is my manager since May."


@pytest.fixture
def ingested(run: Any, fake_models: FakeChatModel, tmp_path: Path) -> Path:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "work.md").write_text("# Work\n\nMy manager is Karin Ek. Deadline 30 June.\n", encoding="utf-8")
    (notes / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    result = run("ingest", notes)
    assert result.exit_code == 0, result.stderr
    return notes


def paths(home: Path) -> Paths:
    return Paths(home)


def ask_json(run: Any, question: str = QUESTION) -> dict[str, Any]:
    result = run("ask", "--json", question)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_ask_keeps_its_last_answer_privately(run: Any, ingested: Path, home: Path) -> None:
    data = ask_json(run)
    file = paths(home).last_answer_file
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    kept = json.loads(file.read_text(encoding="utf-8"))
    assert (kept["question"], kept["answer"], kept["model"]) == (QUESTION, data["answer"], "fake-model.gguf")
    assert kept["time"] and kept["id"].startswith("a")
    assert [s["source"] for s in kept["sources"]] == [s["source"] for s in data["sources"]]
    assert kept["sources"][0]["cited"] and kept["sources"][0]["chunk_ids"] == data["sources"][0]["chunk_ids"]
    assert "text" not in kept["sources"][0], "the memories' text is not copied"
    assert not list(file.parent.glob(".*.tmp")), "written atomically"


def test_feedback_without_an_answer_is_not_found(run: Any, fake_models: FakeChatModel) -> None:
    result = run("feedback", "good")
    assert result.exit_code == 5
    assert "no answer to judge" in result.stderr and "Hint: ask something first" in result.stderr


def test_good_and_bad_are_recorded_and_listed(run: Any, ingested: Path, home: Path) -> None:
    answer = ask_json(run)["answer"]
    good = run("feedback", "good", "--note", "spot on", "--json")
    assert good.exit_code == 0, good.stderr
    record = json.loads(good.stdout)
    assert (record["judgement"], record["note"], record["question"], record["answer"]) == (
        "good",
        "spot on",
        QUESTION,
        answer,
    )
    assert record["id"].startswith("fb") and record["sources"] and record["model"] == "fake-model.gguf"
    assert "vector" not in record
    again = run("feedback", "bad", "--fix", FIX)  # the same answer judged again: replaces the first
    assert again.exit_code == 0 and f"recorded {record['id']}: fixed: {FIX}" in again.stderr
    listed = run("feedback", "list", "--json").json_lines()
    assert [(r["id"], r["judgement"], r["fix"]) for r in listed] == [(record["id"], "bad", FIX)]
    text = run("feedback", "list")
    assert record["id"] in text.stdout and f"fix: {FIX}" in text.stdout
    assert stat.S_IMODE(paths(home).feedback_file.stat().st_mode) == 0o600


def test_a_fix_goes_with_bad_only(run: Any, ingested: Path) -> None:
    ask_json(run)
    result = run("feedback", "good", "--fix", FIX)
    assert result.exit_code == 2 and "a fix goes with a bad answer" in result.stderr


def test_a_fix_is_used_at_once_and_cited(run: Any, ingested: Path, fake_models: FakeChatModel) -> None:
    ask_json(run)
    assert run("feedback", "bad", "--fix", FIX).exit_code == 0
    fake_models.answer = "Sofia Lind."
    data = ask_json(run, "who is my manager")  # the same question, written differently
    user = fake_models.messages[-1].content
    assert user.startswith("My notes:\n\n[1] from work.md:")
    assert user.endswith(f"\n\nThe right answer (you corrected me): {FIX}\n\nQuestion: who is my manager")
    last = data["sources"][-1]
    assert (last["kind"], last["source"], last["text"], last["cited"]) == ("correction", "your correction", FIX, True)
    assert data["answer"] == f"Sofia Lind. [{last['n']}]" and data["prompt"]["tokens"]["corrections"] > 0
    assert "correction_given" not in data["timings"]
    shown = run("ask", "--all-sources", QUESTION)
    assert f"[{last['n']}] your correction" in shown.stderr


def test_an_answer_that_ignores_the_fix_is_replaced_by_it(run: Any, ingested: Path, fake_models: FakeChatModel) -> None:
    ask_json(run)
    assert run("feedback", "bad", "--fix", FIX).exit_code == 0
    fake_models.answer = "The right answer (you corrected me): Karin Ek is your manager."
    data = ask_json(run, "Who is my manager")
    assert data["answer"] == f"{FIX} [{len(data['sources'])}]" and data["timings"]["correction_given"] == 1.0
    fake_models.answer = "The right answer (you corrected me): Sofia Lind is, since May."
    assert ask_json(run)["answer"].startswith("Sofia Lind is, since May. [")


def test_a_fix_is_found_for_a_close_question_and_not_for_another(home: Path) -> None:
    embedder = FakeEmbedder()
    store = FeedbackStore(paths(home))
    answer = LastAnswer.of({"question": "When is my project deadline?", "answer": "30 May", "sources": []}, "m")
    store.record(answer, "bad", fix="30 June", embed=lambda t: embedder.embed([t])[0], embedding_model=embedder.name)

    def guide(question: str) -> Any:
        return store.guidance(question, lambda t: embedder.embed([t])[0], embedder.name)

    assert [p.text for p in guide("when is my project deadline, again?").corrections] == ["30 June"]
    assert guide("when is the deadline of my project").rejected == {"30 may"}
    assert guide("What does Elin collect?").corrections == []
    assert guide("What does Elin collect?").rejected == frozenset()
    other = store.guidance("When is my project deadline?", None, "another-model")
    assert other.corrections, "the very same question needs no embedding"


def test_forget_leaves_no_trace(run: Any, ingested: Path, home: Path) -> None:
    ask_json(run)
    record = json.loads(run("feedback", "bad", "--fix", FIX, "--json").stdout)
    gone = run("feedback", "forget", record["id"][:5], "--json")
    assert gone.exit_code == 0, gone.stderr
    assert json.loads(gone.stdout) == {"forgotten": [record["id"]]}
    for file in paths(home).persona_dir.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".tmp"):
            assert FIX not in file.read_text(encoding="utf-8", errors="replace"), file
    assert not paths(home).last_answer_file.exists(), "the judged answer went with its judgement"
    assert run("feedback", "list", "--json").stdout == ""
    assert run("feedback", "forget", "fb0000000").exit_code == 5


def test_forget_all_and_its_usage(run: Any, ingested: Path, home: Path) -> None:
    for question in (QUESTION, "What does Elin collect?"):
        ask_json(run, question)
        assert run("feedback", "bad").exit_code == 0
    assert run("feedback", "forget").exit_code == 2
    assert run("feedback", "forget", "fb", "--all").exit_code == 2
    done = run("feedback", "forget", "--all")
    assert done.exit_code == 0 and "forgot 2 judgements" in done.stderr
    assert FeedbackStore(paths(home)).records() == [] and FeedbackStore(paths(home)).last() is None


class ChangingModel(FakeChatModel):
    """Answers with the next of `answers` at each call (the last one again when they run out)."""

    def __init__(self, answers: Sequence[str]) -> None:
        super().__init__(answer=answers[0])
        self.answers = list(answers)

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> Iterator[str]:
        self.answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return super().stream(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)


def session_with_bad(home: Path, model: FakeChatModel, bad: str) -> ChatSession:
    store = FeedbackStore(paths(home))
    store.record(LastAnswer.of({"question": QUESTION, "answer": bad + " (not in my memories)"}, "m"), "bad")
    settings = GenerationSettings(seed=7)
    return ChatSession(model, None, settings=settings, feedback=lambda q: store.guidance(q, None))


def test_an_answer_judged_bad_is_not_given_again(home: Path) -> None:
    model = ChangingModel(["Karin Ek.", "Sofia Lind."])
    reply = session_with_bad(home, model, "Karin Ek")
    answer = reply.ask(QUESTION)
    assert "".join(answer) == "Sofia Lind."
    assert answer.timings["rejected_answers"] == 1.0
    first, second = model.calls[-2:]
    assert (first["temperature"], second["temperature"], second["seed"]) == (0.0, 0.8, 8)


def test_when_only_the_bad_answer_comes_pllm_says_it_does_not_know(home: Path) -> None:
    model = ChangingModel(["Karin Ek!"])
    answer = session_with_bad(home, model, "Karin Ek").ask(QUESTION)
    assert "".join(answer) == NOT_AGAIN and answer.text == NOT_AGAIN
    assert len(model.calls) == 2


def test_an_answer_that_only_begins_like_a_bad_one_is_given(home: Path) -> None:
    model = ChangingModel(["Karin Ek and Sofia Lind share it."])
    answer = session_with_bad(home, model, "Karin Ek")
    assert "".join(answer.ask(QUESTION)) == "Karin Ek and Sofia Lind share it."
    assert len(model.calls) == 1


def test_chat_slash_commands_judge_the_last_turn(run: Any, ingested: Path, fake_models: FakeChatModel) -> None:
    script = f"/good\n{QUESTION}\n/bad\n/fix\n/fix {FIX}\n{QUESTION}\n/good\n/exit\n"
    result = run("chat", input=script)
    assert result.exit_code == 0, result.stderr
    assert "no answer to judge yet" in result.stderr
    assert "/fix needs the right answer" in result.stderr
    records = run("feedback", "list", "--json").json_lines()
    assert [(r["judgement"], r["fix"]) for r in records] == [("bad", FIX), ("good", "")]
    assert records[0]["question"] == records[1]["question"] == QUESTION
    assert f"The right answer (you corrected me): {FIX}\n\nQuestion: {QUESTION}" in fake_models.messages[-1].content


def test_feedback_through_the_server(run: Any, ingested: Path, home: Path, fake_models: FakeChatModel) -> None:
    """The server keeps the last answer (the same file, the same content) and uses the fixes at once."""
    local = ask_json(run)
    kept_locally = FeedbackStore(paths(home)).last()
    assert kept_locally is not None
    running = InProcessServer(home)
    try:
        paths(home).last_answer_file.unlink()
        served = ask_json(run)
        assert served["timings"].get("retrieve_s") is not None
        kept = FeedbackStore(paths(home)).last()
        assert kept is not None and kept.id != kept_locally.id, "written by the server"
        # the server counts a request after its reply has gone out: the client may ask before that
        deadline = time.monotonic() + 5
        while int(running.server.status()["requests_served"]) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert int(running.server.status()["requests_served"]) >= 1
        assert (kept.question, kept.answer, kept.sources, kept.model) == (
            kept_locally.question,
            kept_locally.answer,
            kept_locally.sources,
            kept_locally.model,
        )
        assert served["answer"] == local["answer"]
        assert run("feedback", "bad", "--fix", FIX).exit_code == 0
        fake_models.answer = FIX
        again = ask_json(run)
        assert again["sources"][-1]["kind"] == "correction" and again["answer"] == f"{FIX} [{len(again['sources'])}]"
        chat = run("chat", input=f"{QUESTION}\n/good\n/exit\n")
        assert chat.exit_code == 0, chat.stderr
        assert [r["judgement"] for r in run("feedback", "list", "--json").json_lines()] == ["bad", "good"]
    finally:
        running.stop()


def test_normalized_answers_and_preference_pairs() -> None:
    assert normalized(" Karin Ek! [1][2]") == normalized("karin ek (not in my memories)") == "karin ek"

    def record(n: int, question: str, judgement: str, answer: str, fix: str = "") -> Feedback:
        return Feedback(
            id=f"fb{n}",
            time=f"2026-01-0{n}T10:00:00+00:00",
            judgement=judgement,
            question=question,
            answer=answer,
            fix=fix,
            note="",
            sources=[],
            model="m",
            answer_id=f"a{n}",
            answered_at="",
        )

    pairs = preference_pairs(
        [
            record(1, QUESTION, "bad", "Karin Ek. (not in my memories)", FIX),
            record(2, "who is my manager", "bad", "Elin."),
            record(3, "What does Elin collect?", "good", "Hagi tea bowls [1]"),
        ]
    )
    assert pairs == [
        {"prompt": "who is my manager", "chosen": FIX, "rejected": ["Elin.", "Karin Ek."], "feedback": ["fb1", "fb2"]},
        {"prompt": "What does Elin collect?", "chosen": "Hagi tea bowls", "rejected": [], "feedback": ["fb3"]},
    ]
