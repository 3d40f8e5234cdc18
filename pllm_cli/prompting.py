"""Building the personal prompt: profile + retrieved memories + conversation + question, within budget.

Pure functions: the token counter is passed in, so this is testable without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pllm_cli.errors import TooLongError
from pllm_cli.memory.passages import Passage
from pllm_cli.profile.render import ProfileSelection
from pllm_cli.runtime import ChatMessage

TokenCounter = Callable[[str], int]
ProfileSource = str | Callable[[int], ProfileSelection]  # fixed text, or the facts chosen for a token room
TEMPLATE_OVERHEAD = 8  # tokens a chat template adds around each message (role markers, separators)

# Measured on the bundled 135M model: notes placed in the user turn, right before the question, are used far
# more often than notes in the system prompt; a short instruction beats a long one.
SYSTEM_PROMPT = "You are {name}'s personal assistant. Answer using {name}'s notes. Be brief and specific."
# A fix the user gave for this question (feedback.py): a line right before the question, after the notes. The
# 135M model follows it there far more often than as the first note (bench/feedback_prompt.py, docs/feedback.md).
CORRECTION_LINE = "The right answer (you corrected me): {fix}\n\n"


@dataclass(frozen=True)
class Budget:
    context_size: int
    max_tokens: int
    memory_tokens: int
    profile_tokens: int

    @property
    def prompt_tokens(self) -> int:
        """What the whole prompt may use: the context less the answer's room."""
        return self.context_size - self.max_tokens


@dataclass
class PromptPlan:
    messages: list[ChatMessage]
    tokens: dict[str, int]
    used_memories: list[Passage]
    dropped_memories: list[Passage] = field(default_factory=list)
    dropped_turns: int = 0
    profile_truncated: bool = False
    profile: ProfileSelection = field(default_factory=ProfileSelection)
    # the same prompt without the personal context (no profile, no memories, the same history): what context
    # steering contrasts the answer with
    without_context: list[ChatMessage] = field(default_factory=list)
    # the prompt's stable beginning as the model had it: {"from": "disk" | "memory" | "evaluated", "tokens": N}
    stable_prefix: dict[str, Any] = field(default_factory=dict)
    # how `tokens` were counted: "model" (the local model's tokenizer), "server" (a model server's tokenizer
    # endpoint) or "estimate" (a model server without one: characters / 4)
    token_count: str = "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stable_prefix": self.stable_prefix,
            "token_count": self.token_count,
            "tokens": self.tokens,
            "memories_used": len(self.used_memories),
            "memories_dropped": len(self.dropped_memories),
            "history_turns_dropped": self.dropped_turns,
            "profile_truncated": self.profile_truncated,
            "profile": {"tokens": self.tokens.get("profile", 0), **self.profile.to_dict()},
        }


def format_memory(number: int, memory: Passage) -> str:
    return f"[{number}] from {Path(memory.source).name}:\n{memory.text.strip()}"


def memory_cost(count: TokenCounter) -> Callable[[Passage], int]:
    """What a memory costs in the prompt, for packing memories into its budget (memory/passages.py)."""
    return lambda memory: count(format_memory(99, memory)) + 2  # "[99]": never cheaper than the real number


def truncate_to_tokens(text: str, limit: int, count: TokenCounter) -> tuple[str, bool]:
    """The longest prefix of whole lines of `text` within `limit` tokens (words, if no line fits)."""
    if count(text) <= limit:
        return text, False
    kept: list[str] = []
    for line in text.splitlines():
        if count("\n".join([*kept, line])) <= limit:
            kept.append(line)
            continue
        if kept:
            break
        words: list[str] = []  # not even the first line fits: cut it at a word boundary
        for word in line.split():
            if count("\n".join([*kept, " ".join([*words, word])])) > limit:
                break
            words.append(word)
        if words:
            kept.append(" ".join(words))
        break
    return "\n".join(kept).rstrip(), True


