"""llama.cpp's KV cache of a prompt's fixed beginning, kept on disk for the next process.

Every personal prompt starts the same way, question after question: the system prompt and the part of the
profile that does not depend on the question (pinned facts and the core facts). A cold `pllm ask` would spend
a third of its prompt time evaluating that again; instead the first process to evaluate a beginning stores
the model's state after it here, and the next restores it in milliseconds and evaluates only the rest.

One file per beginning, named by a hash of the model's identity and the beginning's tokens; the file repeats
both, and a file that does not match them exactly is never used. The files hold the profile in the model's
encoding, so they are private (0600), few (the newest KEEP), and all removed whenever the profile changes
(`clear`), so a forgotten fact does not linger here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pllm_cli.paths import ensure_private_dir

MAGIC = b"PLLM-KV1"
SUFFIX = ".kv"
KEEP = 8  # beginnings kept: a few personas and profile versions; each is a few MB
HEADER = struct.Struct("<I")  # the length of the JSON header that follows MAGIC


@dataclass(frozen=True)
class PrefixCache:
    directory: Path

    def file_for(self, model_key: str, tokens: Sequence[int]) -> Path:
        digest = hashlib.sha256(f"{model_key}\n{','.join(map(str, tokens))}".encode()).hexdigest()
        return self.directory / f"{digest[:32]}{SUFFIX}"

    def load(self, model_key: str, tokens: Sequence[int]) -> bytes | None:
        """The state stored for exactly this model and these tokens; None if there is none (or it is damaged)."""
        path = self.file_for(model_key, tokens)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        header_end = len(MAGIC) + HEADER.size
        if len(data) < header_end or not data.startswith(MAGIC):
            self._discard(path)
            return None
        (length,) = HEADER.unpack_from(data, len(MAGIC))
        try:
            header = json.loads(data[header_end : header_end + length])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("model") != model_key or header.get("tokens") != list(tokens):
            self._discard(path)
            return None
        state = data[header_end + length :]
        if len(state) != header.get("bytes"):
            self._discard(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: kept when older ones are pruned
        return state

    def save(self, model_key: str, tokens: Sequence[int], state: bytes) -> None:
        """Store `state` for these tokens atomically (0600); then keep only the newest KEEP files. A cache that
        cannot be written (full disk, read-only home) is no error: the next process evaluates the tokens again."""
        path = self.file_for(model_key, tokens)
        header = json.dumps({"model": model_key, "tokens": list(tokens), "bytes": len(state)}).encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            ensure_private_dir(self.directory)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + HEADER.pack(len(header)) + header)
                handle.write(state)
            os.replace(tmp, path)
        except OSError:
            self._discard(tmp)
            return
        self.prune()

    def prune(self, keep: int = KEEP) -> None:
        files = sorted(self.files(), key=_mtime, reverse=True)
        for old in files[keep:]:
            self._discard(old)

    def clear(self) -> None:
        """Remove every stored beginning (the profile changed: what they hold may be gone from it)."""
        for path in self.files():
            self._discard(path)

    def files(self) -> list[Path]:
        try:
            return [p for p in self.directory.iterdir() if p.suffix == SUFFIX and p.is_file()]
        except OSError:
            return []

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
