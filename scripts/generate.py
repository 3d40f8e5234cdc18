"""Regenerate docs/commands.md and completions/ from the app (tests check they are current)."""

from pathlib import Path

from pllm_cli.cli.reference import completion_files, render_configuration, render_reference

root = Path(__file__).resolve().parents[1]
(root / "docs" / "commands.md").write_text(render_reference(), encoding="utf-8")
(root / "docs" / "configuration.md").write_text(render_configuration(), encoding="utf-8")
for name, text in completion_files().items():
    (root / "completions" / name).write_text(text, encoding="utf-8")
print("wrote docs/commands.md, docs/configuration.md and completions/")
