"""`pllm serve --http` as a real process with the REAL bundled models, asked by the real `openai` Python client:
a completion whole and streamed gives the answer `pllm ask --json --seed 1` gives on the same home, with its
sources in pllm_sources; the token is required; the models are listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import QUESTION, home_with_two_notes, pllm, start_server_process

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_with_two_notes(tmp_path_factory.mktemp("serve-http-e2e"))


@pytest.fixture(scope="module")
def expected(home: Path) -> dict[str, Any]:
    """What `pllm ask --json --seed 1` answers, in its own process, before any server runs."""
    alone = pllm(home, "--no-server", "ask", "--json", "--seed", "1", QUESTION)
    assert alone.returncode == 0, alone.stderr
    reply: dict[str, Any] = json.loads(alone.stdout)
    assert reply["answer"].strip() and reply["sources"]
    return reply


@pytest.fixture(scope="module")
def client(home: Path, expected: dict[str, Any]) -> Iterator[Any]:
    """An openai.OpenAI client of a `pllm serve --http 127.0.0.1:0` started on the home."""
    openai = pytest.importorskip("openai")
    log = home.parent / "serve-http.log"
    server = start_server_process(home, log, "--http", "127.0.0.1:0")
    try:
        status = pllm(home, "serve", "--status", "--json")
        url = json.loads(status.stdout)["http"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        token = pllm(home, "serve", "--token").stdout.strip()
        yield openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=600)
    finally:
        pllm(home, "serve", "--stop")
        if server.wait(120) != 0:  # pragma: no cover - shown only when it fails
            pytest.fail(log.read_text())
    text = log.read_text()
    assert "OpenAI-compatible endpoint at http://127.0.0.1:" in text and "Traceback" not in text
    assert QUESTION not in text, "the log does not keep what was asked"


def test_the_models_are_listed_and_the_token_is_required(client: Any) -> None:
    import openai

    assert [model.id for model in client.models.list()] == ["pllm", "pllm-no-memory", "pllm-plain"]
    stranger = openai.OpenAI(base_url=str(client.base_url), api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])


def test_a_completion_is_the_answer_pllm_ask_gives(client: Any, expected: dict[str, Any]) -> None:
    completion = client.chat.completions.create(model="pllm", messages=[{"role": "user", "content": QUESTION}], seed=1)
    assert completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == expected["answer"]
    assert choice.finish_reason in ("stop", "length")
    assert completion.model_extra["pllm_sources"] == expected["sources"]
    assert completion.usage.prompt_tokens == expected["prompt"]["tokens"]["prompt_total"]


def test_a_streamed_completion_is_the_same_answer(client: Any, expected: dict[str, Any]) -> None:
    stream = client.chat.completions.create(
        model="pllm", messages=[{"role": "user", "content": QUESTION}], seed=1, stream=True
    )
    chunks = list(stream)
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == expected["answer"]
    assert len(chunks) > 3, "streamed piece by piece"
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.model_extra["pllm_sources"] == expected["sources"]
