"""pllm ask and pllm chat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from pllm_cli.chat import Conversation
from pllm_cli.cli.console import err, out, print_json, report_error, stdin_text, write
from pllm_cli.cli.feedback import confirmation, record
from pllm_cli.context import AppContext
from pllm_cli.errors import InputError, PllmError
from pllm_cli.feedback import FeedbackStore
from pllm_cli.file_names import shown
from pllm_cli.server.remote import start_conversation
from pllm_cli.sessions import SessionOptions
from pllm_cli.user_text import require_text


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("chat")(chat)


MODEL_HELP = "GGUF chat model file (default: the bundled SmolLM2-135M-Instruct)."


def _render_sources(answer: dict[str, Any], *, every: bool = True) -> None:
    """The memories in the answer's prompt (`every`), or only those it cites; `answer` as Reply.to_dict."""
    console = err()
    cited = answer["cited"]
    for number, memory in enumerate(answer["sources"], start=1):
        if not every and number not in cited:
            continue
        where = f" › {memory['heading']}" if memory["heading"] and memory["kind"] == "text" else ""
        if memory["kind"] == "chat" and memory["start_time"]:
            where = f" › {memory['conversation']} {memory['start_time'][:10]}"
        console.print(f"  [{number}] {shown(Path(memory['source']).name)}{where}", markup=False, style="dim")


def ask(
    ctx: typer.Context,
    question: str | None = typer.Argument(None, help="Your question; read from stdin when omitted or '-'."),
    k: int | None = typer.Option(None, "--k", "-k", envvar="PLLM_K", help="Most memories in the prompt."),
    no_memory: bool = typer.Option(False, "--no-memory", help="Do not retrieve memories."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Leave the profile out of the prompt."),
    model: Path | None = typer.Option(None, "--model", "-m", envvar="PLLM_MODEL", help=MODEL_HELP),
    max_tokens: int | None = typer.Option(None, "--max-tokens", envvar="PLLM_MAX_TOKENS", help="Longest answer."),
    temperature: float | None = typer.Option(
        None, "--temperature", "-t", envvar="PLLM_TEMPERATURE", help="Sampling temperature (0 = greedy)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed, for repeatable answers."),
    steer: float | None = typer.Option(
        None, "--steer", envvar="PLLM_STEER", min=0.0, help="Context steering strength (0 = off; docs/answers.md)."
    ),
    all_sources: bool = typer.Option(
        False, "--all-sources", help="List every memory the model was shown, not only those the answer cites."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="One JSON object: answer, cited and uncited sources, tokens, timings."
    ),
) -> None:
    """Answer a question using your profile and memories: a short answer citing its memories as [n], or a
    warning that they do not hold it. The answer streams to stdout, its sources to stderr."""
    app: AppContext = ctx.obj
    if question is None or question == "-":
        if sys.stdin.isatty():
            raise InputError("no question given", hint='pllm ask "what did I plan for Sunday?"')
        question = stdin_text()
    require_text(question, "the question")
    app.overrides.update(
        {
            "k": k,
            "model": str(model) if model else None,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "steer": steer,
        }
    )
    options = SessionOptions(no_memory=no_memory, no_profile=no_profile, seed=seed)
    reply = start_conversation(app, options).ask(question)
    if json_output:
        for _ in reply:
            pass
        print_json(reply.to_dict())
        return
    for piece in reply:
        write(piece)
    write("\n")
    answer = reply.to_dict()
    if not app.quiet and (answer["cited"] or (all_sources and answer["sources"])):
        err().print("Sources:", markup=False, style="dim")
        _render_sources(answer, every=all_sources)


CHAT_HELP = (
    "Commands: /sources (memories behind the last answer), /good, /bad, /fix TEXT (judge the last answer: "
    "pllm feedback), /profile, /exit. Ctrl-C stops an answer."
)
JUDGEMENTS = {"/good": "good", "/bad": "bad", "/fix": "bad"}


def chat(
    ctx: typer.Context,
    no_memory: bool = typer.Option(False, "--no-memory", help="Do not retrieve memories."),
    no_profile: bool = typer.Option(False, "--no-profile", help="Leave the profile out of the prompt."),
    model: Path | None = typer.Option(None, "--model", "-m", envvar="PLLM_MODEL", help=MODEL_HELP),
    seed: int | None = typer.Option(None, "--seed", help="Random seed, for repeatable answers."),
) -> None:
    """Talk with pllm: a multi-turn conversation using your profile and memories. Ctrl-D leaves."""
    app: AppContext = ctx.obj
    app.overrides["model"] = str(model) if model else None
    options = SessionOptions(no_memory=no_memory, no_profile=no_profile, seed=seed)
    run_repl(start_conversation(app, options, chat=True), app)


def _judge_last(session: Conversation, app: AppContext, judgement: str, fix: str) -> None:
    """/good, /bad, /fix TEXT: `pllm feedback` for the last turn's answer."""
    console = err()
    if session.last is None:
        console.print("no answer to judge yet", markup=False)
        return
    store = FeedbackStore(app.paths)
    try:
        feedback = record(app, store.answer_of(session.last.to_dict(), session.model_name), judgement, fix)
    except PllmError as error:
        report_error(error)
        return
    console.print(confirmation(feedback), markup=False, style="dim")


def run_repl(session: Conversation, app: AppContext) -> None:
    console = err()
    if not app.quiet:
        console.print(f"pllm chat with {session.model_name}. {CHAT_HELP}", markup=False, style="dim")
    while True:
        try:
            line = input("you> ") if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            line = None
        except KeyboardInterrupt:
            console.print("")
            continue
        if line is None or (not sys.stdin.isatty() and line == ""):
            console.print("")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/sources":
            last = session.last.to_dict() if session.last is not None else None
            if last is None or not last["sources"]:
                console.print("no sources yet", markup=False)
            else:
                _render_sources(last)
            continue
        if text == "/profile":
            out().print(session.profile_text or "(no profile: pllm profile refresh)", markup=False)
            continue
        command, _, rest = text.partition(" ")
        if command == "/fix" and not rest.strip():
            console.print("/fix needs the right answer: /fix Karin Ek is my manager", markup=False)
            continue
        if command in JUDGEMENTS:
            _judge_last(session, app, JUDGEMENTS[command], rest.strip() if command == "/fix" else "")
            continue
        if text.startswith("/"):
            console.print(f"unknown command {text}. {CHAT_HELP}", markup=False)
            continue
        try:
            reply = session.ask(text)
        except PllmError as error:
            report_error(error)
            continue
        try:
            for piece in reply:
                write(piece)
        except KeyboardInterrupt:
            session.remember_partial()
            console.print(" [stopped]", markup=False, style="dim")
        write("\n")
