"""The prompt's stable beginning kept evaluated on disk (pllm_cli/prefix_cache.py, LlamaCppModel)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.prefix_cache import KEEP, PrefixCache
from pllm_cli.runtime import ChatMessage, LlamaCppModel

KEY = "model.gguf|1|2|n_ctx=2048"


def test_a_state_comes_back_only_for_the_same_model_and_tokens(tmp_path: Path) -> None:
    cache = PrefixCache(tmp_path / "cache")
    cache.save(KEY, [1, 2, 3], b"state bytes")
    assert cache.load(KEY, [1, 2, 3]) == b"state bytes"
    assert cache.load(KEY, [1, 2, 4]) is None
    assert cache.load(KEY + "|other build", [1, 2, 3]) is None
    (path,) = cache.files()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700


@pytest.mark.parametrize("damage", ["truncate", "garbage", "header"])
def test_a_damaged_file_is_never_used_and_is_removed(tmp_path: Path, damage: str) -> None:
    cache = PrefixCache(tmp_path)
    cache.save(KEY, [1, 2, 3], b"x" * 100)
    path = cache.file_for(KEY, [1, 2, 3])
    data = path.read_bytes()
    damaged = {
        "truncate": data[:-10],
        "garbage": b"not a cache file at all",
        "header": data.replace(b'"tokens": [1, 2, 3]', b'"tokens": [1, 2, 9]'),
    }[damage]
    path.write_bytes(damaged)
    assert cache.load(KEY, [1, 2, 3]) is None
    assert not path.exists()


def test_only_the_newest_files_are_kept_and_clear_removes_them_all(tmp_path: Path) -> None:
    cache = PrefixCache(tmp_path)
    for number in range(KEEP + 3):
        cache.save(KEY, [number], b"s")
        os.utime(cache.file_for(KEY, [number]), (1000 + number, 1000 + number))
    cache.prune()
    assert sorted(cache.files()) == sorted(cache.file_for(KEY, [n]) for n in range(3, KEEP + 3))
    cache.clear()
    assert cache.files() == []


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    PrefixCache(blocker / "cache").save(KEY, [1], b"s")  # nothing stored, nothing raised
    assert PrefixCache(blocker / "cache").load(KEY, [1]) is None


def test_a_profile_change_removes_the_cached_beginnings(tmp_path: Path) -> None:
    """They hold the old profile in the model's encoding: a forgotten fact must not stay on disk there."""
    from pllm_cli.paths import Paths
    from pllm_cli.profile.state import ProfileFiles, ProfileState

    paths = Paths(tmp_path)
    cache = PrefixCache(paths.prefix_cache_dir)
    cache.save(KEY, [1, 2], b"old profile")
    ProfileFiles(paths).save(ProfileState(name="Maya"), "test", {})
    assert cache.files() == []


# --- with the real bundled model -----------------------------------------------------------------------

PROFILE = "\n".join(
    [
        "- Maya works as a landscape architect at Studio Ek in Gothenburg.",
        "- Maya's manager is Karin Ek; the project deadline is 30 June 2026.",
        "- Maya plays the cello in an amateur orchestra on Tuesdays.",
        "- Maya is vegetarian and bakes sourdough bread every weekend.",
    ]
)


def messages(question: str) -> list[ChatMessage]:
    system = f"You are Maya's personal assistant. Answer using Maya's notes.\n\nAbout Maya:\n{PROFILE}"
    return [
        ChatMessage("system", f"{system}\n- Maya asked about: {question}", stable_chars=len(system)),
        ChatMessage("user", f"My notes:\n\n[1] from notes.md:\nThe plan is due in June.\n\nQuestion: {question}"),
    ]


def answer(model: LlamaCppModel, question: str) -> str:
    return "".join(model.stream(messages(question), max_tokens=24, temperature=0.0, seed=1))


@pytest.fixture(scope="module")
def plain_answers(real_model: Any) -> dict[str, str]:
    """What the model answers without any prefix cache (the session's shared model)."""
    assert real_model.prefix_cache is None
    return {q: answer(real_model, q) for q in ("Who is my manager?", "When do I play the cello?")}


@pytest.mark.e2e
def test_the_stable_tokens_begin_the_prompt(real_model: Any) -> None:
    tokens = real_model.stable_prefix(messages("Who is my manager?"))
    whole = real_model._prompt_tokens(messages("Who is my manager?"))
    assert 60 < len(tokens) < len(whole) and whole[: len(tokens)] == tokens
    assert tokens == real_model.stable_prefix(messages("When do I play the cello?"))
    assert real_model.stable_prefix([ChatMessage("system", "no stable part"), *messages("x")[1:]]) == []


@pytest.mark.e2e
def test_answers_are_the_same_evaluated_restored_from_disk_or_kept_in_memory(
    tmp_path: Path, plain_answers: dict[str, str]
) -> None:
    """Two fresh processes' worth of models sharing one cache: the first evaluates the stable beginning and
    stores it, the second restores it from disk, and then keeps it for its next question; every answer is
    the one the model gives without a cache, word for word."""
    cache = PrefixCache(tmp_path / "prefix-cache")
    first = LlamaCppModel(context_size=2048, threads=2, prefix_cache=cache)
    manager, cello = plain_answers
    assert answer(first, manager) == plain_answers[manager]
    assert first.prefix_reuse is not None and first.prefix_reuse[0] == "evaluated"
    assert len(cache.files()) == 1

    second = LlamaCppModel(context_size=2048, threads=2, prefix_cache=cache)
    assert answer(second, cello) == plain_answers[cello]
    assert second.prefix_reuse == ("disk", first.prefix_reuse[1])
    assert answer(second, manager) == plain_answers[manager]
    assert second.prefix_reuse == ("memory", first.prefix_reuse[1])


@pytest.mark.e2e
def test_a_state_llama_cpp_refuses_is_evaluated_again(tmp_path: Path, plain_answers: dict[str, str]) -> None:
    cache = PrefixCache(tmp_path)
    model = LlamaCppModel(context_size=2048, threads=2, prefix_cache=cache)
    question = "Who is my manager?"
    tokens = model.stable_prefix(messages(question))
    cache.save(model.cache_key, tokens, b"\x00" * 64)  # the right name and header, a state of nothing
    assert answer(model, question) == plain_answers[question]
    assert model.prefix_reuse is not None and model.prefix_reuse[0] == "evaluated"


@pytest.mark.e2e
def test_a_model_preloaded_in_the_background_answers_as_one_loaded_when_used(
    tmp_path: Path, plain_answers: dict[str, str]
) -> None:
    model = LlamaCppModel(context_size=2048, threads=2)
    model.preload()
    model.preload()  # a second call starts nothing more
    question = "Who is my manager?"
    assert answer(model, question) == plain_answers[question]


def test_a_model_that_cannot_load_in_the_background_fails_where_it_is_used(tmp_path: Path) -> None:
    from pllm_cli.errors import ModelError

    model = LlamaCppModel(tmp_path / "missing.gguf")
    model.preload()
    assert model._preloading is not None
    model._preloading.join(10)
    with pytest.raises(ModelError, match="model file not found"):
        model.llama  # noqa: B018
