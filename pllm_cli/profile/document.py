"""The profile file: markdown with one `## Section` per aspect; read and written atomically."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pllm_cli.errors import NotFoundError
from pllm_cli.paths import write_private_text

_SECTION = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)


@dataclass
class Profile:
    title: str
    note: str = ""
    sections: dict[str, str] = field(default_factory=dict)

    def to_markdown(self) -> str:
        parts = [f"# {self.title}"]
        if self.note:
            parts.append(self.note)
        parts += [f"## {name}\n\n{text.strip()}" for name, text in self.sections.items()]
        return "\n\n".join(parts) + "\n"

    def prompt_text(self) -> str:
        """The profile as it goes into a prompt: the sections, without the file's title and note."""
        return "\n".join(f"{name}: {' '.join(text.split())}" for name, text in self.sections.items() if text.strip())

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "sections": self.sections}

    @classmethod
    def parse(cls, text: str) -> Profile:
        head, *rest = _SECTION.split(text)
        title_line, _, note = head.strip().partition("\n")
        sections = {rest[i].strip(): rest[i + 1].strip() for i in range(0, len(rest) - 1, 2)}
        return cls(title=title_line.lstrip("# ").strip(), note=note.strip(), sections=sections)


def load_profile(path: Path) -> Profile:
    if not path.exists():
        raise NotFoundError("there is no profile yet", hint="build it from your memory: pllm profile build")
    return Profile.parse(path.read_text(encoding="utf-8"))


def load_profile_text(path: Path) -> str:
    """The prompt text of the profile, or "" when none has been built."""
    return load_profile(path).prompt_text() if path.exists() else ""


def save_profile(path: Path, profile: Profile) -> None:
    write_private_text(path, profile.to_markdown())
