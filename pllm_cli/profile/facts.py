"""Facts about the user: what the profile is made of, each with where it came from."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

CATEGORIES = ("identity", "preferences", "relationships", "goals", "routines", "work")
CATEGORY_TITLES = {
    "identity": "Identity",
    "preferences": "Preferences",
    "relationships": "Relationships",
    "goals": "Goals and plans",
    "routines": "Routines",
    "work": "Skills and work",
    "style": "Writing style",
}
Origin = Literal["self", "reported", "pinned"]
Status = Literal["active", "superseded"]


@dataclass(frozen=True)
class Evidence:
    """One place a fact was found: the chunk, the message(s), the sentence, when and by whom it was said."""

    chunk_id: str
    source: str
    quote: str
    message_ids: tuple[str, ...] = ()
    said_at: str = ""  # when it was said ("2026-01-27 21:15"), or when its source was ingested
    speaker: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["message_ids"] = list(self.message_ids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(**{**data, "message_ids": tuple(data.get("message_ids", ()))})


@dataclass(frozen=True)
class Fact:
    id: str
    category: str
    text: str
    origin: Origin
    evidence: tuple[Evidence, ...] = ()
    first_seen: str = ""
    last_confirmed: str = ""
    confidence: float = 0.5
    status: Status = "active"
    superseded_by: str = ""
    slot: str = ""  # for one-valued facts ("residence", "job"...): a newer value supersedes an older one
    value: str = ""
    vector: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @staticmethod
    def make_id(category: str, text: str, salt: str = "") -> str:
        return "f" + hashlib.sha256(f"{category}\0{text}\0{salt}".encode()).hexdigest()[:7]

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def reported_by(self) -> str:
        """Who told: the speakers of its evidence, for a fact reported by others."""
        if self.origin != "reported":
            return ""
        return ", ".join(dict.fromkeys(e.speaker for e in self.evidence if e.speaker))

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(e.source for e in self.evidence))

    def with_(self, **changes: Any) -> Fact:
        return replace(self, **changes)

    def to_dict(self, vectors: bool = False) -> dict[str, Any]:
        data = {
            "id": self.id,
            "category": self.category,
            "text": self.text,
            "origin": self.origin,
            "reported_by": self.reported_by,
            "status": self.status,
            "superseded_by": self.superseded_by,
            "confidence": round(self.confidence, 3),
            "first_seen": self.first_seen,
            "last_confirmed": self.last_confirmed,
            "slot": self.slot,
            "value": self.value,
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if vectors:
            data["vector"] = [round(v, 5) for v in self.vector]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fact:
        values = {k: v for k, v in data.items() if k != "reported_by"}
        values["evidence"] = tuple(Evidence.from_dict(e) for e in data.get("evidence", ()))
        values["vector"] = tuple(data.get("vector", ()))
        return cls(**values)
