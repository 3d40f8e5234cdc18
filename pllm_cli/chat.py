"""A conversation with the personal model: retrieval -> prompting -> streamed answer. No terminal here."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pllm_cli.citations import cited_numbers
from pllm_cli.errors import InputError
from pllm_cli.feedback import Guidance, normalized
from pllm_cli.grounding import SUPPORTED, Grounding, content_words, ground
from pllm_cli.memory.passages import Passage
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.profile.render import ProfileSelection
from pllm_cli.prompting import Budget, PromptPlan, build_messages, memory_cost
from pllm_cli.runtime import ChatMessage, ChatModel
from pllm_cli.user_text import require_text

RETRY_TEMPERATURE = 0.8  # the second try at an answer judged bad (bench/feedback_prompt.py)


@dataclass(frozen=True)
class GenerationSettings:
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    k: int = 12  # most memories in the prompt; memory_tokens decides first
    memory_tokens: int = 512
    profile_tokens: int = 256
    steer: float = 0.0  # context steering strength (lambda); 0: plain decoding
    short: bool = True  # the answer ends with its first line
    check: bool = True  # check the answer against the memories: cite them, or say it is not in them


def is_looping(text: str, min_length: int = 12) -> bool:
    """True when the last two finished lines both repeat earlier lines: a small model stuck in a loop."""
    finished = (re.sub(r"^[\d\W]+", "", line).strip() for line in text.split("\n")[:-1])  # "7. x" == "8. x"
    lines = [line for line in finished if len(line) >= min_length]
    if len(lines) < 3:
        return False
    return lines[-1] in lines[:-1] and lines[-2] in lines[:-2]


# What a small model copies from the notes at the start of its answer: "2. ", "[1] from chat.jsonl: ",
# "[2023-05-08 13:56] ", "Maya: "
_ECHO = re.compile(
    r"^\s*(?:(?:\d{1,2}[.)]|[-*\u2022])\s+)?"  # a list number or bullet
    r"(?:The right answer \(you corrected me\):\s*)?"  # the correction's line (prompting.CORRECTION_LINE)
    r"(?:(?:\[\d{1,2}\]\s*)?[Ff]rom [^\s:]{1,80}:\s+)?"  # a memory's header in the prompt
    r"(?:\[[^\]\n]{0,40}\]\s*)?"  # a time stamp
    r"(?:[A-Z][\w'-]*(?: [A-Z][\w'-]*)?:\s+)?"  # a speaker
)
OPENING_CHARS = 80  # held back until the echo at the start can be told
# what pllm says when the model can only give an answer the user judged bad (docs/feedback.md)
NOT_AGAIN = "I don't know: you told me my answer to this was wrong."


def short_answer(pieces: Iterable[str]) -> Iterator[str]:
    """The answer's first line, without what the model copied from the notes at its start. A first line that
    only announces the answer ("My plans are:") goes on with the next one."""
    held, line, opened, continued = "", "", False, False  # held back; the current line as given so far
    for piece in pieces:
        held += piece
        if not opened:
            held = held.lstrip()
            if "\n" not in held and len(held) < OPENING_CHARS:
                continue
            held, opened = _ECHO.sub("", held, count=1), True
        if "\n" not in held:
            line += held
            yield held
            held = ""
            continue
        end, held = held.split("\n", 1)
        line += end
        if line.strip() and (continued or not line.rstrip().endswith(":")):
            yield end.rstrip()
            return
        if line.strip():  # "My plans are:": the answer is on the next line
            yield end.rstrip() + " "
            continued = True
        line, opened = "", False
    if held.strip():
        yield held.rstrip() if opened else _ECHO.sub("", held.lstrip(), count=1).rstrip()


def holds(answer: str, fix: str, question: str) -> bool:
    """Whether `answer` says what the user's `fix` says: at least half of the fix's own words (those not in the
    question), the share pllm asks of a memory that supports an answer."""
    own = content_words(fix) - content_words(question)
    return not own or len(own & content_words(answer)) / len(own) >= SUPPORTED


@dataclass
class Reply:
    """One answer. Iterate it for the streamed text; afterwards `text`, `timings`, `plan` and `grounding` are
    filled. After the model's text come pllm's citations, or its warning that the memories do not say so."""

    question: str
    plan: PromptPlan
    memories: list[Passage]  # retrieved for the question; plan.used_memories are those in the prompt
    _tokens: Iterator[str]
    _on_done: Any
    timings: dict[str, float] = field(default_factory=dict)
    text: str = ""
    completion_tokens: int = 0
    finished: bool = False
    short: bool = False
    check: bool = False
    grounding: Grounding | None = None
    rejected: frozenset[str] = frozenset()  # normalized answers the user judged bad for this question
    again: Callable[[], Iterator[str]] | None = None  # the model's second try, if its first was one of those
    correction: str = ""  # the user's fix for this question: an answer that does not hold it is replaced by it

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        for piece in self._answer(started) if self.rejected or self.correction else self._shown(started):
            self.text += piece
            yield piece
        self._stop()
        self.timings["generate_s"] = time.perf_counter() - started
        verdict = self._verdict()
        if verdict:
            self.text += verdict
            yield verdict
        self._on_done(self)

    def _shown(self, started: float) -> Iterator[str]:
        return short_answer(self._model_pieces(started)) if self.short else self._model_pieces(started)

    def _answer(self, started: float) -> Iterator[str]:
        """The answer as the user's feedback wants it (docs/feedback.md). Never one they judged bad: it is held
        back while it could still become one; if it is one, the model tries again (`again`), and if that is one
        too, pllm gives the user's fix, or says it does not know. With a fix for the question, the whole answer
        is held back: one that does not hold the fix's words is replaced by the fix."""
        for attempt in (1, 2):
            held, released = "", False
            for piece in self._shown(started):
                if released:
                    yield piece
                    continue
                held += piece
                so_far = normalized(held)
                if not self.correction and not any(answer.startswith(so_far) for answer in self.rejected):
                    released = True
                    yield held
            if released:
                return
            if normalized(held) not in self.rejected:
                if self.correction and not holds(held, self.correction, self.question):
                    self.timings["correction_given"] = 1.0
                    held = self.correction
                yield held
                return
            self.timings["rejected_answers"] = float(attempt)
            self.close()
            if attempt == 2 or self.again is None:
                break
            self._tokens = self.again()
        if self.correction:
            self.timings["correction_given"] = 1.0
            yield self.correction
            return
        self.check = False  # pllm's own words: nothing to check against the memories
        yield NOT_AGAIN

    def _model_pieces(self, started: float) -> Iterator[str]:
        """The model's text as it comes, stopped if it loops."""
        seen = ""
        for piece in self._tokens:
            if is_looping(seen):
                self.timings["stopped_looping"] = 1.0
                return
            if not self.completion_tokens:
                self.timings["first_token_s"] = time.perf_counter() - started + self.timings.get("prepare_s", 0.0)
            self.completion_tokens += 1
            seen += piece
            yield piece

    def _stop(self) -> None:
        self.close()
        self.finished = True

    def close(self) -> None:
        """Stop the model generating (also for an answer left half-way: its text so far stays)."""
        close = getattr(self._tokens, "close", None)
        if close:
            close()

    def _verdict(self) -> str:
        """pllm's own words after the answer: its citations, or why it is not to be trusted."""
        used = self.plan.used_memories
        if not self.check or not used or not self.text.strip():
            return ""
        self.grounding = found = ground(self.text, self.question, used)
        if found.trusted:
            markers = "".join(f"[{n}]" for n in found.cited if f"[{n}]" not in self.text)
            return f" {markers}" if markers else ""
        wrong = found.misattribution
        if wrong is not None:
            return f" (not in my memories: that was {wrong.speaker}, not {wrong.named} [{wrong.memory}])"
        return " (not in my memories)"

    @property
    def cited(self) -> list[int]:
        """Numbers of the memories that support the answer (pllm's check, or the model's own markers)."""
        if self.grounding is not None:
            return list(self.grounding.cited) if self.grounding.trusted else []
        return [n for n in cited_numbers(self.text) if 1 <= n <= len(self.plan.used_memories)]

    def to_dict(self) -> dict[str, Any]:
        cited = self.cited
        return {
            "question": self.question,
            "answer": self.text,
            "cited": cited,
            "sources": [
                {"n": n, "cited": n in cited, **memory.to_dict()}
                for n, memory in enumerate(self.plan.used_memories, start=1)
            ],
            "grounding": self.grounding.to_dict() if self.grounding else None,
            "prompt": self.plan.to_dict(),
            "completion_pieces": self.completion_tokens,
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
        }


