"""pllm eval: measure pllm on benchmark data, never touching your own memory."""

from __future__ import annotations

from pathlib import Path

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.context import AppContext
from pllm_cli.errors import InputError, UsageError
from pllm_cli.memory.store import SEARCH_MODES, SearchMode

app = typer.Typer(help="Measure pllm on benchmark data (your own memory is never touched).", no_args_is_help=True)


@app.command("retrieval")
def retrieval(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Data in the LoCoMo format (e.g. locomo10.json)."),
    mode: list[str] = typer.Option(list(SEARCH_MODES), "--mode", help="Search modes to compare (repeatable)."),
    ablate: bool = typer.Option(
        False, "--ablate", help="Also run hybrid search without time awareness, then without neighbouring turns."
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Evidence recall of memory search within 512 and 1,024 retrieved tokens, and recall@5/@10.

    Each conversation is ingested into its own temporary memory with the normal pipeline; every question of
    categories 1-4 is searched in each mode and its hits packed into each budget by the packer `pllm ask`
    uses (1.3 tokens a word); figures are percentages, overall and per category.
    """
    from pllm_cli.evaluation.retrieval import evaluate_retrieval, render_table

    app_ctx: AppContext = ctx.obj
    unknown = [m for m in mode if m not in SEARCH_MODES]
    if unknown:
        raise UsageError(f"unknown search mode {unknown[0]!r}", hint="use: " + ", ".join(SEARCH_MODES))
    if not file.is_file():
        raise InputError(f"no such file: {file}", hint="give a LoCoMo-format JSON file")
    modes: list[SearchMode] = [m for m in SEARCH_MODES if m in mode]

    def progress(line: str) -> None:
        if not app_ctx.quiet and not json_output:
            err().print(line, markup=False, style="dim")

    evaluation = evaluate_retrieval(
        file, app_ctx.embedder, modes, on_progress=progress, ablate=ablate, server=app_ctx.memory_server
    )
    if json_output:
        print_json(evaluation.to_dict())
        return
    out().print(
        f"{evaluation.conversations} conversations, {evaluation.turns} turns -> {evaluation.chunks} chunks, "
        f"{evaluation.questions} questions (categories 1-4); evidence recall in %",
        markup=False,
    )
    out().print(render_table(evaluation), markup=False)


@app.command("profile")
def profile(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Data in the LoCoMo format (e.g. locomo10.json)."),
    speaker: str = typer.Option("a", "--speaker", help="Which speaker of each conversation is the user: a or b."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N conversations."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """How much of what annotators noted about a speaker the profile recovers, and how well it is supported.

    Each conversation is ingested into its own temporary memory with the speaker as the user, and a profile
    is built with the local model; figures are percentages, plus refresh seconds per 1,000 messages.
    """
    from pllm_cli.evaluation.profile import evaluate_profile, render_table

    app_ctx: AppContext = ctx.obj
    if speaker not in ("a", "b"):
        raise InputError(f"--speaker is a or b, not {speaker!r}")
    if not file.is_file():
        raise InputError(f"no such file: {file}", hint="give a LoCoMo-format JSON file")

    def progress(line: str) -> None:
        if not app_ctx.quiet and not json_output:
            err().print(line, markup=False, style="dim")

    evaluation = evaluate_profile(
        file, app_ctx.embedder, app_ctx.model, speaker=speaker, limit=limit, on_progress=progress
    )
    if json_output:
        print_json(evaluation.to_dict())
        return
    out().print(
        f"profile facts vs annotated observations (match: cosine >= {evaluation.threshold}); figures in %",
        markup=False,
    )
    out().print(render_table(evaluation), markup=False)


@app.command("answers")
def answers(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Data in the LoCoMo format (e.g. locomo10.json)."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="At most N questions per category, drawn reproducibly from the whole file."
    ),
    speaker: str = typer.Option("a", "--speaker", help="Which speaker of each conversation is the user: a or b."),
    model: Path | None = typer.Option(
        None, "--model", "-m", envvar="PLLM_MODEL", help="GGUF chat model to measure (default: the bundled one)."
    ),
    profile_build: bool = typer.Option(
        False, "--profile-build", help="Also build each user's profile (the same refresh) and ask with it."
    ),
    steer: list[float] = typer.Option(
        [], "--steer", help="Also ask with context steering at this strength (repeatable, e.g. --steer 0.5)."
    ),
    ablate: bool = typer.Option(
        False, "--ablate", help="Also ask with memory but without pllm's check, then without short answers too."
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout, with every answer."),
) -> None:
    """Answer quality as the user reads it: LoCoMo's answer F1 per category, abstention when the answer is
    not there, citations, length and time, for several settings side by side.

    Each conversation is ingested into its own temporary memory with the speaker as the user; every chosen
    question is asked through the same session, prompt and model as `pllm ask`, once per setting: no memory,
    memory, memory + profile (--profile-build), each --steer strength, and (--ablate) memory without pllm's
    check of the answer, then without short answers either (the answer as the model gives it, as in pllm 0.1).
    See docs/answers.md.
    """
    from pllm_cli.chat import GenerationSettings
    from pllm_cli.evaluation.answers import evaluate_answers, render_table, settings_for

    app_ctx: AppContext = ctx.obj
    if speaker not in ("a", "b"):
        raise InputError(f"--speaker is a or b, not {speaker!r}")
    if not file.is_file():
        raise InputError(f"no such file: {file}", hint="give a LoCoMo-format JSON file")
    if any(s < 0 for s in steer):
        raise InputError("--steer takes a strength of 0 or more", hint="e.g. --steer 0.5 --steer 1")
    app_ctx.overrides["model"] = str(model) if model else None
    config = app_ctx.config
    generation = GenerationSettings(
        max_tokens=config.max_tokens,
        temperature=0.0,
        seed=0,
        k=config.k,
        memory_tokens=config.memory_tokens,
        profile_tokens=config.profile_tokens,
    )

    def progress(line: str) -> None:  # on stderr, so also with --json: this takes minutes
        if not app_ctx.quiet:
            err().print(line, markup=False, style="dim")

    evaluation = evaluate_answers(
        file,
        app_ctx.embedder,
        app_ctx.model,
        settings_for(profile=profile_build, steer=steer, ablate=ablate),
        speaker=speaker,
        limit=limit,
        generation=generation,
        on_progress=progress,
    )
    if json_output:
        print_json(evaluation.to_dict())
        return
    out().print(
        f"{evaluation.model}: {evaluation.conversations} conversations, "
        f"{len({(a.sample_id, a.question) for a in evaluation.answers})} questions; "
        "F1 and shares in %, times are medians",
        markup=False,
    )
    out().print(render_table(evaluation), markup=False)
