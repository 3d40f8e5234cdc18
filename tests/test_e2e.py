"""End to end with the REAL bundled models (all-MiniLM-L6-v2 and SmolLM2-135M GGUF), no fakes.

The example person's files are ingested once per module through the CLI; tests that write copy that home.
The model's exact words are not stable, so these tests check structure and that the notes reached the prompt.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ingest_examples

from pllm_cli.chat import ChatSession, GenerationSettings
from pllm_cli.ingest.pipeline import discover_files
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths
from pllm_cli.runtime import ChatMessage

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with everything in examples/ ingested through `pllm ingest --json`, and its report."""
    home = tmp_path_factory.mktemp("e2e") / "home"
    result = ingest_examples(home)
    return {"home": home, "report": json.loads(result.stdout)}


@pytest.fixture
def shared_home(shared: dict[str, Any]) -> Path:
    return shared["home"]  # type: ignore[no-any-return]


@pytest.fixture
def own_home(shared_home: Path, home: Path) -> Path:
    """A private copy of the ingested home at PLLM_HOME, for a test that writes."""
    shutil.copytree(shared_home, home)
    return home


def search(run: Any, home: Path, query: str, k: int = 8) -> list[dict[str, Any]]:
    result = run("--home", home, "memory", "search", query, "--json", "-k", k)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["query"] == query
    return data["hits"]  # type: ignore[no-any-return]


def test_ingest_of_the_examples(shared: dict[str, Any], run: Any) -> None:
    report = shared["report"]
    expected = {str(path) for path, _ in discover_files([EXAMPLES])}
    assert {f["path"] for f in report["files"]} == expected
    assert report["summary"]["added"] == len(expected) and report["summary"]["failed"] == 0
    stats = json.loads(run("--home", shared["home"], "memory", "stats", "--json").stdout)
    assert stats["chunks"] == report["chunks_written"] > 0
    assert stats["embedding_model"] == "all-MiniLM-L6-v2"
    assert stats["messages"] == 108
    again = run("--home", shared["home"], "ingest", EXAMPLES, "--json")
    assert again.exit_code == 0
    summary = json.loads(again.stdout)["summary"]
    assert summary["unchanged"] == len(expected) and summary["added"] == summary["updated"] == 0


def test_search_finds_what_elin_collects(shared_home: Path, run: Any) -> None:
    hits = search(run, shared_home, "what does Elin collect")
    top = hits[:3]
    assert any(
        h["source"].endswith("elin-gift-ideas.md") or (h["kind"] == "chat" and "hagi" in h["text"].lower()) for h in top
    ), [(h["source"], h["text"][:60]) for h in top]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_chat_hits_carry_message_ids(shared_home: Path, run: Any) -> None:
    hits = search(run, shared_home, "white hagi chawan at the ceramics shop", k=10)
    chats = [h for h in hits if h["kind"] == "chat"]
    assert chats, "the family chat is found"
    for hit in chats:
        assert hit["source"].endswith("family.jsonl")
        assert hit["message_ids"] and all(re.fullmatch(r"m0\d{3}", i) for i in hit["message_ids"])
        assert re.match(r"\[\d{1,2} \w+ 2026 \d\d:\d\d\] ", hit["text"])
        assert hit["conversation"] in ("family-group", "maya-jonas")
    assert any("hagi" in h["text"].lower() for h in chats)


def test_lexical_and_dense_modes(shared_home: Path, run: Any) -> None:
    for mode in ("lexical", "dense"):
        result = run("--home", shared_home, "memory", "search", "Karin Ek manager", "--mode", mode, "--json")
        hits = json.loads(result.stdout)["hits"]
        assert any("Karin Ek" in h["text"] for h in hits[:3]), mode


