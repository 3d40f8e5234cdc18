"""Settings: defaults < config.toml < PLLM_* environment < overrides, and errors that name the bad key."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from pllm_cli.config import SETTINGS, Config, load_config, parse_value, read_config_file, set_value, unset_value
from pllm_cli.errors import ConfigError, ExitCode


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml", environ={})
    assert config == Config()
    assert config.k == 12 and config.temperature == 0.0 and config.me == ""
    assert {s.key for s in SETTINGS} == set(config.as_dict())


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", 'k = 7\nmax_tokens = 100\nme = "Maya"\ntemperature = 0.5\n')
    environ = {"PLLM_MAX_TOKENS": "50", "PLLM_TEMPERATURE": "0.25", "PLLM_HOME": "/ignored"}
    config = load_config(path, environ=environ, overrides={"temperature": 1.5, "k": None})
    assert config.context_size == 4096  # default
    assert config.k == 7  # file (the None override means "flag not given")
    assert config.me == "Maya"  # file
    assert config.max_tokens == 50  # env beats file
    assert config.temperature == 1.5  # override beats env


def test_env_is_read_from_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLLM_K", "11")
    assert load_config(tmp_path / "none.toml").k == 11


def test_bad_value_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", 'k = "many"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert raised.value.message == f"k must be int, got 'many' ({path})"
    assert raised.value.hint == "for example: pllm config set k 12"
    assert raised.value.exit_code == ExitCode.CONFIG


def test_bad_value_in_env_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"context_size must be int, got 'big' \(PLLM_CONTEXT_SIZE\)"):
        load_config(tmp_path / "none.toml", environ={"PLLM_CONTEXT_SIZE": "big"})


def test_out_of_range_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="context_size must be at least 512, got 100"):
        load_config(tmp_path / "none.toml", environ={"PLLM_CONTEXT_SIZE": "100"})
    with pytest.raises(ConfigError, match=r"temperature must be at most 2, got 3\.0 \(command line\)"):
        load_config(tmp_path / "none.toml", environ={}, overrides={"temperature": 3})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "colour = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert "unknown setting 'colour'" in raised.value.message
    assert str(path) in raised.value.message
    assert "context_size" in (raised.value.hint or "")


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "k = true\n")
    with pytest.raises(ConfigError, match="k must be int, got True"):
        read_config_file(path)


def test_broken_toml_is_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "k = = 3\n")
    with pytest.raises(ConfigError, match="cannot read") as raised:
        read_config_file(path)
    assert raised.value.hint == "fix or delete the file"


def test_nan_is_rejected() -> None:
    with pytest.raises(ConfigError):
        parse_value("temperature", "nan", "command line")


def test_set_value_writes_a_private_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "config.toml"
    assert set_value(path, "k", "9") == 9
    assert set_value(path, "me", 'Maya "the runner" \\o/') == 'Maya "the runner" \\o/'
    assert set_value(path, "temperature", "0.7") == 0.7
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with path.open("rb") as handle:
        assert tomllib.load(handle) == {"k": 9, "me": 'Maya "the runner" \\o/', "temperature": 0.7}
    assert load_config(path, environ={}).me == 'Maya "the runner" \\o/'
    unset_value(path, "k")
    assert read_config_file(path) == {"me": 'Maya "the runner" \\o/', "temperature": 0.7}
    assert not list(path.parent.glob(".config.toml.*.tmp")), "the temporary file is renamed away"


def test_set_value_rejects_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "k", "3")
    before = path.read_text()
    with pytest.raises(ConfigError, match="k must be int, got 'notanumber'"):
        set_value(path, "k", "notanumber")
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        set_value(path, "nope", "1")
    assert path.read_text() == before


def test_set_value_round_trips_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "me", "Maya\nLindqvist")
    assert read_config_file(path) == {"me": "Maya\nLindqvist"}
