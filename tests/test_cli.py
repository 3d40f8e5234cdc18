"""The command line through main(): help, exit codes, the error boundary, stdout/stderr discipline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from pllm_cli import __version__
from pllm_cli.errors import ExitCode
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths


def command_paths() -> list[list[str]]:
    from pllm_cli.cli import app

    root = typer.main.get_command(app)
    found: list[list[str]] = [[]]

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            found.append([*prefix, name])
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(root, [])
    return found


COMMANDS = command_paths()


def assert_clean_error(result: Any, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Error: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in result.stderr


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "work.md").write_text("# Work\n\nMy manager is Karin Ek. Deadline 30 June.\n", encoding="utf-8")
    (folder / "elin.md").write_text("# Elin\n\nElin collects Hagi tea bowls.\n", encoding="utf-8")
    return folder


@pytest.fixture
def ingested(run, fake_models, notes: Path) -> Path:  # type: ignore[no-untyped-def]
    result = run("ingest", notes)
    assert result.exit_code == 0, result.stderr
    return notes


# --- help and version -------------------------------------------------------------------------------


def test_command_tree_is_complete() -> None:
    names = {" ".join(path) for path in COMMANDS}
    for expected in (
        "ingest",
        "ask",
        "chat",
        "status",
        "memory search",
        "memory forget",
        "profile refresh",
        "profile show",
        "config set",
        "config show",
    ):
        assert expected in names


def test_version(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"pllm {__version__}\n"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "pllm")
def test_help_for_every_command(run, path: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Usage: pllm")
    assert result.stderr == ""
    assert run(*path, "-h").stdout == result.stdout


def test_options_with_env_vars_say_so_in_help(run) -> None:  # type: ignore[no-untyped-def]
    from pllm_cli.cli import app

    root = typer.main.get_command(app)
    for path in COMMANDS:
        command: Any = root
        for name in path:
            command = command.commands[name]
        envvars = [p.envvar for p in command.params if getattr(p, "envvar", None)]
        if envvars:
            text = run(*path, "--help").stdout
            for envvar in envvars:
                assert envvar in text, (path, envvar)


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from pllm_cli.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code in (0, None), exit_.code\n"
        "heavy = ['torch', 'chromadb', 'sentence_transformers', 'llama_cpp', 'numpy', 'pypdf', 'transformers']\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLLM_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: pllm" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "HEAVY="


def test_python_dash_m(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PLLM_")}, "PLLM_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pllm_cli", "--version"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, f"pllm {__version__}\n")


# --- exit codes -------------------------------------------------------------------------------------


def test_unknown_command_is_usage_error(run) -> None:  # type: ignore[no-untyped-def]
    result = run("frobnicate")
    assert result.exit_code == ExitCode.USAGE == 2
    assert "No such command" in result.stderr
    assert run("ask", "--bogus-option").exit_code == 2
    assert run("memory", "search").exit_code == 2  # missing argument


def test_ingest_missing_path_is_partial(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", tmp_path / "does-not-exist")
    assert result.exit_code == ExitCode.PARTIAL == 3
    assert "failed" in result.stderr
    assert "does-not-exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_memory_search_on_empty_memory(run) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "search", "anything")
    assert_clean_error(result, ExitCode.NOT_FOUND, "memory is empty", "Hint: ")
    assert result.stdout == ""


def test_missing_model_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "--model", "/nonexistent.gguf", "--no-memory", "hi")
    assert_clean_error(result, ExitCode.MODEL, "/nonexistent.gguf", "Hint: ")


def test_model_file_of_random_bytes(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "x.gguf"
    model.write_bytes(os.urandom(4096))
    result = run("ask", "--model", model, "--no-memory", "hi")
    assert_clean_error(result, ExitCode.MODEL, "x.gguf is not a GGUF model file")


def test_truncated_gguf_model(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pllm_cli.runtime import bundled_model_path

    model = tmp_path / "cut.gguf"
    with bundled_model_path().open("rb") as handle:
        model.write_bytes(handle.read(64 * 1024))
    result = run("ask", "--model", model, "--no-memory", "hi")
    assert_clean_error(result, ExitCode.MODEL, "could not load cut.gguf")


def test_model_from_env_var(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PLLM_MODEL", str(tmp_path / "from-env.gguf"))
    result = run("ask", "--no-memory", "hi")
    assert_clean_error(result, ExitCode.MODEL, "from-env.gguf")


def test_config_set_bad_value(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("config", "set", "k", "notanumber")
    assert_clean_error(result, ExitCode.CONFIG, "k must be int", "Hint: ")
    assert not (home / "config.toml").exists()
    assert_clean_error(run("config", "set", "colour", "red"), ExitCode.CONFIG, "unknown setting 'colour'")
    assert_clean_error(run("config", "unset", "colour"), ExitCode.CONFIG, "unknown setting 'colour'")


def test_bad_config_file_is_config_error_for_any_command(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    home.mkdir(parents=True)
    (home / "config.toml").write_text("k = 0\n", encoding="utf-8")
    result = run("ask", "--no-memory", "hi")
    assert_clean_error(result, ExitCode.CONFIG, "k must be at least 1", str(home / "config.toml"))


def test_forget_unknown_source(run) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "forget", "/no/such/note.md")
    assert_clean_error(result, ExitCode.NOT_FOUND, "no source '/no/such/note.md'", "Hint: ")


def test_profile_show_without_profile(run) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(run("profile", "show"), ExitCode.NOT_FOUND, "no profile yet", "pllm profile refresh")


def test_unknown_search_mode(run) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(run("memory", "search", "--mode", "fuzzy", "x"), ExitCode.USAGE, "unknown search mode")


def test_empty_question(run, fake_models) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(run("ask", "--no-memory", "   "), ExitCode.INPUT, "the question is empty")


def test_question_too_long(run, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "--no-memory", "--max-tokens", "100", "word " * 5000)
    assert_clean_error(result, ExitCode.TOO_LONG, "does not fit", "Hint: ")


def test_memory_of_another_embedding_model(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    ChromaStore(Paths(home).memory_dir, embedding_model="some-other-model").close()
    result = run("memory", "stats")
    assert_clean_error(result, ExitCode.STORE, "'some-other-model'", "Hint: ")


def test_ctrl_c_exits_130(run, notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import pllm_cli.cli.ingest

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pllm_cli.cli.ingest, "ingest_paths", interrupted)
    result = run("ingest", notes)
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert "Traceback" not in result.stderr


def test_ctrl_c_says_interrupted(run, notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import pllm_cli.cli.ingest

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pllm_cli.cli.ingest, "ingest_paths", interrupted)
    assert "Interrupted." in run("ingest", notes).stderr


def test_broken_pipe_exits_0(run, notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    import pllm_cli.cli.ingest

    def closed_pipe(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(pllm_cli.cli.ingest, "ingest_paths", closed_pipe)
    assert run("ingest", notes).exit_code == ExitCode.OK


def test_a_real_bug_is_not_hidden(notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import invoke

    import pllm_cli.cli.ingest

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pllm_cli.cli.ingest, "ingest_paths", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        invoke(["ingest", str(notes)])


# --- commands that work (fake models) ---------------------------------------------------------------


def test_ingest_json_report_and_incremental_rerun(run, fake_models, notes: Path) -> None:  # type: ignore[no-untyped-def]
    first = run("ingest", notes, "--json")
    assert first.exit_code == 0
    report = json.loads(first.stdout)
    assert report["summary"]["added"] == 2 and report["chunks_written"] == 2
    again = json.loads(run("ingest", notes, "--json").stdout)
    assert again["summary"]["unchanged"] == 2 and again["chunks_written"] == 0


def test_ingest_renders_a_summary_on_stderr(run, fake_models, notes: Path) -> None:  # type: ignore[no-untyped-def]
    (notes / "bad.md").write_bytes(b"\xff\xfe not utf-8")
    result = run("ingest", notes)
    assert result.exit_code == ExitCode.PARTIAL
    assert result.stdout == ""
    assert "added" in result.stderr and "bad.md" in result.stderr and "not valid UTF-8" in result.stderr
    assert "2 added" in result.stderr and "1 failed" in result.stderr
    quiet = run("--quiet", "ingest", notes)
    assert quiet.exit_code == ExitCode.PARTIAL
    assert quiet.stderr.strip().startswith("failed:") and "bad.md" in quiet.stderr


def test_memory_search_json(run, ingested: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "search", "who is my manager", "--json", "-k", "1")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["query"] == "who is my manager"
    [hit] = data["hits"]
    assert hit["source"] == str(ingested / "work.md")
    assert {"chunk_id", "score", "text", "kind", "heading", "message_ids"} <= set(hit)


def test_memory_search_tokens_packs_passages_within_the_budget(run, ingested: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "search", "who is my manager", "--json", "--tokens", "40")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passages"] and data["tokens"] <= 40 and "hits" not in data
    assert {"source", "text", "message_ids", "chunk_ids", "score"} <= set(data["passages"][0])
    assert data["periods"] == []
    dated = json.loads(run("memory", "search", "what happened on 3 March 2026", "--json").stdout)
    assert dated["periods"] == ["2026-03-03..2026-03-03"]
    text = run("memory", "search", "Hagi", "--tokens", "200")
    assert text.exit_code == 0 and text.stdout.startswith("1. ") and "Elin collects Hagi tea bowls." in text.stdout
    assert run("memory", "search", "Hagi", "--tokens", "0").exit_code == 2


def test_memory_search_text(run, ingested: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "search", "Hagi", "--mode", "lexical")
    assert result.exit_code == 0
    assert result.stdout.startswith("1. ")
    assert "elin.md" in result.stdout.splitlines()[0]
    assert "Elin collects Hagi tea bowls." in result.stdout


def test_memory_search_queries_from_stdin(run, ingested: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "search", "-", "--json", "-k", "2", input="who is my manager\n\nHagi tea bowls\n")
    assert result.exit_code == 0, result.stderr
    lines = result.json_lines()
    assert [line["query"] for line in lines] == ["who is my manager", "Hagi tea bowls"]
    assert all(isinstance(line["hits"], list) and line["hits"] for line in lines)
    assert lines[1]["hits"][0]["source"].endswith("elin.md")


def test_memory_stats_sources_and_forget(run, ingested: Path) -> None:  # type: ignore[no-untyped-def]
    stats = json.loads(run("memory", "stats", "--json").stdout)
    assert stats["sources"] == 2 and stats["chunks"] == 2
    assert stats["embedding_model"] == "fake-embedder" and stats["formats"] == {"markdown": 2}
    sources = run("memory", "sources", "--json").json_lines()
    assert sorted(s["source"] for s in sources) == [str(ingested / "elin.md"), str(ingested / "work.md")]
    forgot = run("memory", "forget", ingested / "elin.md", "--json")
    assert forgot.exit_code == 0
    data = json.loads(forgot.stdout)
    rebuilt = data.pop("vector_store_rebuilt")
    assert data == {
        "forgotten": [{"source": str(ingested / "elin.md"), "chunks": 1}],
        "profile_facts_removed": [],
        "profile_update_deferred": False,
        "rules": [],
    }
    assert rebuilt["generation"] == "chroma-1" and rebuilt["chunks"] == 1 and rebuilt["missing"] == 0
    assert json.loads(run("memory", "stats", "--json").stdout)["chunks"] == 1
    result = run("memory", "search", "Hagi", "--json", "--mode", "lexical")
    assert all(not h["source"].endswith("elin.md") for h in json.loads(result.stdout)["hits"])


def test_memory_sources_when_empty(run) -> None:  # type: ignore[no-untyped-def]
    result = run("memory", "sources")
    assert result.exit_code == 0 and result.stdout == ""
    assert "memory is empty" in result.stderr


def test_ask_json_with_fake_model(run, ingested: Path, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "--json", "Who is my manager?")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] == fake_models.answer + " [1]" and data["cited"] == [1]
    assert any("Karin Ek" in s["text"] for s in data["sources"] if s["cited"])
    assert [s["n"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    assert "Karin Ek" in fake_models.messages[-1].content


def test_ask_streams_answer_to_stdout_and_sources_to_stderr(run, ingested: Path, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "Who is my manager?", input=None)
    assert result.exit_code == 0
    assert result.stdout == fake_models.answer + " [1]\n"
    assert "Sources:" in result.stderr and "[1] work.md" in result.stderr
    assert "[2]" not in result.stderr, "only the memories the answer cites"
    every = run("ask", "Who is my manager?", "--all-sources", input=None)
    assert "[1] work.md" in every.stderr and "[2] " in every.stderr


def test_ask_reads_the_question_from_stdin(run, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("ask", "--no-memory", "-", input="What is on my list?\n")
    assert result.exit_code == 0, result.stderr
    assert fake_models.messages[-1].content == "What is on my list?"


def test_flags_override_config(run, fake_models, home: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("config", "set", "max_tokens", "2").exit_code == 0
    assert run("ask", "--no-memory", "hi").stdout == "Your manager\n"
    assert run("ask", "--no-memory", "--max-tokens", "3", "hi").stdout == "Your manager is\n"
    assert fake_models.calls[-1]["max_tokens"] == 3


def test_config_set_show_and_origin(run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert run("config", "set", "me", "Maya").exit_code == 0
    assert run("config", "set", "k", "7").exit_code == 0
    monkeypatch.setenv("PLLM_K", "9")
    data = json.loads(run("config", "show", "--json").stdout)
    assert data["me"] == {"value": "Maya", "origin": "config.toml"}
    assert data["k"] == {"value": 9, "origin": "PLLM_K"}
    assert data["context_size"] == {"value": 4096, "origin": "default"}
    path = run("config", "path").stdout.strip()
    assert path == str(home / "config.toml")
    assert oct(Path(path).stat().st_mode & 0o777) == oct(0o600)
    assert run("config", "unset", "me").exit_code == 0
    assert json.loads(run("config", "show", "--json").stdout)["me"]["origin"] == "default"


def test_home_option_and_persona(run, tmp_path: Path, fake_models, notes: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "elsewhere"
    assert run("--home", other, "--profile", "work", "ingest", notes).exit_code == 0
    assert (other / "personas" / "work" / "memory" / "index.sqlite3").exists()
    status = json.loads(run("--home", other, "--profile", "work", "status", "--json").stdout)
    assert status["persona"] == "work" and status["memory"]["chunks"] == 2
    default = json.loads(run("--home", other, "status", "--json").stdout)
    assert default["memory"]["chunks"] == 0, "personas do not share memory"


def test_status_without_loading_models(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["paths"]["home"] == str(home)
    assert data["chat_model"].endswith(".gguf")
    assert data["memory"] == {"kind": "embedded", "path": data["paths"]["memory"], "sources": 0, "chunks": 0}
    assert data["profile"] == {"version": 0, "facts": 0}
    assert data["server"] == {"running": False}


def test_chat_repl_with_fake_model(run, ingested: Path, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("chat", input="/sources\nWho is my manager?\n/sources\n/nonsense\n\n/profile\nand then?\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(fake_models.answer + " [1]\n") == 2
    assert "(no profile: pllm profile refresh)" in result.stdout
    assert "no sources yet" in result.stderr
    assert "[1] work.md" in result.stderr
    assert "unknown command /nonsense" in result.stderr
    # the second question saw the first turn
    assert [m.role for m in fake_models.messages] == ["system", "user", "assistant", "user"]


def test_chat_repl_reports_errors_and_goes_on(run, fake_models) -> None:  # type: ignore[no-untyped-def]
    result = run("chat", "--no-memory", input=("word " * 5000) + "\nhello\n/exit\nnever asked\n")
    assert result.exit_code == 0
    assert "Error: " in result.stderr and "does not fit" in result.stderr
    assert result.stdout == fake_models.answer + "\n"
    assert len(fake_models.calls) == 1


def test_completion_scripts(run) -> None:  # type: ignore[no-untyped-def]
    for shell in ("bash", "zsh", "fish"):
        result = run("completion", shell)
        assert result.exit_code == 0
        assert "_PLLM_COMPLETE" in result.stdout
    assert run("completion", "tcsh").exit_code == 2
