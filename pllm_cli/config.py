"""Settings: defaults < config.toml < PLLM_* environment < command-line flags.

Every key is declared once in SETTINGS with its type, default, environment variable and help; validation
names the bad key and where it came from.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pllm_cli.errors import ConfigError
from pllm_cli.paths import write_private_text


@dataclass(frozen=True)
class Setting:
    key: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False  # shown as "(set)" by `pllm config show`

    @property
    def env_var(self) -> str:
        return "PLLM_" + self.key.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("model", str, "", "Path to a GGUF chat model; empty means the bundled SmolLM2-135M-Instruct."),
    Setting(
        "embedding_model",
        str,
        "",
        "Path to a sentence-transformers model; empty means bundled all-MiniLM-L6-v2.",
    ),
    Setting("context_size", int, 4096, "Context window (tokens) the chat model is loaded with.", 512, 131072),
    Setting("max_tokens", int, 256, "Longest answer, in tokens.", 1, 32768),
    Setting(
        "temperature",
        float,
        0.0,
        "Sampling temperature; 0 is greedy (most faithful to your notes).",
        0.0,
        2.0,
    ),
    Setting(
        "steer",
        float,
        0.0,
        "Context steering strength: how much more the answer follows your profile and memories than the model's "
        "own knowledge; 0 is plain decoding (docs/answers.md).",
        0.0,
        10.0,
    ),
    Setting("k", int, 12, "Most memories in the prompt for a question (memory_tokens decides first).", 1, 100),
    Setting("memory_tokens", int, 512, "Token budget for retrieved memories in a prompt.", 0, 65536),
    Setting("profile_tokens", int, 256, "Token budget for the profile in a prompt.", 0, 65536),
    Setting(
        "threads", int, 0, "CPU threads for the chat model; 0: one per core that other programs leave free.", 0, 1024
    ),
    Setting(
        "me",
        str,
        "",
        "Your name(s) as they appear in chats and mail, comma-separated: your own messages are marked as yours.",
    ),
    Setting("redact", bool, False, "Mask e-mail addresses, phone, card and IBAN numbers and secrets on ingest."),
    Setting(
        "lock_wait",
        float,
        0.0,
        "Seconds a command that changes memory or the profile waits for another pllm doing so (--wait); "
        "0 exits with code 10 at once.",
        0.0,
        86400.0,
    ),
    Setting(
        "serve_queue",
        int,
        4,
        "Requests `pllm serve` keeps waiting behind the one it is answering; one more is refused as busy "
        "(exit code 11).",
        1,
        1024,
    ),
    Setting(
        "memory_url",
        str,
        "",
        "A Chroma server (`chroma run`) holding memory's vectors and records, http://host:port[/database]; "
        "empty: the embedded store in the home (docs/scale.md).",
    ),
    Setting(
        "memory_token",
        str,
        "",
        "Sent as `Authorization: Bearer TOKEN` to memory_url (for a server behind an authenticating proxy).",
        secret=True,
    ),
    Setting(
        "model_url",
        str,
        "",
        "An OpenAI-compatible server (llama.cpp's llama-server, `python -m llama_cpp.server`, vLLM, Ollama) that "
        "runs the chat model, http://host:port; empty: the GGUF model in this process (docs/scale.md).",
    ),
    Setting(
        "model_token",
        str,
        "",
        "Sent as `Authorization: Bearer TOKEN` to model_url (the server's API key).",
        secret=True,
    ),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    model: str = ""
    embedding_model: str = ""
    context_size: int = 4096
    max_tokens: int = 256
    temperature: float = 0.0
    steer: float = 0.0
    k: int = 12
    memory_tokens: int = 512
    profile_tokens: int = 256
    threads: int = 0
    me: str = ""
    redact: bool = False
    lock_wait: float = 0.0
    serve_queue: int = 4
    memory_url: str = ""
    memory_token: str = ""
    model_url: str = ""
    model_token: str = ""

    @property
    def me_names(self) -> tuple[str, ...]:
        """The user's names (aliases), from the comma-separated `me` setting."""
        return tuple(name.strip() for name in self.me.split(",") if name.strip())

    @property
    def display_name(self) -> str:
        """How prompts call the user: the first of their names."""
        return self.me_names[0] if self.me_names else ""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_value(key: str, raw: object, origin: str) -> Any:
    """Convert and check one value; the error names the key and where the value came from."""
    setting = SETTINGS_BY_KEY.get(key)
    if setting is None:
        raise ConfigError(
            f"unknown setting {key!r} in {origin}",
            hint="known settings: " + ", ".join(SETTINGS_BY_KEY),
        )
    try:
        if setting.type is str:
            value: Any = str(raw)
        elif setting.type is bool:
            value = parse_bool(raw)
        elif isinstance(raw, bool):
            raise ValueError
        else:
            value = setting.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key} must be {setting.type.__name__}, got {raw!r} ({origin})",
            hint=f"for example: pllm config set {key} {setting.default}",
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {raw!r} ({origin})")
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"{key} must be at least {setting.minimum:g}, got {value} ({origin})")
    if setting.maximum is not None and value > setting.maximum:
        raise ConfigError(f"{key} must be at most {setting.maximum:g}, got {value} ({origin})")
    return value


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="fix or delete the file") from None
    return {key: parse_value(key, value, str(path)) for key, value in data.items()}


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Config:
    """Defaults < config file < PLLM_* environment < explicit overrides (flags; None means not given)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = read_config_file(path)
    for setting in SETTINGS:
        if setting.env_var in env:
            values[setting.key] = parse_value(setting.key, env[setting.env_var], setting.env_var)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = parse_value(key, value, "command line")
    return Config(**values)


def config_from_values(values: Mapping[str, Any], origin: str) -> Config:
    """A Config from settled values (as `Config.as_dict` gives them), each checked again: how the server takes
    a client's settings."""
    return Config(**{key: parse_value(key, value, origin) for key, value in values.items()})


def set_value(path: Path, key: str, raw: str) -> Any:
    """Validate and store one setting in the config file; returns the stored value. An embedding model is
    checked now, not at the next search: a memory cannot be searched without the model it was built with."""
    value = parse_value(key, raw, "command line")
    if key == "embedding_model" and value:
        check_embedding_folder(Path(value).expanduser())
    current = read_config_file(path)
    current[key] = value
    write_private_text(path, dump_toml(current))
    return value


def check_embedding_folder(folder: Path) -> None:
    """A ConfigError unless `folder` holds a sentence-transformers model (its config.json or modules.json)."""
    if not folder.is_dir():
        problem = "no such folder" if not folder.exists() else "not a folder"
        raise ConfigError(
            f"embedding_model: {problem}: {folder}",
            hint="give the folder of a sentence-transformers model, or `pllm config unset embedding_model`",
        )
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise ConfigError(
            f"embedding_model: {folder} holds no sentence-transformers model (no config.json or modules.json)",
            hint="give the folder of a sentence-transformers model, or `pllm config unset embedding_model`",
        )


def unset_value(path: Path, key: str) -> None:
    current = read_config_file(path)
    current.pop(key, None)
    write_private_text(path, dump_toml(current))


def dump_toml(values: Mapping[str, Any]) -> str:
    lines = ["# pllm configuration: see `pllm config show` and docs/configuration.md"]
    for key in sorted(values):
        value = values[key]
        if isinstance(value, str):
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")  # a JSON string is a TOML string
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"
