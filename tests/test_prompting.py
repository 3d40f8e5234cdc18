"""build_messages: profile + memories + history + question within a token budget (words count as tokens)."""

from __future__ import annotations

import pytest

from pllm_cli.errors import ExitCode, TooLongError
from pllm_cli.memory.passages import Passage
from pllm_cli.memory.records import Chunk
from pllm_cli.prompting import TEMPLATE_OVERHEAD, Budget, build_messages, format_memory, truncate_to_tokens
from pllm_cli.runtime import ChatMessage


def words(text: str) -> int:
    return len(text.split())


def hit(number: int, size: int, source: str | None = None) -> Passage:
    text = " ".join([f"note{number}"] * size)
    chunk = Chunk(id=f"c{number}", source=source or f"/notes/n{number}.md", position=0, kind="text", body=text)
    return Passage(chunk.source, "text", "", "", 1.0 / number, [chunk])


def budget(context: int = 1000, answer: int = 100, memories: int = 300, profile: int = 50) -> Budget:
    return Budget(context_size=context, max_tokens=answer, memory_tokens=memories, profile_tokens=profile)


def cost(h: Passage, number: int) -> int:
    return words(format_memory(number, h)) + 2


def prompt_size(messages: list[ChatMessage]) -> int:
    return sum(words(m.content) + TEMPLATE_OVERHEAD for m in messages)


def test_shape_system_then_history_then_notes_and_question() -> None:
    history = [ChatMessage("user", "earlier question"), ChatMessage("assistant", "earlier answer")]
    plan = build_messages(
        "Who is my manager?",
        memories=[hit(1, 5)],
        profile="Identity: landscape architect",
        history=history,
        budget=budget(),
        count=words,
        name="Maya",
    )
    roles = [m.role for m in plan.messages]
    assert roles == ["system", "user", "assistant", "user"]
    system, *_, user = plan.messages
    assert system.content.startswith("You are Maya's personal assistant.")
    assert "About Maya:\nIdentity: landscape architect" in system.content
    assert user.content.startswith("My notes:\n\n[1] from n1.md:\nnote1")
    assert user.content.endswith("Question: Who is my manager?")
    assert plan.tokens["question"] == words("Who is my manager?") + TEMPLATE_OVERHEAD
    assert plan.used_memories == [hit(1, 5)]


def test_without_name_or_memories() -> None:
    plan = build_messages("hello there", memories=[], profile="", history=[], budget=budget(), count=words)
    assert [m.role for m in plan.messages] == ["system", "user"]
    assert "the user's personal assistant" in plan.messages[0].content
    assert "About" not in plan.messages[0].content
    assert plan.messages[1].content == "hello there"
    assert plan.tokens["memories"] == plan.tokens["profile"] == plan.tokens["history"] == 0


def test_memories_packed_in_rank_order_within_budget() -> None:
    hits = [hit(n, 20) for n in range(1, 8)]
    room = 3 * cost(hits[0], 1)  # exactly three fit
    plan = build_messages("q", memories=hits, profile="", history=[], budget=budget(memories=room), count=words)
    assert plan.used_memories == hits[:3]
    assert plan.dropped_memories == hits[3:]
    assert plan.tokens["memories"] == room
    user = plan.messages[-1].content
    assert user.index("[1] from n1.md") < user.index("[2] from n2.md") < user.index("[3] from n3.md")
    assert "note4" not in user


def test_memory_too_big_is_skipped_and_smaller_later_ones_still_fit() -> None:
    hits = [hit(1, 10), hit(2, 500), hit(3, 10)]
    plan = build_messages("q", memories=hits, profile="", history=[], budget=budget(memories=60), count=words)
    assert plan.used_memories == [hits[0], hits[2]]
    assert plan.dropped_memories == [hits[1]]
    user = plan.messages[-1].content
    # numbering follows what is in the prompt, without a gap
    assert "[1] from n1.md" in user and "[2] from n3.md" in user and "note2" not in user
    assert plan.tokens["memories"] <= 60


def test_memory_room_is_also_bounded_by_the_context() -> None:
    hits = [hit(n, 30) for n in range(1, 10)]
    small = budget(context=150, answer=20, memories=10_000, profile=0)
    plan = build_messages("what now", memories=hits, profile="", history=[], budget=small, count=words)
    assert 0 < len(plan.used_memories) < len(hits)
    assert prompt_size(plan.messages) <= small.prompt_tokens


def test_question_too_long_for_context() -> None:
    question = "why " * 950
    with pytest.raises(TooLongError) as raised:
        build_messages(question, memories=[], profile="", history=[], budget=budget(), count=words)
    assert "1000-token context" in raised.value.message
    assert "context_size" in (raised.value.hint or "")
    assert raised.value.exit_code == ExitCode.TOO_LONG


def test_answer_room_counts_against_the_question() -> None:
    question = "why " * 850  # fits 1000 tokens, but not with 200 kept for the answer
    build_messages(question, memories=[], profile="", history=[], budget=budget(answer=100), count=words)
    with pytest.raises(TooLongError):
        build_messages(question, memories=[], profile="", history=[], budget=budget(answer=200), count=words)