def build_messages(
    question: str,
    *,
    memories: Sequence[Passage],
    profile: ProfileSource,
    history: Sequence[ChatMessage],
    budget: Budget,
    count: TokenCounter,
    name: str = "",
    corrections: Sequence[Passage] = (),
) -> PromptPlan:
    """The messages for the model, each part within its budget and the whole within the context.

    `profile` is fixed text (cut at whole lines) or a function that picks facts for the room it is given.
    `corrections`: the user's fixes for this question (feedback.py), as a line before it; they are cited after
    the memories. Priority when space is short: the question, then the system prompt, the corrections, the
    profile (its own budget),
    memories in rank order (a memory that does not fit is skipped), and the most recent history turns.
    """
    who = name.strip() or "the user"
    system = SYSTEM_PROMPT.format(name=who)
    question_tokens = count(question) + TEMPLATE_OVERHEAD
    system_tokens = count(system) + TEMPLATE_OVERHEAD
    if question_tokens + system_tokens > budget.prompt_tokens:
        raise TooLongError(
            f"the question is {question_tokens} tokens; with the answer's room it does not fit the "
            f"{budget.context_size}-token context",
            hint="shorten it, lower --max-tokens, or raise context_size (pllm config set context_size 8192)",
        )
    remaining = budget.prompt_tokens - question_tokens - system_tokens
    correction_part = "".join(CORRECTION_LINE.format(fix=c.text) for c in corrections)
    correction_tokens = count(correction_part) if correction_part else 0
    if correction_tokens > remaining:  # the user's own answer goes before anything else of theirs
        corrections, correction_part, correction_tokens = (), "", 0
    remaining -= correction_tokens

    header = f"\n\nAbout {who}:\n"
    profile_room = min(budget.profile_tokens, remaining) - count(header)
    if isinstance(profile, str):
        profile_text, truncated = truncate_to_tokens(profile.strip(), max(profile_room, 0), count)
        selection = ProfileSelection(text=profile_text, stable_lines=len(profile_text.splitlines()))
    else:
        selection = profile(max(profile_room, 0))
        profile_text, truncated = selection.text, bool(selection.cut)
    profile_part = f"{header}{profile_text}" if profile_text else ""
    profile_tokens = count(profile_part) if profile_part else 0
    remaining -= profile_tokens

    memory_room = min(budget.memory_tokens, remaining)
    used: list[Passage] = []
    dropped: list[Passage] = []
    memory_parts: list[str] = []
    memory_tokens = 0
    for memory in memories:
        part = format_memory(len(used) + 1, memory)
        cost = count(part) + 2
        if memory_tokens + cost > memory_room:
            dropped.append(memory)
            continue
        used.append(memory)
        memory_parts.append(part)
        memory_tokens += cost
    memory_part = "My notes:\n\n" + "\n\n".join(memory_parts) + "\n\n" if memory_parts else ""
    if memory_part or correction_part:
        memory_part += correction_part + "Question: "
    remaining -= memory_tokens

    kept_history: list[ChatMessage] = []
    history_tokens = 0
    for message in reversed(history):
        cost = count(message.content) + TEMPLATE_OVERHEAD
        if history_tokens + cost > remaining:
            break
        kept_history.insert(0, message)
        history_tokens += cost
    if kept_history and kept_history[0].role == "assistant":  # never open on an orphan answer
        history_tokens -= count(kept_history[0].content) + TEMPLATE_OVERHEAD
        kept_history.pop(0)

    # what every question shares: the system prompt and the profile's question-independent lines
    stable = system + (f"{header}{selection.stable_text}" if selection.stable_text else "")
    messages = [
        ChatMessage("system", system + profile_part, stable_chars=len(stable)),
        *kept_history,
        ChatMessage("user", memory_part + question),
    ]
    return PromptPlan(
        messages=messages,
        tokens={
            "system": system_tokens,
            "profile": profile_tokens,
            "memories": memory_tokens,
            "corrections": correction_tokens,
            "history": history_tokens,
            "question": question_tokens,
        },
        used_memories=[*used, *corrections],  # a correction is cited after the notes, as their last number
        dropped_memories=dropped,
        dropped_turns=len(history) - len(kept_history),
        profile_truncated=truncated,
        profile=selection,
        without_context=[ChatMessage("system", system), *kept_history, ChatMessage("user", question)],
    )
