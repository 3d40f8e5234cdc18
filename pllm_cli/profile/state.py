"""The profile on disk: facts, writing style and version in profile.json; the chunk ids already read in
profile-read.txt; one snapshot per version in profile-history/.

Every file is replaced atomically (temp file, fsync, rename), so a crash at any point leaves the old profile
whole. The order makes a crash harmless: the snapshot first, then profile.json, then the list of chunks read.
A crash between the last two only makes the next refresh read those chunks again, and merging is idempotent.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pllm_cli.errors import NotFoundError, StoreError
from pllm_cli.paths import Paths, ensure_private_dir, write_private_text
from pllm_cli.prefix_cache import PrefixCache
from pllm_cli.profile.facts import Fact

FORMAT_VERSION = 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def encode_vector(vector: Any) -> str:
    import numpy

    return base64.b64encode(numpy.asarray(vector, dtype=numpy.float16).tobytes()).decode("ascii")


def decode_vector(text: str) -> tuple[float, ...]:
    import numpy

    return tuple(float(v) for v in numpy.frombuffer(base64.b64decode(text), dtype=numpy.float16))


@dataclass
class ProfileState:
    version: int = 0
    updated_at: str = ""
    name: str = ""
    embedding_model: str = ""
    facts: list[Fact] = field(default_factory=list)
    style: dict[str, Any] = field(default_factory=dict)
    forgotten: list[tuple[float, ...]] = field(default_factory=list)  # vectors of facts the user forgot
    read: set[str] = field(default_factory=set)  # ids of the memory chunks already read
    me: list[str] = field(default_factory=list)  # the user's names when they were read

    @property
    def active(self) -> list[Fact]:
        return [f for f in self.facts if f.active]

    def find(self, fact_id: str) -> Fact:
        """The fact with this id (or a unique prefix of it)."""
        wanted = fact_id.strip().lower()
        if not wanted:
            raise NotFoundError("no fact id given", hint="see the ids: pllm profile show")
        matches = [f for f in self.facts if f.id == wanted] or [f for f in self.facts if f.id.startswith(wanted)]
        if len(matches) != 1:
            problem = "no fact" if not matches else "more than one fact"
            raise NotFoundError(f"{problem} with id {fact_id!r} in the profile", hint="see the ids: pllm profile show")
        return matches[0]

    def replace_fact(self, fact: Fact) -> None:
        self.facts = [fact if f.id == fact.id else f for f in self.facts]

    def to_dict(self) -> dict[str, Any]:
        facts = []
        for fact in self.facts:
            data = fact.to_dict()
            data.pop("reported_by")
            data["vector"] = encode_vector(fact.vector) if fact.vector else ""
            facts.append(data)
        return {
            "format": FORMAT_VERSION,
            "version": self.version,
            "updated_at": self.updated_at,
            "name": self.name,
            "embedding_model": self.embedding_model,
            "me": self.me,
            "style": self.style,
            "forgotten": [encode_vector(v) for v in self.forgotten],
            "facts": facts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileState:
        facts = []
        for item in data.get("facts", []):
            vector = item.get("vector") or ""
            facts.append(Fact.from_dict({**item, "vector": decode_vector(vector) if vector else ()}))
        return cls(
            version=int(data.get("version", 0)),
            updated_at=str(data.get("updated_at", "")),
            name=str(data.get("name", "")),
            embedding_model=str(data.get("embedding_model", "")),
            me=[str(n) for n in data.get("me", [])],
            facts=facts,
            style=dict(data.get("style") or {}),
            forgotten=[decode_vector(v) for v in data.get("forgotten", [])],
        )


SUMMARY_KEYS = ("id", "category", "text", "origin", "status", "superseded_by", "confidence")


def fact_summaries(facts: list[Fact]) -> list[dict[str, Any]]:
    """What a version keeps of each fact (and what `profile diff` compares)."""
    return [{k: v for k, v in fact.to_dict().items() if k in SUMMARY_KEYS} for fact in facts]


def snapshot(state: ProfileState, reason: str, report: dict[str, Any]) -> dict[str, Any]:
    """What profile-history/ keeps of a version: the facts' ids, texts and status, and why it changed."""
    return {
        "version": state.version,
        "at": state.updated_at,
        "reason": reason,
        "report": report,
        "facts": fact_summaries(state.facts),
    }


class ProfileFiles:
    """Reading and writing one persona's profile files."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @property
    def exists(self) -> bool:
        return self.paths.profile_file.exists()

    def load(self, *, required: bool = False) -> ProfileState:
        path = self.paths.profile_file
        if not path.exists():
            if required:
                raise NotFoundError("there is no profile yet", hint="build it from your memory: pllm profile refresh")
            return ProfileState()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if int(data.get("format", FORMAT_VERSION)) > FORMAT_VERSION:
                raise StoreError(
                    f"the profile {path} was written by a newer pllm",
                    hint="upgrade pllm (pip install -U pllm); do not rebuild, that would lose it",
                )
            state = ProfileState.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StoreError(
                f"the profile file {path} is damaged ({exc.__class__.__name__})",
                hint="rebuild it from memory: pllm profile refresh --rebuild",
            ) from None
        read_file = self.paths.profile_read_file
        if read_file.exists():
            state.read = set(read_file.read_text(encoding="utf-8").split())
        return state

    def save(self, state: ProfileState, reason: str, report: dict[str, Any]) -> None:
        """Write `state` as a new version: history snapshot, then profile.json, then the chunks read."""
        state.version += 1
        state.updated_at = now()
        history = ensure_private_dir(self.paths.profile_history_dir)
        write_private_text(history / f"{state.version:06d}.json", json.dumps(snapshot(state, reason, report)))
        write_private_text(self.paths.profile_file, json.dumps(state.to_dict(), ensure_ascii=False, indent=1))
        write_private_text(self.paths.profile_read_file, "\n".join(sorted(state.read)) + "\n")
        PrefixCache(self.paths.prefix_cache_dir).clear()  # the model's encoding of the old profile goes too

    def history(self, *, all_saved: bool = False) -> list[dict[str, Any]]:
        """Every saved version up to the current one, oldest first (a snapshot left by a crash is ignored,
        unless `all_saved`)."""
        folder = self.paths.profile_history_dir
        current = 10**9 if all_saved else self.load().version if self.exists else 0
        versions = []
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            if path.stem.isdigit() and int(path.stem) <= current:
                versions.append(json.loads(path.read_text(encoding="utf-8")))
        return versions

    def scrub(self, fact_id: str) -> None:
        """Remove a forgotten fact's text from every snapshot (its id and status stay, for the diffs)."""
        folder = self.paths.profile_history_dir
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            data = json.loads(path.read_text(encoding="utf-8"))
            facts = data.get("facts", [])
            if any(f.get("id") == fact_id for f in facts):
                data["facts"] = [{**f, "text": "(forgotten)"} if f.get("id") == fact_id else f for f in facts]
                write_private_text(path, json.dumps(data))

    def version(self, number: int) -> dict[str, Any]:
        path = self.paths.profile_history_dir / f"{number:06d}.json"
        if number < 1 or not path.exists() or number > self.load().version:
            raise NotFoundError(f"there is no profile version {number}", hint="see them: pllm profile history")
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
