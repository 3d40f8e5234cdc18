"""Does llama.cpp run on this CPU? One tiny evaluation of the bundled model, in a child process.

    python -m pllm_cli.llama_check [--model PATH] [--json]

scripts/install-llama-cpp.sh runs it right after installing llama-cpp-python: if the child dies (SIGILL: the
build uses an instruction this CPU lacks), it says so, naming the signal, with how to rebuild, and exits 6
(MODEL) instead of `make demo` dying later. The child loads the model through LlamaCppModel, so through the
same CPU-variant loading (pllm_cli/llama_backend.py) as every pllm command. It needs llama-cpp-python and the
model file only: importing pllm_cli.runtime imports no other library.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pllm_cli.errors import ExitCode, PllmError

EVALUATE_FLAG = "--evaluate"
PROMPT = "Say hello."
TOKENS = 8
TIMEOUT_S = 300.0  # a load takes 0.15 s and 8 tokens well under a second: minutes mean something is wrong
REBUILD = (
    "rebuild it: PLLM_REBUILD=1 bash scripts/install-llama-cpp.sh PYTHON, or remove the wheel cache "
    "(~/.cache/pllm/wheels), or set CMAKE_ARGS to flags for this CPU (docs/install.md)"
)


@dataclass(frozen=True)
class Evaluation:
    """What the child reports on stdout, one JSON line."""

    variant: str  # the llama.cpp CPU variant that ran, or "built-in"
    tokens: int
    seconds: float
    text: str


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # one line: what ran, or what went wrong
    hint: str | None = None
    returncode: int = 0
    evaluation: Evaluation | None = None


def evaluate(model: Path | None) -> Evaluation:
    """In this process: load the model as pllm does and generate a few tokens greedily."""
    from pllm_cli.runtime import ChatMessage, LlamaCppModel

    started = time.perf_counter()
    chat = LlamaCppModel(model, context_size=512, threads=1)  # one thread: quick even on a busy machine
    pieces = list(chat.stream([ChatMessage("user", PROMPT)], max_tokens=TOKENS, temperature=0.0, seed=0))
    variant = chat.cpu_backend.variant if chat.cpu_backend else "unknown"
    return Evaluation(variant, len(pieces), round(time.perf_counter() - started, 3), "".join(pieces))


def child_command(model: Path | None, python: str = sys.executable) -> list[str]:
    return [python, "-m", "pllm_cli.llama_check", EVALUATE_FLAG, str(model or "")]


def child_environment() -> dict[str, str]:
    """This environment, with this pllm_cli first on the path: the child runs the same code, installed or not."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_check(model: Path | None = None, python: str = sys.executable, timeout: float = TIMEOUT_S) -> CheckResult:
    """Evaluate the model in a child process and say what happened."""
    try:
        done = subprocess.run(
            child_command(model, python),
            capture_output=True,
            text=True,
            env=child_environment(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"the llama.cpp check did not finish within {timeout:.0f} s", REBUILD, -1)
    return interpret(done)


def interpret(done: subprocess.CompletedProcess[str]) -> CheckResult:
    """A child's outcome as a one-line message: the signal that killed it by name, or its own last error line."""
    code = done.returncode
    if code < 0:
        message, hint = signal_message(-code)
        return CheckResult(False, message, hint, code)
    if code != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
        others = [line for line in lines if not line.startswith("Hint: ")]  # a traceback ends in its error
        last = (errors or others or [f"it exited with code {code}"])[-1]
        hints = [line.removeprefix("Hint: ") for line in lines if line.startswith("Hint: ")]
        return CheckResult(False, f"llama.cpp could not run the model: {last}", hints[-1] if hints else REBUILD, code)
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
        evaluation = Evaluation(str(data["variant"]), int(data["tokens"]), float(data["seconds"]), str(data["text"]))
    except (IndexError, KeyError, TypeError, ValueError):
        return CheckResult(False, f"the llama.cpp check printed no result: {done.stdout[-200:]!r}", REBUILD, code)
    if evaluation.tokens == 0:
        return CheckResult(False, "llama.cpp ran but generated no token", REBUILD, code, evaluation)
    return CheckResult(
        True,
        f"llama.cpp runs here: CPU variant {evaluation.variant}, {evaluation.tokens} tokens in {evaluation.seconds} s",
        evaluation=evaluation,
    )


def signal_message(number: int) -> tuple[str, str]:
    """('Illegal instruction (SIGILL): ...', hint) for a child killed by signal `number`."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    described = signal.strsignal(number) or name
    if number == signal.SIGILL:
        return (
            f"{described} ({name}): this llama-cpp-python was built for another CPU; "
            "it uses an instruction this CPU does not have",
            REBUILD,
        )
    if number == signal.SIGKILL:
        return f"{described} ({name}): the llama.cpp check was killed, perhaps out of memory", REBUILD
    return f"{described} ({name}): llama.cpp crashed while running the model", REBUILD


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pllm_cli.llama_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the bundled model)")
    parser.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    parser.add_argument(EVALUATE_FLAG, dest="evaluate", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.evaluate is not None:  # the child
        try:
            print(json.dumps(asdict(evaluate(Path(args.evaluate) if args.evaluate else None))), flush=True)
        except PllmError as error:
            print(f"Error: {error.message}", file=sys.stderr)
            if error.hint:
                print(f"Hint: {error.hint}", file=sys.stderr)
            return int(error.exit_code)
        return 0
    result = run_check(args.model)
    if args.json:
        print(json.dumps(asdict(result)))
    if result.ok:
        print(result.message, file=sys.stderr)
        return 0
    print(f"Error: {result.message}", file=sys.stderr)
    if result.hint:
        print(f"Hint: {result.hint}", file=sys.stderr)
    return int(ExitCode.MODEL)


if __name__ == "__main__":
    sys.exit(main())