class Answer(Protocol):
    """An answer as the CLI renders it: its text as it streams, then all of it as `Reply.to_dict` gives it.
    A `Reply` in this process, or one streamed from `pllm serve` (server/remote.py)."""

    def __iter__(self) -> Iterator[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


class Conversation(Protocol):
    """What `pllm ask` and `pllm chat` talk to: a ChatSession here, or a RemoteSession with `pllm serve`."""

    @property
    def model_name(self) -> str: ...

    @property
    def profile_text(self) -> str: ...

    @property
    def last(self) -> Answer | None: ...

    def ask(self, question: str) -> Answer: ...

    def remember_partial(self) -> None: ...


class ChatSession:
    def __init__(
        self,
        model: ChatModel,
        retriever: Retriever | None,
        *,
        profile: str | Callable[[str, int], ProfileSelection] = "",
        name: str = "",
        settings: GenerationSettings | None = None,
        feedback: Callable[[str], Guidance] | None = None,
        on_answer: Callable[[Reply], None] | None = None,
    ) -> None:
        """`feedback` gives the user's corrections and rejected answers for a question (feedback.py);
        `on_answer` is told of every answer given in full (it keeps the last one for `pllm feedback`)."""
        self.model = model
        self.retriever = retriever
        self.profile = profile
        self.name = name
        self.settings = settings or GenerationSettings()
        self.feedback = feedback
        self.on_answer = on_answer
        self.history: list[ChatMessage] = []
        self.last: Reply | None = None

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def profile_text(self) -> str:
        """The profile as `pllm chat`'s /profile shows it ("" without one)."""
        return str(self.profile)

    def ask(self, question: str) -> Reply:
        question = require_text(question, "the question").strip()
        if not question:
            raise InputError("the question is empty", hint='ask something: pllm ask "what is on my list?"')
        started = time.perf_counter()
        timings: dict[str, float] = {}
        memories: list[Passage] = []
        self.model.preload()
        if self.retriever is not None:
            cost = memory_cost(self.model.count_tokens)
            memories = self.retriever.recall(question, self.settings.memory_tokens, cost, limit=self.settings.k)
            timings["retrieve_s"] = time.perf_counter() - started
        guidance = self.feedback(question) if self.feedback is not None else Guidance()
        count = self.model.count_tokens
        budget = Budget(
            context_size=self.model.context_size,
            max_tokens=self.settings.max_tokens,
            memory_tokens=self.settings.memory_tokens,
            profile_tokens=self.settings.profile_tokens,
        )
        plan = build_messages(
            question,
            memories=memories,
            profile=self.profile if isinstance(self.profile, str) else self._profile_for(question),
            history=self.history,
            budget=budget,
            count=count,
            name=self.name,
            corrections=guidance.corrections,
        )
        plan.tokens["prompt_total"] = self.model.count_prompt_tokens(plan.messages)
        plan.token_count = getattr(self.model, "token_count", "model")  # OpenAIServerModel's: "server", "estimate"
        timings["prepare_s"] = time.perf_counter() - started
        max_tokens = min(self.settings.max_tokens, self.model.context_size - plan.tokens["prompt_total"])
        if self.settings.steer and (plan.used_memories or plan.tokens["profile"]):
            tokens = self.model.stream_steered(
                plan.messages,
                plan.without_context,
                strength=self.settings.steer,
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                seed=self.settings.seed,
            )
        else:
            tokens = self.model.stream(
                plan.messages, max_tokens=max_tokens, temperature=self.settings.temperature, seed=self.settings.seed
            )
        reply = Reply(
            question,
            plan,
            memories,
            tokens,
            self._done,
            timings,
            short=self.settings.short,
            check=self.settings.check,
            rejected=guidance.rejected,
            correction=plan.used_memories[-1].text if guidance.corrections and plan.used_memories else "",
            again=lambda: self._again(plan.messages, max_tokens),
        )
        self.last = reply
        return reply

    def _profile_for(self, question: str) -> Callable[[int], ProfileSelection]:
        source = self.profile
        assert not isinstance(source, str)
        return lambda room: source(question, room)

    def _again(self, messages: list[ChatMessage], max_tokens: int) -> Iterator[str]:
        """The model's second try at an answer the user judged bad: sampled (docs/feedback.md)."""
        seed = self.settings.seed if self.settings.seed is not None else 0
        return self.model.stream(messages, max_tokens=max_tokens, temperature=RETRY_TEMPERATURE, seed=seed + 1)

    def _done(self, reply: Reply) -> None:
        self._remember(reply)
        if self.on_answer is not None:
            self.on_answer(reply)

    def _remember(self, reply: Reply) -> None:
        reuse = getattr(self.model, "prefix_reuse", None)  # LlamaCppModel's; models without a prefix cache have none
        if reuse:
            reply.plan.stable_prefix = {"from": reuse[0], "tokens": reuse[1]}
        self.history += [ChatMessage("user", reply.question), ChatMessage("assistant", reply.text)]

    def remember_partial(self) -> None:
        """Keep an answer interrupted with Ctrl-C in the history, as far as it got."""
        if self.last is not None and not self.last.finished:
            self.last.finished = True
            self._remember(self.last)
