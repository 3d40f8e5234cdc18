"""Personas: isolated memories and profiles under one home ("work", "personal"), chosen with --profile."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pllm_cli.errors import InputError, NotFoundError
from pllm_cli.locking import exclusive, memory_lock
from pllm_cli.paths import DEFAULT_PERSONA, Paths, ensure_private_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"invalid persona name {name!r}",
            hint="use letters, digits, '-', '_' or '.', starting with a letter or digit: work, personal",
        )
    return name


@dataclass(frozen=True)
class Persona:
    name: str
    path: Path
    chunks: int
    facts: int
    profile_version: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _count_chunks(index: Path) -> int:
    if not index.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])
    except sqlite3.Error:
        return 0


def _profile_counts(path: Path) -> tuple[int, int]:
    if not path.exists():
        return 0, 0
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return 0, 0
    active = sum(1 for fact in data.get("facts", []) if fact.get("status") == "active")
    return active, int(data.get("version", 0))


def describe(paths: Paths) -> Persona:
    facts, version = _profile_counts(paths.profile_file)
    return Persona(paths.persona, paths.persona_dir, _count_chunks(paths.memory_dir / "index.sqlite3"), facts, version)


def list_personas(root: Path) -> list[Persona]:
    """Every persona under `root` (the default one even before it holds anything)."""
    folder = root / "personas"
    names = {p.name for p in folder.iterdir() if p.is_dir()} if folder.exists() else set()
    return [describe(Paths(root, name)) for name in sorted(names | {DEFAULT_PERSONA})]


def create(root: Path, name: str) -> Persona:
    paths = Paths(root, check_name(name))
    if paths.persona_dir.exists():
        raise InputError(f"persona {name!r} already exists", hint=f"use it: pllm --profile {name} ...")
    ensure_private_dir(paths.persona_dir)
    return describe(paths)


def remove(root: Path, name: str, wait: float = 0.0) -> Persona:
    """Delete a persona's memory and profile, for good: not under an ingest or a refresh (its memory lock,
    then its profile lock: the order locking.py sets)."""
    paths = Paths(root, check_name(name))
    if not paths.persona_dir.exists():
        raise NotFoundError(f"there is no persona {name!r}", hint="see them: pllm profiles list")
    with (
        memory_lock(paths, wait),
        exclusive(paths.profile_lock_file, "changing this persona's profile", wait=wait),
    ):
        persona = describe(paths)
        shutil.rmtree(paths.persona_dir)
    return persona
