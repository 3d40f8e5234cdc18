"""The profile end to end with the REAL bundled models (all-MiniLM-L6-v2 and SmolLM2-135M GGUF), no fakes.

The example person's files are ingested and the profile refreshed once per module through the CLI, in-process,
with the session's real models (loaded once); the lock and crash tests run `python -m pllm_cli` as real
processes. The model's exact words are not stable, so these tests check structure and the guarantees: the
grammar always yields JSON, a kept restatement only rearranges the words said, evidence points into memory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, invoke

from pllm_cli.errors import ExitCode
from pllm_cli.memory.index import ChunkIndex
from pllm_cli.paths import Paths
from pllm_cli.profile.extract import (
    FACT_TOKENS,
    SUPPORT_THRESHOLD,
    Statement,
    fact_grammar,
    quoted,
    restate,
    restate_prompt,
    support,
)
from pllm_cli.profile.facts import CATEGORIES, Evidence
from pllm_cli.profile.state import ProfileFiles

pytestmark = pytest.mark.e2e

NAME = "Maya"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLLM_")}
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture(scope="module")
def cli_with_real_models(real_embedder: Any, real_model: Any) -> Iterator[None]:
    """Every in-process CLI run of this module uses the session's real models instead of loading its own."""
    import pllm_cli.context

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pllm_cli.context, "SentenceTransformerEmbedder", lambda path=None: real_embedder)
        patch.setattr(pllm_cli.context, "LlamaCppModel", lambda path=None, context_size=0, **_: real_model)
        yield


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory, cli_with_real_models: None) -> dict[str, Any]:
    """A home with all of examples/ ingested, `me` = Maya, and one full `pllm profile refresh --json`."""
    home = tmp_path_factory.mktemp("profile-e2e") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PLLM_"):
                patch.delenv(name)
        patch.setenv("NO_COLOR", "1")
        assert invoke(["--home", str(home), "config", "set", "me", NAME]).exit_code == 0
        ingested = invoke(["--home", str(home), "ingest", str(EXAMPLES), "--json"])
        assert ingested.exit_code == 0, ingested.stderr
        started = time.perf_counter()
        result = invoke(["--home", str(home), "profile", "refresh", "--json"])
        seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.stderr
    return {"home": home, "report": json.loads(result.stdout), "seconds": seconds}


@pytest.fixture
def own_home(refreshed: dict[str, Any], home: Path) -> Path:
    """A private copy of the refreshed home at PLLM_HOME, for a test that writes."""
    shutil.copytree(refreshed["home"], home)
    return home