def test_history_trimmed_oldest_first() -> None:
    history = []
    for turn in range(1, 7):
        history += [ChatMessage("user", f"question {turn} " * 5), ChatMessage("assistant", f"answer {turn} " * 5)]
    per_message = 10 + TEMPLATE_OVERHEAD
    b = budget(context=200, answer=20, memories=0, profile=0)
    plan = build_messages("latest", memories=[], profile="", history=history, budget=b, count=words)
    kept = plan.messages[1:-1]
    assert kept, "some history fits"
    assert kept == history[-len(kept) :], "the newest turns are kept, in order"
    assert kept[0].role == "user", "never opens on an orphan answer"
    assert plan.dropped_turns == len(history) - len(kept)
    assert plan.tokens["history"] == len(kept) * per_message
    assert prompt_size(plan.messages) <= b.prompt_tokens


def test_history_never_opens_with_an_assistant_turn() -> None:
    history = [ChatMessage("user", "u " * 30), ChatMessage("assistant", "a " * 5), ChatMessage("user", "u2")]
    # room for the last two messages only: the orphan assistant answer is dropped too
    b = budget(context=100, answer=10, memories=0, profile=0)
    room = b.prompt_tokens - (words("q") + TEMPLATE_OVERHEAD)
    plan = build_messages("q", memories=[], profile="", history=history, budget=b, count=words)
    system_cost = plan.tokens["system"]
    assert room - system_cost < 30 + TEMPLATE_OVERHEAD + 5 + TEMPLATE_OVERHEAD + 1 + TEMPLATE_OVERHEAD
    assert [m.role for m in plan.messages] == ["system", "user", "user"]
    assert plan.messages[1].content == "u2"
    assert plan.dropped_turns == 2


def test_profile_truncated_to_whole_lines() -> None:
    profile = "\n".join(f"Line {n}: alpha beta gamma delta" for n in range(1, 21))  # 20 lines of 6 words
    plan = build_messages("q", memories=[], profile=profile, history=[], budget=budget(profile=20), count=words)
    assert plan.profile_truncated
    system = plan.messages[0].content
    kept = system.split("About the user:\n", 1)[1].splitlines()
    assert kept == profile.splitlines()[: len(kept)]
    assert 1 <= len(kept) < 20


def test_profile_that_fits_is_not_truncated() -> None:
    plan = build_messages("q", memories=[], profile="Likes: tea", history=[], budget=budget(), count=words)
    assert not plan.profile_truncated
    assert plan.messages[0].content.endswith("About the user:\nLikes: tea")


def test_profile_part_stays_within_its_budget() -> None:
    profile = "\n".join("alpha beta gamma delta" for _ in range(30))
    b = budget(context=74, answer=20, memories=0, profile=20)
    plan = build_messages("q", memories=[], profile=profile, history=[], budget=b, count=words)
    assert plan.tokens["profile"] <= 20
    assert prompt_size(plan.messages) <= b.prompt_tokens


def test_whole_prompt_within_budget_without_profile() -> None:
    hits = [hit(n, size) for n, size in enumerate([5, 12, 3, 40, 8], start=1)]
    history = [ChatMessage("user" if n % 2 == 0 else "assistant", "h " * 7) for n in range(6)]
    for context in range(60, 260, 9):
        for memories in (0, 10, 30, 100):
            b = budget(context=context, answer=20, memories=memories, profile=0)
            try:
                plan = build_messages("what is it", memories=hits, profile="", history=history, budget=b, count=words)
            except TooLongError:
                assert context - 20 < words("what is it") + 2 * TEMPLATE_OVERHEAD + 20
                continue
            assert prompt_size(plan.messages) <= b.prompt_tokens, (context, memories)
            assert plan.tokens["memories"] <= memories


def test_truncate_to_tokens_keeps_whole_lines() -> None:
    assert truncate_to_tokens("a b\nc d\ne f", 4, words) == ("a b\nc d", True)
    assert truncate_to_tokens("a b\nc d", 4, words) == ("a b\nc d", False)


def test_truncate_to_tokens_falls_back_to_words() -> None:
    text, truncated = truncate_to_tokens("Identity: Maya is a landscape architect in Gothenburg", 4, words)
    assert truncated
    assert text == "Identity: Maya is a"


def test_the_system_message_marks_what_every_question_shares() -> None:
    """The system prompt and the profile's stable lines are the first `stable_chars` characters of the system
    message, the same whatever is asked; the question-dependent profile lines come after them."""
    from pllm_cli.profile.render import ProfileSelection

    def profile_for(question: str) -> object:
        return lambda room: ProfileSelection(text=f"- core fact\n- about {question}", stable_lines=1)

    plans = [
        build_messages(q, memories=[hit(1, 5)], profile=profile_for(q), history=[], budget=budget(), count=words)  # type: ignore[arg-type]
        for q in ("first question", "another one")
    ]
    heads = {p.messages[0].content[: p.messages[0].stable_chars] for p in plans}
    assert len(heads) == 1
    (head,) = heads
    assert head.startswith("You are the user's personal assistant.") and head.endswith("About the user:\n- core fact")
    assert all(p.messages[0].content != head for p in plans)  # each goes on with its own line
    fixed = build_messages("q", memories=[], profile="Fixed text", history=[], budget=budget(), count=words)
    assert fixed.messages[0].stable_chars == len(fixed.messages[0].content)  # a fixed profile is stable whole
    bare = build_messages("q", memories=[], profile="", history=[], budget=budget(), count=words)
    assert bare.messages[0].stable_chars == len(bare.messages[0].content)  # the system prompt alone
    assert all(m.stable_chars == 0 for m in bare.messages[1:])
