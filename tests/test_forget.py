"""pllm memory forget by conversation, speaker and date: gone from every index, and kept out of later ingests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pllm_cli.errors import ExitCode

MESSAGES = [
    ("family", "m1", "Maya", "2024-01-10T09:00:00+01:00", "the secret family recipe uses saffron"),
    ("family", "m2", "Elin", "2024-01-10T09:05:00+01:00", "Elin says the marzipan comes from Mamma"),
    ("work", "m3", "Karin", "2024-03-01T10:00:00+01:00", "Karin wants the rain garden drawings by Friday"),
    ("work", "m4", "Maya", "2024-03-01T10:02:00+01:00", "Maya will send the drawings on Thursday"),
]


@pytest.fixture
def chat(tmp_path: Path, run: Any, fake_models: Any) -> Path:
    path = tmp_path / "chat.jsonl"
    rows = [dict(zip(("conversation", "id", "speaker", "time", "text"), m, strict=True)) for m in MESSAGES]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert run("ingest", str(path)).exit_code == 0
    return path


def on_disk(run: Any) -> bytes:
    home = Path(json.loads(run("status", "--json").stdout)["paths"]["home"])
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def searchable(run: Any, query: str) -> str:
    """The texts of every hit for `query`."""
    hits = json.loads(run("memory", "search", query, "--json", "--k", "10").stdout)["hits"]
    return "\n".join(hit["text"] for hit in hits)


@pytest.mark.parametrize(
    ("args", "gone", "kept"),
    [
        (["--conversation", "family"], ["saffron", "marzipan"], ["rain garden", "Thursday"]),
        (["--speaker", "karin"], ["rain garden drawings by Friday"], ["saffron", "Thursday"]),
        (["--before", "2024-02-01"], ["saffron", "marzipan"], ["rain garden", "Thursday"]),
    ],
)
def test_forget_leaves_no_trace_and_survives_reingest(
    chat: Path, run: Any, args: list[str], gone: list[str], kept: list[str]
) -> None:
    result = run("memory", "forget", *args, "--json")
    assert result.exit_code == 0, result.stderr
    [rule] = json.loads(result.stdout)["rules"]
    assert rule["sources"][0]["rebuilt"] is True
    for _ in range(2):  # now, and after ingesting the unchanged file again with --redact (a forced rebuild)
        blobs = on_disk(run)
        for text in gone:
            assert text.encode() not in blobs
            assert text not in searchable(run, text)
        for text in kept:
            assert text.encode() in blobs
        assert run("ingest", str(chat), "--redact").exit_code == 0


def test_forget_when_the_file_is_gone_drops_the_chunks(chat: Path, run: Any) -> None:
    chat.unlink()
    result = run("memory", "forget", "--conversation", "family", "--json")
    [rule] = json.loads(result.stdout)["rules"]
    assert rule["sources"][0]["rebuilt"] is False
    assert b"saffron" not in on_disk(run)


def test_forget_by_speaker_when_the_file_is_gone_leaves_no_trace_in_the_next_window(
    tmp_path: Path, run: Any, fake_models: Any
) -> None:
    """Each chat window is searched with the turn before it: forgetting that turn clears it there too."""
    long = "Karin wants the quince orchard drawings " + "and more words " * 12
    rows = [
        {"conversation": "work", "id": "k1", "speaker": "Karin", "time": "2024-03-01T10:00:00", "text": long},
        {"conversation": "work", "id": "k2", "speaker": "Maya", "time": "2024-03-01T10:01:00", "text": "sure, Friday"},
    ]
    path = tmp_path / "work.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert run("ingest", str(path)).exit_code == 0
    assert "quince" in json.dumps(json.loads(run("memory", "search", "Friday", "--json").stdout))  # the context
    path.unlink()
    assert run("memory", "forget", "--speaker", "karin").exit_code == 0
    assert b"quince" not in on_disk(run)
    assert "sure, Friday" in searchable(run, "Friday")


def test_forget_needs_something_to_forget(run: Any) -> None:
    assert run("memory", "forget").exit_code == ExitCode.INPUT
    assert run("memory", "forget", "--before", "last week").exit_code == ExitCode.INPUT
