"""ChatSession: retrieval -> prompt -> streamed answer, with the fake model, fake embedder and a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pllm_cli.chat import ChatSession, GenerationSettings, short_answer
from pllm_cli.errors import InputError, TooLongError
from pllm_cli.ingest.pipeline import ingest_paths
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore


@pytest.fixture
def retriever(tmp_path: Path, store: ChromaStore, fake_embedder: Any) -> Retriever:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "work.md").write_text("# Work\n\nMy manager is Karin Ek. Deadline 30 June.\n", encoding="utf-8")
    (notes / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    assert not ingest_paths([notes], store, fake_embedder).failed
    return Retriever(store, fake_embedder)


def test_ask_puts_the_retrieved_note_in_the_prompt(retriever: Retriever, fake_model: Any) -> None:
    session = ChatSession(fake_model, retriever, profile="Identity: Maya", name="Maya")
    reply = session.ask("  Who is my manager?  ")
    assert fake_model.calls == [], "nothing is generated before the reply is iterated"
    assert "".join(reply) == fake_model.answer + " [1]"  # pllm's check cites the note that supports it
    assert reply.text == fake_model.answer + " [1]" and reply.finished and reply.cited == [1]
    prompt = fake_model.messages
    assert prompt[0].role == "system" and "About Maya:\nIdentity: Maya" in prompt[0].content
    assert "My manager is Karin Ek." in prompt[-1].content
    assert prompt[-1].content.endswith("Question: Who is my manager?")
    assert reply.plan.used_memories[0].source.endswith("work.md")
    assert reply.memories and reply.question == "Who is my manager?"


def test_generation_settings_reach_the_model(retriever: Retriever, fake_model: Any) -> None:
    settings = GenerationSettings(max_tokens=3, temperature=0.7, seed=42, k=1)
    reply = ChatSession(fake_model, retriever, settings=settings).ask("Hagi?")
    assert "".join(reply) == "Your manager is (not in my memories)"  # Elin's note does not say so
    call = fake_model.calls[-1]
    assert (call["max_tokens"], call["temperature"], call["seed"]) == (3, 0.7, 42)
    assert len(reply.memories) == 1


def test_reply_to_dict_has_sources_tokens_and_timings(retriever: Retriever, fake_model: Any) -> None:
    reply = ChatSession(fake_model, retriever).ask("Who is my manager?")
    list(reply)
    data = reply.to_dict()
    assert data["answer"] == fake_model.answer + " [1]" and data["cited"] == [1]
    assert data["grounding"]["trusted"] and data["sources"][0]["cited"] and data["sources"][0]["n"] == 1
    assert data["sources"][0]["text"].startswith("Work\n\nMy manager is Karin Ek.")
    assert data["prompt"]["memories_used"] == len(data["sources"]) > 0
    tokens = data["prompt"]["tokens"]
    assert tokens["prompt_total"] == fake_model.count_prompt_tokens(fake_model.messages)
    assert {"retrieve_s", "prepare_s", "first_token_s", "generate_s"} <= set(data["timings"])
    assert data["timings"]["first_token_s"] >= data["timings"]["prepare_s"]
    assert data["completion_pieces"] == len(fake_model.answer.split())


def test_history_is_carried_into_the_next_turn(retriever: Retriever, fake_model: Any) -> None:
    session = ChatSession(fake_model, None)
    list(session.ask("first question"))
    list(session.ask("second question"))
    roles_and_text = [(m.role, m.content) for m in fake_model.messages]
    assert roles_and_text[1:] == [
        ("user", "first question"),
        ("assistant", fake_model.answer),
        ("user", "second question"),
    ]
    assert len(session.history) == 4


def test_unfinished_reply_enters_history_only_through_remember_partial(fake_model: Any) -> None:
    session = ChatSession(fake_model, None, settings=GenerationSettings(short=False))  # streamed as it comes
    reply = session.ask("tell me")
    pieces = iter(reply)
    next(pieces)  # Ctrl-C after the first piece
    assert session.history == []
    session.remember_partial()
    assert [m.content for m in session.history] == ["tell me", "Your"]
    session.remember_partial()
    assert len(session.history) == 2, "remembered once"


def test_without_retriever_there_are_no_memories(fake_model: Any) -> None:
    reply = ChatSession(fake_model, None).ask("hi")
    list(reply)
    assert reply.memories == [] and reply.plan.used_memories == []
    assert "retrieve_s" not in reply.timings
    assert fake_model.messages[-1].content == "hi"


def test_empty_question_is_input_error(fake_model: Any) -> None:
    with pytest.raises(InputError) as raised:
        ChatSession(fake_model, None).ask(" \n ")
    assert raised.value.hint


def test_question_longer_than_the_context(fake_model: Any) -> None:
    fake_model.context_size = 512
    with pytest.raises(TooLongError):
        ChatSession(fake_model, None).ask("word " * 400)
    assert fake_model.calls == []


def test_a_short_answer_ends_with_its_first_line(retriever: Retriever, fake_model: Any) -> None:
    fake_model.answer = "\nKarin Ek.\nShe also manages Elin and\nmany others."
    reply = ChatSession(fake_model, retriever).ask("Who is my manager?")
    assert "".join(reply) == "Karin Ek. [1]"
    long = ChatSession(fake_model, retriever, settings=GenerationSettings(short=False, check=False))
    reply = long.ask("Who is my manager?")
    assert "".join(reply) == fake_model.answer  # as the model gave it
    assert reply.cited == [] and reply.grounding is None


def test_without_memories_nothing_is_checked(fake_model: Any) -> None:
    reply = ChatSession(fake_model, None).ask("Who is my manager?")
    assert "".join(reply) == fake_model.answer and reply.grounding is None and reply.to_dict()["cited"] == []


def pieces(text: str) -> list[str]:
    return [word if n == 0 else " " + word for n, word in enumerate(text.split(" "))]


def test_short_answer_leaves_out_what_the_model_copied_from_the_notes() -> None:
    copied = "\n1. [8 May 2023 13:56] Melanie: I signed up yesterday!\nCaroline: nice"
    assert "".join(short_answer(pieces(copied))) == "I signed up yesterday!"
    announced = "Caroline is likely to pursue:\n1. Counseling and mental health\n2. Art"
    assert "".join(short_answer(pieces(announced))) == "Caroline is likely to pursue: Counseling and mental health"
    newline_alone = ["Karin Ek is your manager and she sets the deadline", " too", "\n", "Second line"]
    assert "".join(short_answer(newline_alone)) == "Karin Ek is your manager and she sets the deadline too"
    assert "".join(short_answer(pieces("Karin Ek."))) == "Karin Ek."
    header = "[2] from conv-41.jsonl: [6 May 2023 10:00] Maria: since we talked it's been tough"
    assert "".join(short_answer(pieces(header))) == "since we talked it's been tough"
    assert "".join(short_answer(pieces("From work.md: Karin Ek is your manager"))) == "Karin Ek is your manager"


def test_a_question_about_the_wrong_person_says_who_it_was(
    tmp_path: Path, store: ChromaStore, fake_embedder: Any, fake_model: Any
) -> None:
    chats = tmp_path / "chats"
    chats.mkdir()
    lines = [
        '{"conversation": "mel", "id": "1", "speaker": "Melanie", "time": "2023-05-20T10:00:00",'
        ' "text": "I ran a charity race last Saturday, it made me realize self-care matters"}',
        '{"conversation": "mel", "id": "2", "speaker": "Caroline", "time": "2023-05-20T10:01:00",'
        ' "text": "Proud of you!"}',
    ]
    (chats / "mel.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert not ingest_paths([chats], store, fake_embedder).failed
    fake_model.answer = "Self-care matters."
    reply = ChatSession(fake_model, Retriever(store, fake_embedder)).ask("What did Caroline realize after her race?")
    assert "".join(reply) == "Self-care matters. (not in my memories: that was Melanie, not Caroline [1])"
    assert reply.cited == [] and reply.to_dict()["grounding"]["misattribution"]["speaker"] == "Melanie"


def test_the_model_begins_loading_before_the_memories_are_searched(
    retriever: Retriever, fake_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold ask loads the model while it retrieves (LlamaCppModel.preload loads in a thread)."""
    order: list[str] = []
    monkeypatch.setattr(fake_model, "preload", lambda: order.append("preload"), raising=False)
    search = retriever.recall

    def recall(*args: Any, **kwargs: Any) -> Any:
        order.append("recall")
        return search(*args, **kwargs)

    monkeypatch.setattr(retriever, "recall", recall)
    ChatSession(fake_model, retriever).ask("Who is my manager?")
    assert order == ["preload", "recall"]
