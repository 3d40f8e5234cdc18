"""`pllm profile` and `pllm profiles` through the command line, with the fake models (fast).

The fake chat model restates a statement by dropping its pronouns after the name ("I run on Sundays" ->
"Maya run on Sundays"), so extraction is deterministic; the fake embedder makes equal sentences equal vectors.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES

from pllm_cli.errors import ExitCode
from pllm_cli.locking import exclusive
from pllm_cli.paths import Paths

REPORT_FIELDS = {"version", "saved", "added", "changed", "removed", "facts", "chunks_read", "seconds"}
FACT_FIELDS = {"id", "category", "text", "origin", "status", "confidence", "evidence", "first_seen", "last_confirmed"}


def assert_clean_error(result: Any, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Error: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def refresh_json(run: Any, *args: Any) -> dict[str, Any]:
    return json.loads(ok(run(*args, "profile", "refresh", "--json")).stdout)  # type: ignore[no-any-return]


def show_json(run: Any, *args: Any) -> dict[str, Any]:
    return json.loads(ok(run(*args, "profile", "show", "--json")).stdout)  # type: ignore[no-any-return]


def chat_line(conversation: str, message_id: str, speaker: str, when: str, text: str) -> str:
    return json.dumps({"conversation": conversation, "id": message_id, "speaker": speaker, "time": when, "text": text})


@pytest.fixture
def maya(run: Any, fake_models: Any) -> Any:
    """The example person's notes and chats in memory, `me` set to Maya; no profile yet."""
    ok(run("config", "set", "me", "Maya"))
    ok(run("ingest", EXAMPLES / "notes", EXAMPLES / "chats"))
    return run


@pytest.fixture
def profiled(maya: Any) -> dict[str, Any]:
    """`maya`, refreshed once: the report of version 1."""
    return refresh_json(maya)


@contextmanager
def held_lock(home: Path, persona: str = "default") -> Iterator[None]:
    """Hold the profile lock as another pllm would."""
    with exclusive(Paths(home, persona).profile_lock_file, "testing"):
        yield