def test_ask_json_who_is_my_manager(shared_home: Path, run: Any) -> None:
    result = run("--home", shared_home, "ask", "--json", "--seed", "1", "--max-tokens", "40", "Who is my manager?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["question"] == "Who is my manager?"
    assert data["answer"].strip()
    assert any("Karin Ek" in s["text"] for s in data["sources"])
    prompt = data["prompt"]
    tokens = prompt["tokens"]
    assert {"system", "memories", "question", "prompt_total"} <= set(tokens)
    assert tokens["memories"] > 0 and tokens["prompt_total"] > tokens["question"]
    assert tokens["prompt_total"] + 40 <= 4096
    assert prompt["memories_used"] == len(data["sources"]) > 0
    timings = data["timings"]
    assert timings["first_token_s"] > 0 and timings["first_token_s"] >= timings["prepare_s"]
    assert 0 < data["completion_pieces"] <= 40


class RecordingModel:
    """The real model, with every prompt it is given recorded."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.prompts: list[list[ChatMessage]] = []

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def context_size(self) -> int:
        return int(self.model.context_size)

    def preload(self) -> None:
        self.model.preload()

    def count_tokens(self, text: str) -> int:
        return int(self.model.count_tokens(text))

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return int(self.model.count_prompt_tokens(messages))

    def stream(self, messages: Sequence[ChatMessage], **settings: Any) -> Iterator[str]:
        self.prompts.append(list(messages))
        yield from self.model.stream(messages, **settings)

    def stream_steered(
        self, messages: Sequence[ChatMessage], plain_messages: Sequence[ChatMessage], **settings: Any
    ) -> Iterator[str]:
        self.prompts.append(list(messages))
        yield from self.model.stream_steered(messages, plain_messages, **settings)


def test_session_gives_the_retrieved_notes_to_the_real_model(
    shared_home: Path, real_embedder: Any, real_model: Any
) -> None:
    store = ChromaStore(Paths(shared_home).memory_dir, embedding_model=real_embedder.name)
    try:
        model = RecordingModel(real_model)
        session = ChatSession(
            model, Retriever(store, real_embedder), name="Maya", settings=GenerationSettings(max_tokens=24, seed=1)
        )
        reply = session.ask("Who is my manager?")
        answer = "".join(reply)
    finally:
        store.close()
    [prompt] = model.prompts
    user = prompt[-1].content
    assert prompt[0].content.startswith("You are Maya's personal assistant.")
    assert user.endswith("Who is my manager?")
    used = reply.plan.used_memories
    assert used, "memories were used"
    for memory in used:
        assert memory.text.strip() in user
    assert sum(real_model.count_tokens(m.text) for m in used) <= GenerationSettings().memory_tokens
    assert "Karin Ek" in user, "the note naming the manager reached the model"
    assert reply.plan.tokens["prompt_total"] == real_model.count_prompt_tokens(prompt)
    assert reply.plan.tokens["prompt_total"] <= real_model.context_size - 24
    assert answer == reply.text and reply.finished
    assert [m.role for m in session.history] == ["user", "assistant"]


def test_profile_refresh_and_show(own_home: Path, run: Any) -> None:
    assert run("config", "set", "me", "Maya").exit_code == 0
    refreshed = run("profile", "refresh", "--json")
    assert refreshed.exit_code == 0, refreshed.stderr
    report = json.loads(refreshed.stdout)
    assert report["version"] == 1 and report["saved"] is True and report["facts"] > 0
    shown = run("profile", "show", "--json")
    assert shown.exit_code == 0
    profile = json.loads(shown.stdout)
    assert set(profile) == {"name", "version", "updated_at", "facts", "writing_style"}
    assert profile["name"] == "Maya" and profile["version"] == 1
    assert len(profile["facts"]) == report["facts"]
    assert all(fact["evidence"] for fact in profile["facts"])
    assert profile["writing_style"]["messages"] > 0
    path = Path(run("profile", "path").stdout.strip())
    assert path == Paths(own_home).profile_file
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    text = run("profile", "show")
    assert text.stdout.startswith("# Profile of Maya (version 1, ")
    assert "## Writing style" in text.stdout
    assert re.search(r"Measured on \d+ messages you wrote", text.stdout)


def test_chat_repl_with_the_real_model(shared_home: Path, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_MAX_TOKENS", "24")
    lines = "/sources\nWho is my manager?\n/sources\n/exit\nnot asked\n"
    result = run("--home", shared_home, "chat", "--seed", "1", input=lines)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip(), "the answer is on stdout"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
    _, found, after_question = result.stderr.partition("no sources yet")
    assert found, "the first /sources has nothing to show"
    assert re.search(r"\[1\] \S+\.(md|eml|jsonl|txt|html|pdf|mbox)", after_question), after_question


def test_forget_removes_a_source_from_search(own_home: Path, run: Any) -> None:
    source = str(EXAMPLES / "notes" / "elin-gift-ideas.md")

    def sources_found(mode: str) -> set[str]:
        result = run("memory", "search", "Hagi-ware tea bowls", "--mode", mode, "--json", "-k", "20")
        return {h["source"] for h in json.loads(result.stdout)["hits"]}

    for mode in ("dense", "lexical", "hybrid"):
        assert source in sources_found(mode), f"the copied memory finds the note ({mode})"
    before = json.loads(run("memory", "stats", "--json").stdout)
    result = run("memory", "forget", source, "--json")
    assert result.exit_code == 0, result.stderr
    [forgotten] = json.loads(result.stdout)["forgotten"]
    assert forgotten["source"] == source and forgotten["chunks"] > 0
    after = json.loads(run("memory", "stats", "--json").stdout)
    assert after["chunks"] == before["chunks"] - forgotten["chunks"]
    for mode in ("dense", "lexical", "hybrid"):
        assert source not in sources_found(mode), mode


def test_ask_gives_a_short_answer_checked_against_the_memories(shared_home: Path, run: Any) -> None:
    result = run("--home", shared_home, "ask", "--json", "--seed", "1", "Who is my manager?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"].strip() and "\n" not in data["answer"], "one line"
    grounding = data["grounding"]
    assert grounding is not None and 0.0 <= grounding["support"] <= 1.0
    cited = [s["n"] for s in data["sources"] if s["cited"]]
    assert cited == sorted(data["cited"]) and (grounding["trusted"] or "(not in my memories)" in data["answer"])
    for n in data["cited"]:
        assert f"[{n}]" in data["answer"]
