"""The command reference, configuration page and completion scripts are generated from the app:
these tests fail when a committed copy drifts from what the app produces (`make docs` fixes it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pllm_cli.cli.reference import command_paths, completion_files, help_text, render_configuration, render_reference
from pllm_cli.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]


def test_command_reference_is_current() -> None:
    assert (ROOT / "docs" / "commands.md").read_text(encoding="utf-8") == render_reference(), "run `make docs`"


def test_configuration_page_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == render_configuration(), "run `make docs`"


@pytest.mark.parametrize("name", ["pllm.bash", "_pllm", "pllm.fish"])
def test_completion_scripts_are_current(name: str) -> None:
    assert (ROOT / "completions" / name).read_text(encoding="utf-8") == completion_files()[name], "run `make docs`"


def test_reference_covers_every_command() -> None:
    reference = render_reference()
    paths = command_paths()
    assert ["memory", "search"] in paths and ["profile", "refresh"] in paths and ["ask"] in paths
    for path in paths:
        assert f"## {' '.join(['pllm', *path])}\n" in reference


def test_every_option_with_an_environment_variable_says_so() -> None:
    ask = help_text(["ask"])
    for variable in ("PLLM_MODEL", "PLLM_K", "PLLM_MAX_TOKENS", "PLLM_TEMPERATURE"):
        assert variable in ask
    assert "PLLM_HOME" in help_text([]) and "PLLM_PROFILE" in help_text([])


def test_exit_code_page_lists_every_code() -> None:
    page = (ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|", page, re.MULTILINE))
    assert rows == {str(code.value): code.name for code in ExitCode}
