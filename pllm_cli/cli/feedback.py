"""pllm feedback: good, bad, list, forget."""

from __future__ import annotations

from typing import Any

import typer

from pllm_cli.cli.console import err, out, print_json
from pllm_cli.context import AppContext
from pllm_cli.errors import NotFoundError, UsageError
from pllm_cli.feedback import Feedback, FeedbackStore, LastAnswer

app = typer.Typer(
    help="Judge pllm's last answer; a fix is used at once for that question and similar ones.", no_args_is_help=True
)

FIX_HELP = "The right answer, in your words: used at once for this question and similar ones."
NOTE_HELP = "A note of your own, kept with the judgement."
JSON_HELP = "The recorded judgement as JSON on stdout."


def record(app_ctx: AppContext, answer: LastAnswer, judgement: str, fix: str = "", note: str = "") -> Feedback:
    """Record `judgement` of `answer`, the question embedded with the persona's embedding model."""
    embedder = app_ctx.embedder
    feedback, _ = FeedbackStore(app_ctx.paths).record(
        answer,
        judgement,
        fix=fix,
        note=note,
        embed=lambda text: embedder.embed([text])[0],
        embedding_model=embedder.name,
    )
    return feedback


def _judge(ctx: typer.Context, judgement: str, fix: str, note: str, json_output: bool) -> None:
    app_ctx: AppContext = ctx.obj
    answer = FeedbackStore(app_ctx.paths).last()
    if answer is None:
        raise NotFoundError(
            "there is no answer to judge yet",
            hint='ask something first: pllm ask "..." (or use /good, /bad, /fix in pllm chat)',
        )
    feedback = record(app_ctx, answer, judgement, fix, note)
    if json_output:
        print_json(feedback.to_dict())
    elif not app_ctx.quiet:
        err().print(confirmation(feedback), markup=False)


def confirmation(feedback: Feedback) -> str:
    what = f"fixed: {feedback.fix}" if feedback.fix else f"{feedback.judgement}"
    later = " (used from now on for this question and similar ones)" if feedback.fix else ""
    return f"recorded {feedback.id}: {what}{later}"


@app.command("good")
def good(
    ctx: typer.Context,
    note: str = typer.Option("", "--note", help=NOTE_HELP),
    fix: str = typer.Option("", "--fix", hidden=True),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The last answer of pllm ask (or of a chat turn) was good."""
    if fix:
        raise UsageError("a fix goes with a bad answer", hint='pllm feedback bad --fix "the right answer"')
    _judge(ctx, "good", "", note, json_output)


@app.command("bad")
def bad(
    ctx: typer.Context,
    fix: str = typer.Option("", "--fix", help=FIX_HELP),
    note: str = typer.Option("", "--note", help=NOTE_HELP),
    json_output: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The last answer of pllm ask (or of a chat turn) was wrong: it is not given again, and --fix gives the
    right one."""
    _judge(ctx, "bad", fix, note, json_output)


@app.command("list")
def list_feedback(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="One JSON object per judgement, one a line."),
) -> None:
    """Every recorded judgement, oldest first: id, time, judgement, question, answer, fix."""
    app_ctx: AppContext = ctx.obj
    records = FeedbackStore(app_ctx.paths).records()
    if json_output:
        for feedback in records:
            print_json(feedback.to_dict())
        return
    if not records:
        if not app_ctx.quiet:
            err().print("no feedback yet: pllm feedback good|bad after an answer", markup=False)
        return
    console = out()
    for feedback in records:
        console.print(f"{feedback.id}  {feedback.time[:16].replace('T', ' ')}  {feedback.judgement}", markup=False)
        console.print(f"  Q: {feedback.question}", markup=False)
        console.print(f"  A: {feedback.answer}", markup=False)
        for label, text in (("fix", feedback.fix), ("note", feedback.note)):
            if text:
                console.print(f"  {label}: {text}", markup=False)


@app.command("forget")
def forget(
    ctx: typer.Context,
    feedback_id: str | None = typer.Argument(None, metavar="[ID]", help="The id (or a unique prefix) to forget."),
    every: bool = typer.Option(False, "--all", help="Forget every judgement."),
    json_output: bool = typer.Option(False, "--json", help="The forgotten ids as JSON."),
) -> None:
    """Forget a judgement and its fix for good (and the last answer, if it was the one judged)."""
    app_ctx: AppContext = ctx.obj
    if every == (feedback_id is not None):
        raise UsageError("give an ID or --all (not both)", hint="see the ids: pllm feedback list")
    gone = FeedbackStore(app_ctx.paths).forget(None if every else feedback_id)
    result: dict[str, Any] = {"forgotten": [f.id for f in gone]}
    if json_output:
        print_json(result)
    elif not app_ctx.quiet:
        err().print(f"forgot {len(gone)} judgement{'s' if len(gone) != 1 else ''}", markup=False)
