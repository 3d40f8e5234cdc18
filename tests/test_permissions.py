"""Personal data is for its owner only: the memory folder 0700, every file pllm writes 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pllm_cli.paths import Paths


@pytest.fixture
def ingested_home(home: Path, tmp_path: Path, run, fake_models) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """An ingest and a `config set` through the CLI under a permissive umask (the usual 022)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nFirst note about tea.\n", encoding="utf-8")
    (notes / "b.txt").write_text("Second note about running.\n", encoding="utf-8")
    old = os.umask(0o022)
    try:
        assert run("ingest", notes).exit_code == 0
        assert run("config", "set", "me", "Maya").exit_code == 0
    finally:
        os.umask(old)
    yield home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = mode(path)
    return found


def test_memory_dir_and_its_databases_are_private(ingested_home: Path) -> None:
    memory = Paths(ingested_home).memory_dir
    assert mode(memory) == 0o700
    assert mode(memory / "chroma") == 0o700
    assert mode(memory / "index.sqlite3") == 0o600
    assert mode(memory / "chroma" / "chroma.sqlite3") == 0o600
    assert mode(ingested_home / "config.toml") == 0o600


def test_every_file_below_memory_is_0600_and_every_folder_0700(ingested_home: Path) -> None:
    memory = Paths(ingested_home).memory_dir
    found = tree(memory)
    assert any(name.endswith(".bin") for name in found), "Chroma wrote its vector segment"
    wrong = {
        name: oct(bits)
        for name, bits in found.items()
        if bits != (0o700 if (memory / name).is_dir() else 0o600) and not (memory / name).is_symlink()
    }
    assert wrong == {}


def test_home_and_persona_folders_are_0700(ingested_home: Path) -> None:
    paths = Paths(ingested_home)
    modes = {str(p): oct(mode(p)) for p in (ingested_home, paths.persona_dir.parent, paths.persona_dir)}
    assert set(modes.values()) == {oct(0o700)}, modes
