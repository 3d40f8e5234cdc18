"""The profile: built from memory with a (fake) model, the writing style measured from chats, stored as
markdown the user may edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES

from pllm_cli.errors import NotFoundError
from pllm_cli.ingest.pipeline import ingest_paths
from pllm_cli.memory.records import Chunk
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore
from pllm_cli.profile.build import ASPECTS, build_profile
from pllm_cli.profile.document import Profile, load_profile, load_profile_text, save_profile
from pllm_cli.profile.style import messages_by, writing_style

SECTIONS = ["Identity", "Preferences", "Interests", "Goals and plans", "Writing style"]


def chat_chunk(text: str) -> Chunk:
    return Chunk(id=text[:8], source="/c.jsonl", position=0, text=text, kind="chat")


def test_messages_by_recovers_a_speakers_messages_with_continuations() -> None:
    chunks = [
        chat_chunk(
            "[2026-01-27 21:15] Jonas: what does Elin want?\n"
            "[2026-01-27 21:17] Maya: a tea bowl. hagi ware\nI have a list in my notes\n"
            "[2026-01-27 21:18] Jonas: ok"
        ),
        chat_chunk("maya: lower-case name, no time"),
        Chunk(id="t", source="/n.md", position=0, text="Maya: this is a note, not a chat", kind="text"),
    ]
    assert messages_by(chunks, "Maya") == [
        "a tea bowl. hagi ware\nI have a list in my notes",
        "lower-case name, no time",
    ]
    assert messages_by(chunks, "Elin") == []


def test_writing_style_statistics() -> None:
    style = writing_style(["haha yes!", "Running tomorrow? 🏃", "running again, running always", "ok"])
    assert style.messages == 4
    assert style.median_words == 2.5
    assert style.emoji_share == 0.25 and style.exclamation_share == 0.25 and style.question_share == 0.25
    assert style.lowercase_start_share == 0.75
    assert style.favourite_words == ["running"]
    described = style.describe()
    assert described.startswith("Measured on 4 chat messages you wrote.")
    assert "Messages are short" in described
    assert writing_style([]).describe() == ""


def test_profile_markdown_round_trip(tmp_path: Path) -> None:
    profile = Profile("Profile of Maya", note="_built_", sections={"Identity": "Landscape architect.", "Goals": "N4"})
    path = tmp_path / "persona" / "profile.md"
    save_profile(path, profile)
    again = load_profile(path)
    assert again == profile
    assert load_profile_text(path) == "Identity: Landscape architect.\nGoals: N4"
    assert load_profile_text(tmp_path / "none.md") == ""
    with pytest.raises(NotFoundError, match="no profile yet"):
        load_profile(tmp_path / "none.md")


def test_an_edited_profile_is_used_as_written(tmp_path: Path) -> None:
    path = tmp_path / "profile.md"
    path.write_text("# Me\n\n## Identity\n\nI am Maya.\nI run.\n\n## Likes\n\ntea\n", encoding="utf-8")
    assert load_profile_text(path) == "Identity: I am Maya. I run.\nLikes: tea"


@pytest.fixture
def example_memory(tmp_path: Path, store: ChromaStore, fake_embedder: Any) -> Retriever:
    paths = [EXAMPLES / "notes", EXAMPLES / "chats"]
    assert not ingest_paths(paths, store, fake_embedder).failed
    return Retriever(store, fake_embedder)


def test_build_profile_with_fake_model(example_memory: Retriever, fake_model: Any) -> None:
    fake_model.answer = "Maya is a landscape architect. She plays trombone and then"
    progress: list[str] = []
    chats = (c for c in example_memory.store.index.iter_chunks() if c.kind == "chat")  # type: ignore[attr-defined]
    profile = build_profile(
        example_memory, fake_model, name="Maya", chat_chunks=chats, on_progress=lambda p: progress.append(p.aspect)
    )
    assert list(profile.sections) == SECTIONS
    assert progress == [a.name for a in ASPECTS]
    assert 1 <= len(fake_model.calls) <= len(ASPECTS)
    for call in fake_model.calls:
        assert call["temperature"] == 0.0, "greedy, so a rebuild is repeatable"
        assert "Maya" in call["messages"][-1].content
    text = profile.to_markdown()
    assert "and then" not in text, "a cut-off sentence is never shown"
    assert profile.sections["Writing style"].startswith("Measured on ")
    assert profile.title == "Profile of Maya"
    assert Profile.parse(text).sections == {k: v.strip() for k, v in profile.sections.items()}


def test_build_profile_without_a_name(example_memory: Retriever, fake_model: Any) -> None:
    profile = build_profile(example_memory, fake_model, name="", chat_chunks=[])
    assert "pllm config set me NAME" in profile.sections["Writing style"]
    assert profile.title == "Profile of the user"


def test_build_profile_on_empty_memory(tmp_path: Path, fake_embedder: Any, fake_model: Any) -> None:
    empty = ChromaStore(tmp_path / "empty", fake_embedder.name)
    with pytest.raises(NotFoundError):
        build_profile(Retriever(empty, fake_embedder), fake_model, name="Maya", chat_chunks=[])
    assert fake_model.calls == []
    empty.close()
