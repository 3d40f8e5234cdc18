"""Where pllm keeps things: one root (PLLM_HOME overrides it), resolved at call time."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PERSONA = "default"


def home() -> Path:
    """The root of everything pllm stores: $PLLM_HOME, else the platform's user data directory."""
    override = os.environ.get("PLLM_HOME")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("pllm", appauthor=False))


@dataclass(frozen=True)
class Paths:
    """Every path pllm uses, for one home and one persona."""

    root: Path
    persona: str = DEFAULT_PERSONA

    @classmethod
    def resolve(cls, root: Path | None = None, persona: str | None = None) -> Paths:
        return cls(root or home(), persona or os.environ.get("PLLM_PROFILE") or DEFAULT_PERSONA)

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def persona_dir(self) -> Path:
        return self.root / "personas" / self.persona

    @property
    def memory_dir(self) -> Path:
        return self.persona_dir / "memory"

    @property
    def profile_file(self) -> Path:
        return self.persona_dir / "profile.json"

    @property
    def profile_read_file(self) -> Path:
        """The ids of the memory chunks the profile has read."""
        return self.persona_dir / "profile-read.txt"

    @property
    def profile_history_dir(self) -> Path:
        return self.persona_dir / "profile-history"

    @property
    def profile_lock_file(self) -> Path:
        return self.persona_dir / "profile.lock"

    @property
    def memory_lock_file(self) -> Path:
        """Held by whatever writes this persona's memory (locking.memory_lock). Beside memory/, not in it, so
        that replacing the memory folder as a whole never replaces the lock with it."""
        return self.persona_dir / "memory.lock"

    @property
    def last_answer_file(self) -> Path:
        """The last answer of `ask` or of a chat turn, for `pllm feedback` to judge (feedback.py)."""
        return self.persona_dir / "last-answer.json"

    @property
    def feedback_file(self) -> Path:
        """The user's judgements of answers and their corrections (feedback.py)."""
        return self.persona_dir / "feedback.json"

    @property
    def feedback_lock_file(self) -> Path:
        return self.persona_dir / "feedback.lock"

    @property
    def socket_file(self) -> Path:
        """Where `pllm serve` listens: one server per home, for all its personas."""
        return self.root / "serve.sock"

    @property
    def serve_lock_file(self) -> Path:
        """Held by the running `pllm serve` of this home (with its pid inside): a second one is refused."""
        return self.root / "serve.lock"

    @property
    def serve_token_file(self) -> Path:
        """The bearer token `pllm serve --http` asks of every HTTP request (0600, made on first use)."""
        return self.root / "serve-token"

    @property
    def prefix_cache_dir(self) -> Path:
        """llama.cpp's state after the prompts' fixed beginnings (prefix_cache.py), for all personas."""
        return self.root / "prefix-cache"

    def as_dict(self) -> dict[str, str]:
        return {
            "home": str(self.root),
            "config": str(self.config_file),
            "persona": str(self.persona_dir),
            "memory": str(self.memory_dir),
            "profile": str(self.profile_file),
        }


def home_problem(root: Path) -> str:
    """Why `root` cannot be pllm's home ("" if it can): a file, or a folder that cannot be created."""
    if root.exists():
        return "" if root.is_dir() else f"{root} is a file, not a folder"
    parent = root.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {root}: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {root}: {parent} is not writable"
    return ""


def tighten_home(root: Path) -> None:
    """Make an existing home 0700 (one made by pllm is already), if it is the user's and looks like pllm's
    (it holds config.toml or personas/, or is empty): `--home ~` must not lock up the user's own folder."""
    try:
        info = root.stat()
        if not root.is_dir() or info.st_uid != os.geteuid() or info.st_mode & 0o077 == 0:
            return
        ours = (root / "config.toml").exists() or (root / "personas").is_dir() or not any(root.iterdir())
        if ours:
            os.chmod(root, 0o700)
    except OSError:  # not ours to change, or gone: the command itself will say what is wrong
        return


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents inside it) readable by the user only (0700)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path


def make_tree_private(root: Path) -> None:
    """Directories 0700 and files 0600 below `root`: personal data is for its owner only."""
    if not root.exists():
        return
    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        # A file listed a moment ago may be gone: a reader tidies up while a writer removes a temporary file.
        for name in dirnames:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(full, 0o600)


def write_private_text(path: Path, text: str) -> None:
    """Write `text` atomically (temp file + rename) with mode 0600."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