@contextmanager
def lock_released_after(home: Path, seconds: float) -> Iterator[None]:
    """The profile lock held by another thread, released `seconds` after the block starts."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with held_lock(home):
            held.set()
            release.wait(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    try:
        yield
    finally:
        release.set()
        thread.join(5)


# --- refresh --------------------------------------------------------------------------------------


def test_refresh_json_report(maya: Any, home: Path) -> None:
    chunks = json.loads(ok(maya("memory", "stats", "--json")).stdout)["chunks"]
    report = refresh_json(maya)
    assert set(report) >= REPORT_FIELDS
    assert report["version"] == 1 and report["saved"] is True
    assert report["added"] and report["changed"] == [] and report["removed"] == []
    assert report["facts"] == len(report["added"]) == len(set(report["added"]))
    assert report["chunks_read"] == chunks > 0
    assert report["statements"] == report["restated"] + report["quoted"] >= report["facts"]
    assert isinstance(report["seconds"], float) and report["seconds"] >= 0
    profile = show_json(maya)
    assert profile["version"] == 1 and profile["name"] == "Maya"
    assert sorted(f["id"] for f in profile["facts"]) == sorted(report["added"])
    assert Paths(home).profile_file.exists() and Paths(home).profile_read_file.exists()


def test_refresh_text_summary_and_progress_on_stderr(maya: Any) -> None:
    result = ok(maya("profile", "refresh"))
    assert result.stdout == ""
    assert "read " in result.stderr and " chunks" in result.stderr
    assert "profile version 1:" in result.stderr and "facts added" in result.stderr


def test_refresh_quiet_prints_nothing(maya: Any) -> None:
    result = ok(maya("--quiet", "profile", "refresh"))
    assert (result.stdout, result.stderr) == ("", "")
    assert show_json(maya)["version"] == 1


def test_refresh_without_me_notes_it(run: Any, fake_models: Any, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("I grow tomatoes on the balcony every summer.\n", encoding="utf-8")
    ok(run("ingest", note))
    assert ok(run("profile", "refresh", "--json")).stderr == "", "--json leaves stderr alone"
    result = ok(run("profile", "refresh", "--rebuild"))
    assert "pllm does not know your chat name" in result.stderr and "pllm config set me NAME" in result.stderr
    assert show_json(run)["name"] == "the user"


def test_refresh_on_empty_memory(run: Any, fake_models: Any, home: Path) -> None:
    result = run("profile", "refresh")
    assert_clean_error(result, ExitCode.NOT_FOUND, "memory is empty", "Hint: ", "pllm ingest")
    assert result.stdout == ""
    assert not Paths(home).profile_file.exists()


def test_refresh_reads_only_new_chunks(profiled: dict[str, Any], maya: Any, tmp_path: Path) -> None:
    note = tmp_path / "balcony.md"
    note.write_text("I grow tomatoes and basil on my balcony every summer.\n", encoding="utf-8")
    ok(maya("ingest", note))
    report = refresh_json(maya)
    assert report["version"] == 2 and report["saved"] is True
    assert report["chunks_read"] == 1
    assert len(report["added"]) == 1 and report["facts"] == profiled["facts"] + 1
    [fact] = [f for f in show_json(maya)["facts"] if f["id"] in report["added"]]
    assert fact["text"] == "Maya grow tomatoes and basil on balcony every summer."
    assert [e["source"] for e in fact["evidence"]] == [str(note)]


def test_second_refresh_is_unchanged(profiled: dict[str, Any], maya: Any, home: Path) -> None:
    before = Paths(home).profile_file.read_bytes()
    again = refresh_json(maya)
    assert again["saved"] is False and again["version"] == profiled["version"] == 1
    assert again["added"] == again["changed"] == again["removed"] == [] and again["chunks_read"] == 0
    assert Paths(home).profile_file.read_bytes() == before


def test_refresh_of_pinned_facts_only(run: Any, fake_models: Any) -> None:
    ok(run("profile", "pin", "I am vegetarian"))
    result = run("profile", "refresh", "--json")  # memory is empty, but the profile is not
    assert result.exit_code == 0


def test_rebuild_keeps_pinned_facts(profiled: dict[str, Any], maya: Any) -> None:
    pinned = json.loads(ok(maya("profile", "pin", "I am vegetarian", "--json")).stdout)
    report = json.loads(ok(maya("profile", "refresh", "--rebuild", "--json")).stdout)
    assert report["saved"] is True and report["version"] == 3
    assert report["chunks_read"] == profiled["chunks_read"]
    ids = {f["id"] for f in show_json(maya)["facts"]}
    assert pinned["id"] in ids and set(profiled["added"]) <= ids


# --- the lock -------------------------------------------------------------------------------------


def test_refresh_while_another_pllm_holds_the_lock(maya: Any, home: Path) -> None:
    with held_lock(home):
        started = time.monotonic()
        result = maya("profile", "refresh")
        assert time.monotonic() - started < 5
    assert_clean_error(result, ExitCode.BUSY, "another pllm", "is changing this profile", "Hint: ", "--wait")
    error, hint = result.stderr.splitlines()  # one line of error, one of hint
    assert error.startswith("Error: another pllm (pid ") and hint.startswith("Hint: ") and "--wait" in hint
    assert result.stdout == ""
    assert not Paths(home).profile_file.exists()
    assert ok(maya("profile", "refresh", "--json")).exit_code == 0, "the lock is free once released"


def test_refresh_busy_json_keeps_stdout_empty(maya: Any, home: Path) -> None:
    with held_lock(home):
        result = maya("profile", "refresh", "--json")
    assert_clean_error(result, ExitCode.BUSY, "another pllm")
    assert result.stdout == ""


def test_refresh_wait_then_busy(maya: Any, home: Path) -> None:
    with held_lock(home):
        started = time.monotonic()
        result = maya("profile", "refresh", "--wait", "0.5")
        waited = time.monotonic() - started
    assert_clean_error(result, ExitCode.BUSY, "another pllm", "after waiting 0.5 s")
    assert 0.5 <= waited < 5


def test_refresh_waits_for_the_lock_to_be_released(maya: Any, home: Path) -> None:
    with lock_released_after(home, 0.3):
        started = time.monotonic()
        result = ok(maya("profile", "refresh", "--wait", "10", "--json"))
        assert time.monotonic() - started >= 0.25
    assert json.loads(result.stdout)["version"] == 1


def test_pin_and_forget_honour_the_lock(profiled: dict[str, Any], maya: Any, home: Path) -> None:
    fact_id = profiled["added"][0]
    with held_lock(home):
        assert_clean_error(maya("profile", "pin", "I am vegetarian", "--wait", "0"), ExitCode.BUSY, "another pllm")
        assert_clean_error(maya("profile", "forget", fact_id, "--wait", "0"), ExitCode.BUSY, "another pllm")
    assert show_json(maya)["version"] == 1, "nothing was changed"
    with lock_released_after(home, 0.3):
        ok(maya("profile", "pin", "I am vegetarian"))  # waits (10 s by default) for the lock
    with lock_released_after(home, 0.3):
        ok(maya("profile", "forget", fact_id))
    profile = show_json(maya)
    assert profile["version"] == 3
    assert fact_id not in {f["id"] for f in profile["facts"]}


def test_the_lock_is_per_persona(maya: Any, home: Path, tmp_path: Path) -> None:
    note = tmp_path / "work.md"
    note.write_text("I review the planting plans with the city every Friday morning.\n", encoding="utf-8")
    ok(maya("--profile", "work", "ingest", note))
    with held_lock(home, "default"):
        assert refresh_json(maya, "--profile", "work")["version"] == 1
        assert_clean_error(maya("profile", "refresh"), ExitCode.BUSY)


# --- show, pin, forget ----------------------------------------------------------------------------


def test_show_without_profile(run: Any) -> None:
    for args in (("profile", "show"), ("profile", "show", "--json"), ("profile", "history"), ("profile", "diff")):
        result = run(*args)
        assert_clean_error(result, ExitCode.NOT_FOUND, "there is no profile yet", "pllm profile refresh")
        assert result.stdout == ""


def test_show_json(profiled: dict[str, Any], maya: Any) -> None:
    profile = show_json(maya)
    assert set(profile) == {"name", "version", "updated_at", "facts", "writing_style"}
    assert profile["name"] == "Maya" and profile["version"] == 1 and profile["updated_at"]
    assert len(profile["facts"]) == profiled["facts"]
    for fact in profile["facts"]:
        assert set(fact) >= FACT_FIELDS
        assert fact["status"] == "active" and fact["origin"] in ("self", "reported")
        assert "vector" not in fact
        for evidence in fact["evidence"]:
            assert evidence["chunk_id"] and evidence["quote"]
            assert evidence["source"].startswith(str(EXAMPLES))
    reported = [f for f in profile["facts"] if f["origin"] == "reported"]
    assert reported and all(f["reported_by"] for f in reported)
    style = profile["writing_style"]
    assert style["messages"] > 0 and "emoji_share" in style


def test_show_text(profiled: dict[str, Any], maya: Any) -> None:
    profile = show_json(maya)
    result = ok(maya("profile", "show"))
    text = result.stdout
    assert text.startswith("# Profile of Maya (version 1, ")
    assert "## Writing style" in text
    for fact in profile["facts"]:
        assert f"[{fact['id']} · " in text, fact["id"]
    assert "told by " in text


def moves_chat(folder: Path) -> Path:
    """Maya lived in Lisbon, then (a year later) moved to Porto: one slot, two values."""
    path = folder / "moves.jsonl"
    lines = [
        chat_line("c", "a1", "Maya", "2025-01-10T10:00:00+00:00", "I live in Lisbon and love the old yellow trams."),
        chat_line("c", "a2", "Jonas", "2025-01-10T10:05:00+00:00", "nice"),
        chat_line("c", "a3", "Maya", "2026-01-10T10:00:00+00:00", "I moved to Porto last month for a new job."),
        chat_line("c", "a4", "Jonas", "2026-01-10T10:05:00+00:00", "congrats"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_show_all_includes_superseded(run: Any, fake_models: Any, tmp_path: Path) -> None:
    ok(run("config", "set", "me", "Maya"))
    ok(run("ingest", moves_chat(tmp_path)))
    ok(run("profile", "refresh"))
    active = show_json(run)["facts"]
    everything = json.loads(ok(run("profile", "show", "--all", "--json")).stdout)["facts"]
    [porto] = [f for f in active if "Porto" in f["text"]]
    assert porto["slot"] == "residence" and porto["value"] == "porto"
    [lisbon] = [f for f in everything if "Lisbon" in f["text"]]
    assert lisbon["status"] == "superseded" and lisbon["superseded_by"] == porto["id"]
    assert lisbon["id"] not in {f["id"] for f in active}
    text = ok(run("profile", "show")).stdout
    assert "Porto" in text and "Lisbon" not in text
    text_all = ok(run("profile", "show", "--all")).stdout
    assert "Lisbon" in text_all and f"superseded by {porto['id']}" in text_all


def test_forgetting_the_newer_value_brings_back_the_older(run: Any, fake_models: Any, tmp_path: Path) -> None:
    ok(run("config", "set", "me", "Maya"))
    ok(run("ingest", moves_chat(tmp_path)))
    ok(run("profile", "refresh"))
    [porto] = [f for f in show_json(run)["facts"] if "Porto" in f["text"]]
    ok(run("profile", "forget", porto["id"]))
    [lisbon] = [f for f in show_json(run)["facts"] if f["slot"] == "residence"]
    assert "Lisbon" in lisbon["text"] and lisbon["status"] == "active" and lisbon["superseded_by"] == ""
    ok(run("profile", "refresh", "--rebuild"))
    residences = [f["text"] for f in show_json(run)["facts"] if f["slot"] == "residence"]
    assert len(residences) == 1 and "Lisbon" in residences[0], "the forgotten value stays forgotten"


def test_a_pinned_value_holds_its_slot(run: Any, fake_models: Any, tmp_path: Path) -> None:
    ok(run("config", "set", "me", "Maya"))
    pinned = json.loads(ok(run("profile", "pin", "I live in Gothenburg", "--json")).stdout)
    assert (pinned["slot"], pinned["value"]) == ("residence", "gothenburg")
    ok(run("ingest", moves_chat(tmp_path)))
    ok(run("profile", "refresh"))
    active = [f for f in show_json(run)["facts"] if f["slot"] == "residence"]
    assert [f["id"] for f in active] == [pinned["id"]]
    everything = json.loads(ok(run("profile", "show", "--all", "--json")).stdout)["facts"]
    assert {f["superseded_by"] for f in everything if f["slot"] == "residence" and f["status"] != "active"} == {
        pinned["id"]
    }


def test_pin(profiled: dict[str, Any], maya: Any) -> None:
    result = ok(maya("profile", "pin", "  I am   vegetarian ", "--json"))
    fact = json.loads(result.stdout)
    assert fact["text"] == "I am vegetarian" and fact["origin"] == "pinned" and fact["confidence"] == 1.0
    assert fact["evidence"] == [] and fact["status"] == "active"
    text = ok(maya("profile", "pin", "I play the trombone", "--category", "preferences"))
    assert text.stdout == ""
    assert "pinned " in text.stderr and "(preferences): I play the trombone" in text.stderr
    profile = show_json(maya)
    assert profile["version"] == 3
    pinned = {f["text"]: f for f in profile["facts"] if f["origin"] == "pinned"}
    assert set(pinned) == {"I am vegetarian", "I play the trombone"}
    assert pinned["I play the trombone"]["category"] == "preferences"
    assert f"- I am vegetarian  [{fact['id']} · pinned]" in ok(maya("profile", "show")).stdout
    again = json.loads(ok(maya("profile", "pin", "I am vegetarian", "--json")).stdout)
    assert again["id"] == fact["id"] and show_json(maya)["version"] == 3, "pinning twice changes nothing"


def test_pin_before_any_refresh(run: Any, fake_models: Any) -> None:
    fact = json.loads(ok(run("profile", "pin", "I am vegetarian", "--json")).stdout)
    profile = show_json(run)
    assert profile["version"] == 1 and [f["id"] for f in profile["facts"]] == [fact["id"]]


def test_pin_bad_input(profiled: dict[str, Any], maya: Any) -> None:
    assert_clean_error(
        maya("profile", "pin", "I like tea", "--category", "hobbies"), ExitCode.INPUT, "unknown category", "Hint: "
    )
    assert_clean_error(maya("profile", "pin", "   "), ExitCode.INPUT, "empty", "Hint: ")
    assert_clean_error(maya("profile", "pin", ""), ExitCode.INPUT, "empty")
    assert_clean_error(maya("profile", "pin", "x" * 501), ExitCode.INPUT, "at most 500")
    assert show_json(maya)["version"] == 1


def test_pin_refuses_the_style_category(profiled: dict[str, Any], maya: Any) -> None:
    result = maya("profile", "pin", "I write short messages", "--category", "style")
    assert_clean_error(result, ExitCode.INPUT, "unknown category")


def test_forget_a_fact(profiled: dict[str, Any], maya: Any) -> None:
    fact_id = profiled["added"][0]
    result = ok(maya("profile", "forget", fact_id, "--json"))
    forgotten = json.loads(result.stdout)["forgotten"]
    assert forgotten["id"] == fact_id
    profile = show_json(maya)
    assert profile["version"] == 2 and fact_id not in {f["id"] for f in profile["facts"]}
    assert len(profile["facts"]) == profiled["facts"] - 1
    assert_clean_error(maya("profile", "forget", fact_id), ExitCode.NOT_FOUND, "no fact", "Hint: ")


def test_forget_by_id_prefix(profiled: dict[str, Any], maya: Any) -> None:
    ids = profiled["added"]
    fact_id, prefix = next(
        (i, i[:n]) for n in range(2, 8) for i in ids if sum(other.startswith(i[:n]) for other in ids) == 1
    )
    result = ok(maya("profile", "forget", prefix.upper()))
    assert result.stderr.startswith(f"forgot {fact_id}: ")
    assert fact_id not in {f["id"] for f in show_json(maya)["facts"]}


def test_forget_unknown_or_ambiguous_id(profiled: dict[str, Any], maya: Any) -> None:
    assert_clean_error(
        maya("profile", "forget", "fzzzzzzz"), ExitCode.NOT_FOUND, "no fact with id 'fzzzzzzz'", "Hint: "
    )
    assert_clean_error(maya("profile", "forget", "f"), ExitCode.NOT_FOUND, "more than one fact")
    assert show_json(maya)["version"] == 1


def test_forget_empty_id_is_refused(run: Any, fake_models: Any) -> None:
    ok(run("profile", "pin", "I am vegetarian"))
    result = run("profile", "forget", "")
    assert result.exit_code in (ExitCode.INPUT, ExitCode.NOT_FOUND)
    assert len(show_json(run)["facts"]) == 1


def test_forget_is_not_undone_by_a_rebuild(profiled: dict[str, Any], maya: Any) -> None:
    fact_id = profiled["added"][0]
    text = next(f["text"] for f in show_json(maya)["facts"] if f["id"] == fact_id)
    ok(maya("profile", "forget", fact_id))
    ok(maya("profile", "refresh", "--rebuild"))
    assert text not in {f["text"] for f in show_json(maya)["facts"]}


# --- history, diff, path --------------------------------------------------------------------------


def test_history_and_diff(profiled: dict[str, Any], maya: Any) -> None:
    pinned = json.loads(ok(maya("profile", "pin", "I am vegetarian", "--json")).stdout)
    forgotten = profiled["added"][0]
    ok(maya("profile", "forget", forgotten))
    rows = ok(maya("profile", "history", "--json")).json_lines()
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert [r["reason"] for r in rows] == ["refresh", "pin", "forget"]
    assert [(r["added"], r["changed"], r["removed"]) for r in rows] == [
        (profiled["facts"], 0, 0),
        (1, 0, 0),
        (0, 0, 1),
    ]
    assert [r["facts"] for r in rows] == [profiled["facts"], profiled["facts"] + 1, profiled["facts"]]
    assert all(r["at"] for r in rows)
    text = ok(maya("profile", "history")).stdout.splitlines()
    assert len(text) == 3
    assert text[1].split()[:3] == ["2", rows[1]["at"], "pin"]

    last = json.loads(ok(maya("profile", "diff", "--json")).stdout)
    assert (last["from"], last["to"]) == (2, 3)
    assert [f["id"] for f in last["removed"]] == [forgotten] and last["added"] == last["changed"] == []
    since_first = json.loads(ok(maya("profile", "diff", "1", "--json")).stdout)
    assert (since_first["from"], since_first["to"]) == (1, 3)
    assert [f["id"] for f in since_first["added"]] == [pinned["id"]]
    assert [f["id"] for f in since_first["removed"]] == [forgotten]
    from_nothing = json.loads(ok(maya("profile", "diff", "0", "--json")).stdout)
    assert len(from_nothing["added"]) == profiled["facts"] and from_nothing["removed"] == []
    assert json.loads(ok(maya("profile", "diff", "3", "--json")).stdout) == {
        "from": 3,
        "to": 3,
        "added": [],
        "removed": [],
        "changed": [],
    }
    text = ok(maya("profile", "diff")).stdout
    assert text.startswith("version 2 -> 3\n") and f"- {forgotten} " in text
    assert ok(maya("profile", "diff", "3")).stdout.endswith("no changes\n")


def test_diff_bad_version(profiled: dict[str, Any], maya: Any) -> None:
    for version in ("2", "99"):
        result = maya("profile", "diff", version)
        assert_clean_error(result, ExitCode.NOT_FOUND, f"no profile version {version}", "pllm profile history")
        assert result.stdout == ""
    assert_clean_error(maya("profile", "diff", "--", "-1"), ExitCode.INPUT, "no profile version -1", "Hint: ")
    assert maya("profile", "diff", "two").exit_code == ExitCode.USAGE


def test_diff_shows_supersession(run: Any, fake_models: Any, tmp_path: Path) -> None:
    ok(run("config", "set", "me", "Maya"))
    chat = moves_chat(tmp_path)
    lines = chat.read_text(encoding="utf-8").splitlines()
    chat.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # Lisbon only
    ok(run("ingest", chat))
    ok(run("profile", "refresh"))
    chat.write_text("\n".join(lines) + "\n", encoding="utf-8")  # then Porto
    ok(run("ingest", chat))
    report = refresh_json(run)
    assert report["version"] == 2
    changes = json.loads(ok(run("profile", "diff", "--json")).stdout)
    [porto] = changes["added"]
    assert "Porto" in porto["text"]
    superseded = [c for c in changes["changed"] if c.get("status") == ["active", "superseded"]]
    assert len(superseded) == 1, changes
    assert "~ " in ok(run("profile", "diff")).stdout


def test_profile_path(run: Any, home: Path) -> None:
    assert ok(run("profile", "path")).stdout == f"{Paths(home).profile_file}\n"
    assert ok(run("--profile", "work", "profile", "path")).stdout == f"{Paths(home, 'work').profile_file}\n"


def test_profile_files_are_private(profiled: dict[str, Any], maya: Any, home: Path) -> None:
    paths = Paths(home)
    for path in (paths.profile_file, paths.profile_read_file, *paths.profile_history_dir.iterdir()):
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), path
    assert oct(paths.profile_history_dir.stat().st_mode & 0o777) == oct(0o700)


# --- memory forget and the profile ----------------------------------------------------------------


@pytest.fixture
def three_notes(run: Any, fake_models: Any, tmp_path: Path) -> dict[str, Path]:
    """a.md and b.md both say Maya loves hiking; only a.md mentions the bees, only c.md the maps."""
    folder = tmp_path / "three"
    folder.mkdir()
    hiking = "I love hiking in the mountains every summer."
    notes = {
        "a": f"{hiking}\n\nI keep bees on the roof of the old garage.\n",
        "b": f"{hiking}\n",
        "c": "I collect old maps of the Gothenburg harbour.\n",
    }
    paths = {}
    for name, text in notes.items():
        paths[name] = folder / f"{name}.md"
        paths[name].write_text(text, encoding="utf-8")
    ok(run("config", "set", "me", "Maya"))
    ok(run("ingest", folder))
    ok(run("profile", "refresh"))
    return paths


def facts_by_word(run: Any) -> dict[str, dict[str, Any]]:
    facts = show_json(run)["facts"]
    return {word: f for word in ("hiking", "bees", "maps") for f in facts if word in f["text"]}


def test_memory_forget_removes_facts_only_from_that_source(run: Any, three_notes: dict[str, Path]) -> None:
    before = facts_by_word(run)
    assert set(before) == {"hiking", "bees", "maps"}
    assert {e["source"] for e in before["hiking"]["evidence"]} == {str(three_notes["a"]), str(three_notes["b"])}
    result = ok(run("memory", "forget", three_notes["a"]))
    assert f"removed profile fact {before['bees']['id']}, which came only from it: " in result.stderr
    assert "hiking" not in result.stderr
    after = facts_by_word(run)
    assert set(after) == {"hiking", "maps"}
    assert [e["source"] for e in after["hiking"]["evidence"]] == [str(three_notes["b"])]
    assert after["hiking"]["id"] == before["hiking"]["id"]
    history = ok(run("profile", "history", "--json")).json_lines()
    assert history[-1]["reason"] == "memory forget" and history[-1]["removed"] == 1

    data = json.loads(ok(run("memory", "forget", three_notes["c"], "--json")).stdout)
    assert data["profile_facts_removed"] == [{"id": before["maps"]["id"], "text": before["maps"]["text"]}]
    assert data["profile_update_deferred"] is False
    assert set(facts_by_word(run)) == {"hiking"}


def test_memory_forget_of_a_source_without_facts(run: Any, three_notes: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "shopping.md"
    other.write_text("Milk, eggs, flour.\n", encoding="utf-8")
    ok(run("ingest", other))
    version = show_json(run)["version"]
    data = json.loads(ok(run("memory", "forget", other, "--json")).stdout)
    assert data["profile_facts_removed"] == []
    assert show_json(run)["version"] == version, "no new version when no fact is removed"


def test_memory_forget_without_a_profile(run: Any, fake_models: Any, tmp_path: Path, home: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("I keep bees on the roof of the old garage.\n", encoding="utf-8")
    ok(run("ingest", note))
    data = json.loads(ok(run("memory", "forget", note, "--json")).stdout)
    assert data["profile_facts_removed"] == [] and data["profile_update_deferred"] is False
    assert not Paths(home).profile_file.exists()


def test_memory_forget_while_the_profile_is_locked(
    run: Any, three_notes: dict[str, Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pllm_cli.cli.memory

    monkeypatch.setattr(pllm_cli.cli.memory, "PROFILE_WAIT_SECONDS", 0.2)
    before = facts_by_word(run)
    with held_lock(home):
        data = json.loads(ok(run("memory", "forget", three_notes["a"], "--json")).stdout)
        text = ok(run("memory", "forget", three_notes["c"]))
    assert data["forgotten"][0]["source"] == str(three_notes["a"])
    assert data["profile_facts_removed"] == [] and data["profile_update_deferred"] is True
    assert "leave it at the next refresh" in text.stderr
    assert set(facts_by_word(run)) == set(before), "the profile is left to the next refresh"


def test_refresh_after_a_deferred_memory_forget_removes_the_facts(
    run: Any, three_notes: dict[str, Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pllm_cli.cli.memory

    monkeypatch.setattr(pllm_cli.cli.memory, "PROFILE_WAIT_SECONDS", 0.0)
    with held_lock(home):
        ok(run("memory", "forget", three_notes["a"]))
    report = refresh_json(run)  # nothing new to read, only facts to drop
    assert len(report["removed"]) == 1
    assert set(facts_by_word(run)) == {"hiking", "maps"}


# --- the profile in the prompt --------------------------------------------------------------------


def test_ask_json_reports_the_profile(profiled: dict[str, Any], maya: Any, fake_models: Any) -> None:
    data = json.loads(ok(maya("ask", "--json", "What do I like to bake?")).stdout)
    profile = data["prompt"]["profile"]
    assert set(profile) == {"tokens", "facts_used", "facts_cut", "writing_style"}
    assert 0 < profile["tokens"] <= 256
    assert profile["tokens"] == data["prompt"]["tokens"]["profile"]
    assert profile["facts_used"] and set(profile["facts_used"]) <= set(profiled["added"])
    assert not set(profile["facts_used"]) & set(profile["facts_cut"])
    assert len(profile["facts_used"]) + len(profile["facts_cut"]) == profiled["facts"]
    assert profile["writing_style"] is False
    system = fake_models.calls[-1]["messages"][0].content
    assert "About Maya:" in system
    facts = {f["id"]: f for f in show_json(maya)["facts"]}
    for fact_id in profile["facts_used"]:
        assert facts[fact_id]["text"] in system


def test_ask_json_with_a_tiny_profile_budget(profiled: dict[str, Any], maya: Any, fake_models: Any) -> None:
    pinned = json.loads(ok(maya("profile", "pin", "I am vegetarian", "--json")).stdout)
    ok(maya("config", "set", "profile_tokens", "10"))
    data = json.loads(ok(maya("ask", "--json", "What do I like to bake?")).stdout)
    profile = data["prompt"]["profile"]
    assert profile["facts_used"] == [pinned["id"]]
    assert set(profile["facts_cut"]) == set(profiled["added"])
    assert 0 < profile["tokens"] <= 10
    assert data["prompt"]["profile_truncated"] is True
    assert "- I am vegetarian" in fake_models.calls[-1]["messages"][0].content


def test_ask_json_in_my_voice_uses_the_writing_style(profiled: dict[str, Any], maya: Any) -> None:
    data = json.loads(ok(maya("ask", "--json", "Write a reply to Jonas about dinner")).stdout)
    assert data["prompt"]["profile"]["writing_style"] is True


def test_ask_json_without_profile(profiled: dict[str, Any], maya: Any, fake_models: Any) -> None:
    data = json.loads(ok(maya("ask", "--json", "--no-profile", "What do I like to bake?")).stdout)
    assert data["prompt"]["profile"] == {"tokens": 0, "facts_used": [], "facts_cut": [], "writing_style": False}
    assert "About Maya" not in fake_models.calls[-1]["messages"][0].content


def test_ask_json_before_any_profile(maya: Any) -> None:
    data = json.loads(ok(maya("ask", "--json", "What do I like to bake?")).stdout)
    assert data["prompt"]["profile"]["tokens"] == 0 and data["prompt"]["profile"]["facts_used"] == []


def test_chat_profile_command_prints_the_profile(profiled: dict[str, Any], maya: Any) -> None:
    result = ok(maya("chat", input="/profile\n"))
    assert result.stdout.startswith("# Profile of Maya (version 1, ")


# --- personas -------------------------------------------------------------------------------------


@pytest.fixture
def work_persona(run: Any, fake_models: Any, tmp_path: Path) -> Path:
    note = tmp_path / "work" / "meadow.md"
    note.parent.mkdir()
    note.write_text("I review the rain garden planting plans with the city every Friday.\n", encoding="utf-8")
    ok(run("config", "set", "me", "Maya"))
    ok(run("--profile", "work", "ingest", note.parent))
    ok(run("--profile", "work", "profile", "refresh"))
    return note


def test_personas_list(run: Any, work_persona: Path, home: Path) -> None:
    rows = json.loads(ok(run("--profile", "work", "profiles", "list", "--json")).stdout)
    by_name = {r["name"]: r for r in rows}
    assert list(by_name) == ["default", "work"]
    assert by_name["work"]["active"] is True and by_name["default"]["active"] is False
    assert by_name["work"]["chunks"] == 1 and by_name["work"]["facts"] == 1 and by_name["work"]["profile_version"] == 1
    assert by_name["work"]["path"] == str(Paths(home, "work").persona_dir)
    assert by_name["default"]["chunks"] == by_name["default"]["facts"] == 0
    default = json.loads(ok(run("profiles", "list", "--json")).stdout)
    assert [r["name"] for r in default if r["active"]] == ["default"]
    text = ok(run("--profile", "work", "profiles", "list")).stdout.splitlines()
    assert text[0].startswith("  default") and text[1].startswith("* work")


def test_personas_do_not_see_each_other(run: Any, work_persona: Path, tmp_path: Path) -> None:
    assert_clean_error(run("profile", "show"), ExitCode.NOT_FOUND, "no profile yet")
    assert json.loads(ok(run("memory", "stats", "--json")).stdout)["chunks"] == 0
    assert_clean_error(run("memory", "search", "rain garden"), ExitCode.NOT_FOUND, "memory is empty")
    note = tmp_path / "home.md"
    note.write_text("I bake cardamom buns for the family every Saturday.\n", encoding="utf-8")
    ok(run("ingest", note))
    ok(run("profile", "refresh"))
    default_facts = [f["text"] for f in show_json(run)["facts"]]
    work_facts = [f["text"] for f in show_json(run, "--profile", "work")["facts"]]
    assert default_facts == ["Maya bake cardamom buns for the family every Saturday."]
    assert work_facts == ["Maya review the rain garden planting plans with the city every Friday."]
    hits = json.loads(ok(run("--profile", "work", "memory", "search", "cardamom", "--json")).stdout)["hits"]
    assert all("cardamom" not in h["text"] for h in hits)


def test_persona_from_env(run: Any, work_persona: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_PROFILE", "work")
    assert show_json(run)["version"] == 1


def test_personas_create(run: Any, home: Path) -> None:
    result = ok(run("profiles", "create", "personal"))
    assert "created persona personal" in result.stderr
    assert Paths(home, "personal").persona_dir.is_dir()
    assert oct(Paths(home, "personal").persona_dir.stat().st_mode & 0o777) == oct(0o700)
    assert "personal" in [r["name"] for r in json.loads(ok(run("profiles", "list", "--json")).stdout)]
    assert_clean_error(run("profiles", "create", "personal"), ExitCode.INPUT, "already exists", "Hint: ")


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x" * 65, "with space", "_under"])
def test_invalid_persona_names(run: Any, home: Path, name: str) -> None:
    assert_clean_error(run("profiles", "create", name), ExitCode.INPUT, "invalid persona name", "Hint: ")
    assert_clean_error(run("--profile", name, "status"), ExitCode.INPUT, "invalid persona name")
    assert_clean_error(run("profiles", "remove", name, "--yes"), ExitCode.INPUT, "invalid persona name")
    personas = home / "personas"
    assert not personas.exists() or [p.name for p in personas.iterdir()] == []
    assert not (home.parent / "x").exists()


def test_persona_name_with_a_trailing_newline_is_refused(run: Any, home: Path) -> None:
    result = run("profiles", "create", "work\n")
    assert result.exit_code == ExitCode.INPUT
    assert not (home / "personas" / "work\n").exists()


def test_personas_remove(run: Any, work_persona: Path, home: Path) -> None:
    persona_dir = Paths(home, "work").persona_dir
    refused = run("profiles", "remove", "work", input="")
    assert_clean_error(refused, ExitCode.INPUT, "deletes its memory and profile", "--yes")
    assert persona_dir.exists() and Paths(home, "work").profile_file.exists()
    result = ok(run("profiles", "remove", "work", "--yes"))
    assert "removed persona work (1 chunks, 1 facts)" in result.stderr
    assert not persona_dir.exists()
    assert work_persona.exists(), "the user's files are not touched"
    assert [r["name"] for r in json.loads(ok(run("profiles", "list", "--json")).stdout)] == ["default"]
    assert_clean_error(run("profiles", "remove", "work", "--yes"), ExitCode.NOT_FOUND, "no persona 'work'", "Hint: ")
    assert_clean_error(run("profiles", "remove", "nobody", "-y"), ExitCode.NOT_FOUND, "no persona 'nobody'")


# --- review findings: forgotten text leaves the history, `me` changes, damaged or newer profiles -------------


def test_a_forgotten_fact_leaves_no_text_in_the_history(run: Any, profiled: dict[str, Any], home: Path) -> None:
    fact = show_json(run)["facts"][0]
    ok(run("profile", "forget", fact["id"]))
    history = Paths(home).profile_history_dir
    snapshots = [path.read_text(encoding="utf-8") for path in history.glob("*.json")]
    assert len(snapshots) >= 2 and not any(fact["text"] in text for text in snapshots)
    assert any(fact["id"] in text for text in snapshots), "the id stays, so diffs still show what happened"


def test_naming_yourself_after_a_refresh_reads_memory_again(run: Any, fake_models: Any) -> None:
    ok(run("ingest", EXAMPLES / "chats"))
    first = refresh_json(run)
    ok(run("config", "set", "me", "Maya"))
    again = refresh_json(run)
    assert again["chunks_read"] == first["chunks_read"] > 0, "every chunk is read again as Maya's"
    assert again["statements"] > first["statements"]


def test_rebuild_recovers_a_damaged_profile(run: Any, profiled: dict[str, Any], home: Path) -> None:
    Paths(home).profile_file.write_text("{ damaged", encoding="utf-8")
    assert_clean_error(run("profile", "show"), ExitCode.STORE, "damaged", "--rebuild")
    rebuilt = json.loads(ok(run("profile", "refresh", "--rebuild", "--json")).stdout)
    assert rebuilt["saved"] and rebuilt["facts"] > 0
    assert rebuilt["version"] > profiled["version"], "versions go on after the damaged one"
    ok(run("profile", "show"))


def test_a_profile_from_a_newer_pllm_is_not_called_damaged(run: Any, profiled: dict[str, Any], home: Path) -> None:
    path = Paths(home).profile_file
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "format": 99}), encoding="utf-8")
    assert_clean_error(run("profile", "show"), ExitCode.STORE, "newer pllm", "upgrade")
