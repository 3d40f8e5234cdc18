"""--redact masks personal numbers and secrets before anything is embedded or stored: the raw values are found
nowhere under PLLM_HOME afterwards, neither in SQLite (with its WAL) nor in Chroma's files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RAW = {
    "email": "anna.berg@example.org",
    "phone": "+46 70 123 45 67",
    "card": "4539 1488 0343 6467",
    "iban": "SE45 5000 0000 0583 9825 7466",
    "secret": "sk-proj-4f9Xk2Lq8Zr7Tn3Vb6Wc1Ye5Ud0Hs",
}


def test_redacted_values_never_reach_the_disk(tmp_path: Path, run: Any, fake_models: Any) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "contacts.md").write_text(
        "# Contacts\n\n" + "\n\n".join(f"My {kind} is {value} for the trip." for kind, value in RAW.items()),
        encoding="utf-8",
    )
    chat = {"conversation": "c", "id": "m1", "speaker": "Anna", "time": "", "text": f"mail me: {RAW['email']}"}
    (notes / "chat.jsonl").write_text(json.dumps(chat) + "\n", encoding="utf-8")
    result = run("ingest", str(notes), "--redact", "--json")
    assert result.exit_code == 0, result.stderr
    home = Path(json.loads(run("status", "--json").stdout)["paths"]["home"])
    blobs = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert b"for the trip" in blobs  # the text itself is stored
    for value in RAW.values():
        assert value.encode() not in blobs
    for placeholder in (b"[email]", b"[phone]", b"[card]", b"[iban]", b"[secret]"):
        assert placeholder in blobs


def test_turning_redaction_on_reingests_unchanged_files(tmp_path: Path, run: Any, fake_models: Any) -> None:
    (tmp_path / "n.md").write_text(f"# N\n\nwrite to {RAW['email']}\n", encoding="utf-8")
    assert json.loads(run("ingest", str(tmp_path), "--json").stdout)["summary"]["added"] == 1
    assert json.loads(run("ingest", str(tmp_path), "--json", "--redact").stdout)["summary"]["updated"] == 1
    assert json.loads(run("ingest", str(tmp_path), "--json", "--redact").stdout)["summary"]["unchanged"] == 1
