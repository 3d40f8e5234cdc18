"""End to end with the model behind a REAL `python -m llama_cpp.server` (model_url) running the bundled GGUF, and
the real embedding model: ask, chat and a profile refresh, as test_e2e.py and test_profile_e2e.py run them with
the model in this process."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ModelServer, ingest_examples

from pllm_cli.profile.extract import FACT_TOKENS, Statement, fact_grammar, restate_prompt
from pllm_cli.profile.facts import Evidence
from pllm_cli.remote_model import OpenAIServerModel
from pllm_cli.runtime import ChatMessage

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with everything in examples/ ingested (no model is needed for that)."""
    home = tmp_path_factory.mktemp("model-server") / "home"
    ingest_examples(home)
    return home


@pytest.fixture
def on_server(llama_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    """PLLM_MODEL_URL set to the session's server (its context is 2048 tokens: so is pllm's)."""
    monkeypatch.setenv("PLLM_MODEL_URL", llama_server.url)
    monkeypatch.setenv("PLLM_CONTEXT_SIZE", "2048")
    return llama_server


def test_ask_json_through_the_server(shared_home: Path, on_server: ModelServer, run: Any) -> None:
    result = run("--home", shared_home, "ask", "--json", "--seed", "1", "--max-tokens", "24", "Who is my manager?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"].strip()
    assert any("Karin Ek" in s["text"] for s in data["sources"]), "the notes reached the prompt"
    prompt = data["prompt"]
    assert prompt["token_count"] == "server"  # llama-cpp-python has /extras/tokenize
    tokens = prompt["tokens"]
    assert tokens["memories"] > 0 and tokens["prompt_total"] + 24 <= 2048
    assert 0 < data["completion_pieces"] <= 24
    assert "Traceback" not in result.stderr


def test_the_prompt_count_is_close_to_the_servers_own(on_server: ModelServer) -> None:
    """Template overhead is estimated (TEMPLATE_OVERHEAD a message); the server's usage says how close it is."""
    import httpx

    model = OpenAIServerModel(on_server.url, context_size=2048)
    messages = [ChatMessage("system", "You answer from the user's notes."), ChatMessage("user", "Who is Karin Ek?")]
    counted = model.count_prompt_tokens(messages)
    usage = httpx.post(
        f"{on_server.url}/v1/chat/completions",
        json={"messages": [m.to_dict() for m in messages], "max_tokens": 1},
        timeout=60,
    ).json()["usage"]
    assert counted >= usage["prompt_tokens"], "the estimate never undercounts the template"
    assert counted - usage["prompt_tokens"] <= 16


def test_chat_repl_through_the_server(
    shared_home: Path, on_server: ModelServer, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLLM_MAX_TOKENS", "16")
    result = run("--home", shared_home, "chat", "--seed", "1", input="Who is my manager?\n/sources\n/exit\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip(), "the answer is on stdout"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
    assert re.search(r"\[1\] \S+\.(md|eml|jsonl|txt|html|pdf|mbox)", result.stderr), result.stderr


def test_extraction_under_the_servers_grammar_always_parses(on_server: ModelServer) -> None:
    model = OpenAIServerModel(on_server.url, context_size=2048)
    for text in [
        'I said "no" to the \\"escaped\\" things.',
        "私は毎日日本語を勉強しています。",
        "I bake 🥐 on Sundays.",
    ]:
        statement = Statement(text, "self", Evidence("chunk", "source.md", text, speaker="Maya"))
        answer = model.complete(restate_prompt(statement, "Maya"), grammar=fact_grammar("Maya"), max_tokens=FACT_TOKENS)
        data = json.loads(answer)  # valid JSON: the server applied the grammar
        assert list(data) == ["fact"] and data["fact"].startswith("Maya "), answer


def test_profile_refresh_through_the_server(shared_home: Path, home: Path, on_server: ModelServer, run: Any) -> None:
    shutil.copytree(shared_home, home)
    assert run("config", "set", "me", "Maya").exit_code == 0
    refreshed = run("profile", "refresh", "--json")
    assert refreshed.exit_code == 0, refreshed.stderr
    report = json.loads(refreshed.stdout)
    assert report["version"] == 1 and report["saved"] is True and report["facts"] > 0
    profile = json.loads(run("profile", "show", "--json").stdout)
    assert len(profile["facts"]) == report["facts"] and all(fact["evidence"] for fact in profile["facts"])


def test_status_shows_the_server_answering(on_server: ModelServer, run: Any) -> None:
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    chat_model = json.loads(result.stdout)["chat_model"]
    assert chat_model["url"] == on_server.url and chat_model["reachable"] is True
    assert chat_model["model"].endswith(".gguf")