def extra_chat(folder: Path, sessions: int) -> Path:
    """A run-club chat: `sessions` conversations a day apart (so one chunk each), Maya saying two things
    about herself in each."""
    said = [
        ("I joined the Slottsskogen run club last week.", "My favourite session is the hill repeats on Mondays."),
        ("I ran my first sub-five kilometre split today.", "My calves are sore but I feel strong."),
        ("I bought new trail shoes for the autumn races.", "My old pair had holes in both heels."),
        ("I am thinking about a spring marathon in Copenhagen.", "My coach says I should build up slowly."),
        ("I stretched for twenty minutes after the tempo run.", "My hamstrings finally feel loose again."),
        ("I paced the beginners group around the lake.", "My job was to keep everyone chatting."),
    ]
    lines = []
    for day, (first, second) in enumerate(said[:sessions]):
        when = f"2026-06-{day + 1:02d}T07:{{:02d}}:00+02:00"
        lines += [
            {"id": f"r{day}a", "speaker": "Jonas", "time": when.format(0), "text": "how was the run club?"},
            {"id": f"r{day}b", "speaker": NAME, "time": when.format(5), "text": f"{first} {second}"},
        ]
    path = folder / "run-club.jsonl"
    path.write_text(
        "".join(json.dumps({"conversation": "run-club", **line}, ensure_ascii=False) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def chunk_ids(home: Path) -> dict[str, str]:
    """Every chunk in memory: id -> the text a reader sees, from the SQLite index."""
    index = ChunkIndex(Paths(home).memory_dir / "index.sqlite3")
    try:
        return {chunk.id: chunk.text for chunk in index.iter_chunks()}
    finally:
        index.close()


@pytest.fixture
def refresh_process() -> Iterator[Any]:
    """refresh_process(home): `python -m pllm_cli --home HOME profile refresh` started; any still running at
    the end of the test is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(home: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "pllm_cli", "--home", str(home), "profile", "refresh"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


# --- extraction under the grammar, with the real model ---------------------------------------------

NASTY = [
    (NAME, "I run three mornings a week, before work."),
    (NAME, 'My favourite quote is "less is more" and I live by it.'),
    (NAME, r"I keep my notes in C:\Users\maya\notes and back them up every week."),
    (NAME, 'I said "no" to the \\"escaped\\" things\tand\ttabs, and I meant it.'),
    (NAME, 'I told Jonas: "{"fact": "nope"}" is not how I write JSON.'),
    (NAME, 'I use {"json": true} in my notes sometimes, and ]]> too.'),
    (NAME, "I love cardamom buns 🥐☕ and I bake them every Sunday 🎉🎉🎉."),
    (NAME, "I 😂😂😂 every time Pepparkaka 🐈 sits on my running shoes 👟."),
    (NAME, "私は毎日日本語を勉強していて、来年の十二月にN4を受けるつもりです。"),
    (NAME, "日本の料理が大好きで、特にラーメンと寿司をよく作ります。"),
    (NAME, "I study 漢字 every evening and my tutor Haruka-sensei says my 書き方 is improving."),
    (NAME, "I " + "really " * 40 + "like long runs in the rain."),
    (
        NAME,
        "My target time for the half marathon in May is one hour and fifty-five minutes, which I think is "
        "realistic if I stay healthy, keep doing the intervals on Tuesdays, and stop skipping the long runs "
        "on Sundays when it is icy.",
    ),
    (NAME, "I moved to Gothenburg in 2019 and I've lived in Majorna ever since."),
    (NAME, "Ich wohne seit drei Jahren in Göteborg und arbeite als Landschaftsarchitektin, sagte ich."),
    (NAME, "J'adore le café noir, surtout le matin avant de courir, and I drink it every day."),
    (NAME, "I am allergic to hazelnuts \\ almonds are fine / walnuts I avoid."),
    (NAME, "My password manager entry is called 'home\\wifi' and I never share it."),
    (NAME, "I wrote </script><script>alert(1)</script> in a note once, for fun."),
    (NAME, "I ❤️ my trombone; I've played it since I was 12\u200b years old."),
    ('Ma"ya', "I play the trombone in a brass band on Wednesdays."),
    ("O'Brien", "I've been working as a nurse for ten years now."),
    ("Jean\\Luc", "I moved to Porto last month for a new job."),
    ('Zoë "Z" 🌸', "I am allergic to hazelnuts so I always check the labels."),
    ("真弓", "私は東京に住んでいて、毎朝公園を走っています。"),
    ("Anna-Lena Öberg", "I grew up on a farm outside Umeå with three brothers."),
]


class RecordingModel:
    """The real model, with every raw answer it gives recorded."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.answers: list[str] = []

    @property
    def name(self) -> str:
        return str(self.model.name)

    def complete(self, messages: Any, *, grammar: str, max_tokens: int) -> str:
        answer = str(self.model.complete(messages, grammar=grammar, max_tokens=max_tokens))
        self.answers.append(answer)
        return answer


def test_grammar_constrained_extraction_always_parses(real_model: Any) -> None:
    model = RecordingModel(real_model)
    restated = 0
    for name, text in NASTY:
        statement = Statement(text, "self", Evidence("chunk", "source.md", text, speaker=name))
        candidate = restate(model, statement, name, fact_grammar(name))
        answer = model.answers[-1]
        data = json.loads(answer)  # ALWAYS valid JSON under the grammar
        assert list(data) == ["fact"], answer
        assert data["fact"].startswith(name + " "), (name, answer)
        assert candidate.statement is statement
        if candidate.restated:
            restated += 1
            assert candidate.text.startswith(name + " ")
            assert support(candidate.text, text, name) >= SUPPORT_THRESHOLD == 1.0, (text, candidate.text)
            assert candidate.text.rstrip(".!") == data["fact"].strip().rstrip(".!")
        else:
            assert candidate.text == quoted(statement, name) == f'{name}: "{text}"'
    assert len(model.answers) == len(NASTY) >= 25
    assert restated > 0, "the real model restates some statements well enough to pass the check"


def test_the_grammar_bounds_the_answer(real_model: Any) -> None:
    text = "I " + "love long runs and " * 30 + "coffee."
    statement = Statement(text, "self", Evidence("chunk", "source.md", text))
    answer = real_model.complete(restate_prompt(statement, NAME), grammar=fact_grammar(NAME), max_tokens=FACT_TOKENS)
    fact = json.loads(answer)["fact"]
    assert fact.startswith(NAME + " ") and len(fact) <= len(NAME) + 1 + 110


# --- a full refresh of the examples ----------------------------------------------------------------


def test_full_refresh_of_the_examples(refreshed: dict[str, Any], run: Any) -> None:
    home = refreshed["home"]
    report = refreshed["report"]
    chunks = chunk_ids(home)
    assert report["version"] == 1 and report["saved"] is True
    assert report["chunks_read"] == len(chunks) > 0
    assert report["statements"] == report["restated"] + report["quoted"] > 0
    assert report["restated"] > 0, "the real model restates some statements"
    shown = run("--home", home, "profile", "show", "--json")
    assert shown.exit_code == 0, shown.stderr
    profile = json.loads(shown.stdout)
    assert profile["name"] == NAME and profile["version"] == 1
    facts = profile["facts"]
    assert facts and len(facts) == report["facts"]
    assert profile["writing_style"]["messages"] > 0
    restated = 0
    for fact in facts:
        assert fact["category"] in CATEGORIES and 0 < fact["confidence"] <= 1
        assert fact["status"] == "active" and fact["origin"] in ("self", "reported")
        assert fact["evidence"], fact
        for evidence in fact["evidence"]:
            assert evidence["chunk_id"] in chunks, "the evidence points at a chunk in memory"
            assert evidence["quote"] in chunks[evidence["chunk_id"]], "and quotes it"
            assert evidence["source"].startswith(str(EXAMPLES))
        first = fact["evidence"][0]
        who = NAME if fact["origin"] == "self" else first["speaker"] or "someone"
        if fact["text"] == f'{who}: "{first["quote"]}"':
            continue  # quoted: the restatement failed its check
        restated += 1
        assert fact["text"].startswith(NAME + " "), fact["text"]
        assert support(fact["text"], first["quote"], NAME) == 1.0, (fact["text"], first["quote"])
    assert restated > 0
    text = run("--home", home, "profile", "show")
    assert text.exit_code == 0 and text.stdout.startswith(f"# Profile of {NAME} (version 1, ")


# --- the lock between real processes ---------------------------------------------------------------


def test_two_refreshes_at_once(own_home: Path, run: Any, tmp_path: Path, refresh_process: Any) -> None:
    assert run("ingest", extra_chat(tmp_path, 2)).exit_code == 0  # some new work for the one that runs
    started = time.monotonic()
    processes = [refresh_process(own_home), refresh_process(own_home)]
    ended: dict[int, float] = {}
    while len(ended) < 2 and time.monotonic() - started < 600:
        for number, process in enumerate(processes):
            if number not in ended and process.poll() is not None:
                ended[number] = time.monotonic() - started
        time.sleep(0.05)
    outputs = [process.communicate(timeout=60) for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [ExitCode.OK, ExitCode.BUSY], (codes, outputs)
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    stderr = outputs[loser][1]
    # "(pid N)" too, unless it looked in the instant between the other's flock and its writing its pid
    assert stderr.startswith("Error: another pllm ") and "is changing this profile" in stderr, stderr
    assert "--wait" in stderr and "Traceback" not in stderr
    assert outputs[loser][0] == ""
    assert ended[loser] < ended[winner] and ended[loser] < 20, ended
    assert "profile version 2:" in outputs[winner][1]
    assert ProfileFiles(Paths(own_home)).load().version == 2


# --- a refresh killed mid-way ----------------------------------------------------------------------


def test_killed_refresh_leaves_the_profile_whole(
    own_home: Path, run: Any, tmp_path: Path, refresh_process: Any
) -> None:
    paths = Paths(own_home)
    assert run("ingest", extra_chat(tmp_path, 6)).exit_code == 0
    new_chunks = len(chunk_ids(own_home)) - len(ProfileFiles(paths).load().read)
    assert new_chunks == 6
    profile_before = paths.profile_file.read_bytes()
    read_before = paths.profile_read_file.read_bytes()
    history_before = sorted(p.name for p in paths.profile_history_dir.iterdir())

    process = refresh_process(own_home)
    progress = threading.Event()
    lines: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("  read "):
                progress.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert progress.wait(300), f"no progress on stderr: {lines}"
    assert process.poll() is None, f"the refresh was still running when killed: {lines}"
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL
    watcher.join(5)
    assert not any(line.startswith("profile version") for line in lines), lines

    assert paths.profile_file.read_bytes() == profile_before, "profile.json is untouched"
    assert paths.profile_read_file.read_bytes() == read_before
    assert sorted(p.name for p in paths.profile_history_dir.iterdir()) == history_before
    state = ProfileFiles(paths).load()
    assert state.version == 1
    shown = run("profile", "show", "--json")
    assert shown.exit_code == 0, shown.stderr
    facts_before = {f["id"] for f in json.loads(shown.stdout)["facts"]}

    again = run("profile", "refresh", "--json")  # the lock died with the process
    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["version"] == 2 and report["saved"] is True
    assert report["chunks_read"] == new_chunks
    after = json.loads(run("profile", "show", "--json").stdout)
    assert after["version"] == 2
    assert facts_before <= {f["id"] for f in after["facts"]}
    assert any("run-club.jsonl" in e["source"] for f in after["facts"] for e in f["evidence"])
