"""Context steering (pllm_cli/steering.py): the combination math with numpy, then the real bundled model.

The model tests are marked e2e: strength 0 must give token for token the answer of LlamaCppModel.stream, the
two sequences of the steering context must not disturb each other, and a positive strength must move the answer
toward the personal context.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy
import pytest
from conftest import FakeChatModel

from pllm_cli.errors import TooLongError
from pllm_cli.runtime import ChatMessage, LlamaCppModel
from pllm_cli.steering import SteeringContext, log_softmax, steer_logits, steered_logprobs

SYSTEM = "You are Maya's personal assistant. Answer using Maya's notes. Be brief and specific."


def with_and_without(profile: str, question: str) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """The prompt with the personal context (a profile) and the same prompt without it."""
    return (
        [ChatMessage("system", f"{SYSTEM}\n\nAbout Maya:\n{profile}"), ChatMessage("user", question)],
        [ChatMessage("system", SYSTEM), ChatMessage("user", question)],
    )


MANAGER = with_and_without("My manager is Karin Ek.", "Who is my manager?")
# the model answers only the first question when it is not steered
TWO_QUESTIONS = with_and_without(
    "Maya's favourite colour is green. My manager is Karin Ek. I live in Göteborg.",
    "What is the capital of France? And who is my manager?",
)
NOTE = (
    [
        ChatMessage("system", SYSTEM),
        ChatMessage("user", "My notes:\n\n[1] from work.md:\nKarin Ek is my manager since 2021.\n\nQuestion: Who?"),
    ],
    [ChatMessage("system", SYSTEM), ChatMessage("user", "Who?")],
)


# --- the combination, on numbers --------------------------------------------------------------------------


def test_strength_zero_is_the_identity() -> None:
    rng = numpy.random.default_rng(1)
    with_context = rng.normal(size=50).astype(numpy.float32) * 5
    without_context = rng.normal(size=50).astype(numpy.float32) * 5
    assert numpy.array_equal(steer_logits(with_context, without_context, 0.0), with_context)
    assert numpy.allclose(steered_logprobs(with_context, without_context, 0.0), log_softmax(with_context))


def test_known_values() -> None:
    with_context = numpy.array([2.0, 1.0, 0.0])
    without_context = numpy.array([0.0, 1.0, 2.0])
    # λ = 1: lp_ctx + (lp_ctx - lp_none) = 2·ctx - none + a constant = [4, 1, -2] + c
    total = math.exp(4) + math.exp(1) + math.exp(-2)
    expected = [4 - math.log(total), 1 - math.log(total), -2 - math.log(total)]
    assert numpy.allclose(steered_logprobs(with_context, without_context, 1.0), expected)
    # λ = 0.5 on equal runs changes nothing: the context adds no evidence
    assert numpy.allclose(steered_logprobs(with_context, with_context, 0.5), log_softmax(with_context))
    # a token only the context supports gains: its probability rises with λ
    probabilities = [math.exp(steered_logprobs(with_context, without_context, s)[0]) for s in (0.0, 0.5, 1.0, 2.0)]
    assert probabilities == sorted(probabilities) and probabilities[0] < probabilities[-1]


@pytest.mark.parametrize("strength", [0.25, 1.0, 3.0])
def test_sampled_scores_are_the_steered_distribution(strength: float) -> None:
    """The scores given to the sampler differ from the steered log-probabilities by a constant only."""
    rng = numpy.random.default_rng(2)
    with_context = rng.normal(size=(4, 300)) * 4
    without_context = rng.normal(size=(4, 300)) * 4
    scores = steer_logits(with_context, without_context, strength)
    assert numpy.allclose(log_softmax(scores), steered_logprobs(with_context, without_context, strength))


def test_log_softmax_is_stable_for_large_logits() -> None:
    values = log_softmax(numpy.array([1000.0, 999.0, -1000.0]))
    assert numpy.isfinite(values).all()
    assert numpy.isclose(numpy.exp(values).sum(), 1.0)


def test_the_fake_model_records_a_steered_call(fake_model: FakeChatModel) -> None:
    messages, plain = MANAGER
    answer = "".join(fake_model.stream_steered(messages, plain, strength=1.5, max_tokens=8, temperature=0, seed=1))
    assert answer == fake_model.answer
    [call] = fake_model.calls
    assert call["messages"] == messages and call["plain_messages"] == plain and call["strength"] == 1.5


# --- the real bundled model ------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("prompt", [MANAGER, TWO_QUESTIONS, NOTE], ids=["manager", "two-questions", "note"])
@pytest.mark.parametrize(("temperature", "seed"), [(0.0, 0), (0.8, 7)], ids=["greedy", "sampled"])
def test_strength_zero_gives_the_answer_of_stream(
    real_model: Any, prompt: tuple[list[ChatMessage], list[ChatMessage]], temperature: float, seed: int
) -> None:
    messages, plain = prompt
    settings: dict[str, Any] = {"max_tokens": 24, "temperature": temperature, "seed": seed}
    streamed = list(real_model.stream(messages, **settings))
    steered = list(real_model.stream_steered(messages, plain, strength=0.0, **settings))
    assert steered == streamed  # piece for piece: one piece per token on both sides
    assert "".join(steered).strip()


@pytest.mark.e2e
@pytest.mark.parametrize("max_tokens", [5, 6, 7, 8, 9])
def test_strength_zero_cuts_a_split_character_as_stream_does(real_model: Any, max_tokens: int) -> None:
    """Japanese comes out of the bundled model byte by byte: characters span tokens, and max_tokens falls
    inside one for some of these limits."""
    messages = [ChatMessage("user", "Écris une phrase en japonais: 日本語を勉強しています。")]
    settings: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "seed": 0}
    streamed = list(real_model.stream(messages, **settings))
    assert list(real_model.stream_steered(messages, messages, strength=0.0, **settings)) == streamed
    assert "\ufffd" not in "".join(streamed)


@pytest.mark.e2e
def test_strength_zero_without_a_seed_follows_the_llamas_seed_as_stream_does(real_model: Any) -> None:
    messages, plain = MANAGER
    settings: dict[str, Any] = {"max_tokens": 16, "temperature": 1.0, "seed": None}
    real_model.llama.set_seed(1234)
    streamed = list(real_model.stream(messages, **settings))
    real_model.llama.set_seed(1234)
    assert list(real_model.stream_steered(messages, plain, strength=0.0, **settings)) == streamed


@pytest.mark.e2e
def test_steered_sampling_is_repeatable_with_a_seed(real_model: Any) -> None:
    messages, plain = TWO_QUESTIONS
    settings: dict[str, Any] = {"strength": 1.0, "max_tokens": 16, "temperature": 0.8}
    first = "".join(real_model.stream_steered(messages, plain, seed=5, **settings))
    assert first == "".join(real_model.stream_steered(messages, plain, seed=5, **settings))


@pytest.mark.e2e
def test_the_two_sequences_do_not_disturb_each_other(real_model: Any) -> None:
    """Sequence 0's logits are bit for bit those of the Llama's own context, with sequence 1 beside it or not."""
    llama = real_model.llama
    with_context, without_context = (real_model._prompt_tokens(m) for m in MANAGER)
    continuation = llama.tokenize(b" Karin Ek is your manager.", add_bos=False)
    llama.reset()
    llama.eval(with_context)
    alone = [numpy.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),)).copy()]
    for token in continuation:
        llama.eval([token])
        alone.append(numpy.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),)).copy())
    llama.reset()

    steering = SteeringContext(llama)
    try:
        steering.prepare(len(with_context) + len(continuation))
        paired = [steering.evaluate_prompt(with_context, 0)]
        steering.evaluate_prompt(without_context, 1)
        positions = [len(with_context), len(without_context)]
        for token in continuation:
            paired.append(steering.step(token, positions)[0].copy())
            positions = [p + 1 for p in positions]
    finally:
        steering.close()
    for mine, theirs in zip(paired, alone, strict=True):
        assert numpy.array_equal(mine, theirs)


@pytest.mark.e2e
def test_steering_raises_the_probability_of_the_contexts_answer(real_model: Any) -> None:
    llama = real_model.llama
    with_context, without_context = (real_model._prompt_tokens(m) for m in MANAGER)
    steering = SteeringContext(llama)
    try:
        steering.prepare(len(with_context))
        first = [steering.evaluate_prompt(with_context, 0), steering.evaluate_prompt(without_context, 1)]
    finally:
        steering.close()
    karin = {llama.tokenize(text, add_bos=False)[0] for text in (b"Karin", b" Karin")}  # the answer's first token
    chances = [
        sum(math.exp(steered_logprobs(*first, strength)[token]) for token in karin) for strength in (0.0, 0.5, 1.0, 2.0)
    ]
    assert chances == sorted(chances), chances
    assert chances[2] > chances[0] + 0.1, chances


@pytest.mark.e2e
def test_steering_moves_the_answer_toward_the_context(real_model: Any) -> None:
    messages, plain = TWO_QUESTIONS
    settings: dict[str, Any] = {"max_tokens": 32, "temperature": 0.0, "seed": 0}
    unsteered = "".join(real_model.stream_steered(messages, plain, strength=0.0, **settings))
    steered = "".join(real_model.stream_steered(messages, plain, strength=1.0, **settings))
    assert "Paris" in unsteered and "Karin" not in unsteered, unsteered
    assert "Karin Ek" in steered, steered


@pytest.mark.e2e
def test_the_steering_context_shares_the_weights(real_model: Any) -> None:
    """No second copy of the model: the GGUF stays mapped as often as before, and RSS grows by far less than
    its size (the KV cache of a small context and llama.cpp's compute buffers only)."""

    def mappings() -> int:
        lines = Path("/proc/self/maps").read_text().splitlines()
        return sum(1 for line in lines if line.endswith(str(real_model.path)))

    def rss() -> int:
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))

    before, rss_before = mappings(), rss()
    messages, plain = MANAGER
    "".join(real_model.stream_steered(messages, plain, strength=1.0, max_tokens=4, temperature=0.0, seed=0))
    assert before >= 1
    assert mappings() == before
    assert rss() - rss_before < real_model.path.stat().st_size / 2


@pytest.fixture(scope="module")
def small_model() -> LlamaCppModel:
    """The bundled model in a 256-token context, for prompts that fill it."""
    return LlamaCppModel(context_size=256)


def long_question(model: LlamaCppModel, tokens: int) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """A prompt of exactly `tokens` tokens with its personal context, and the short one without it."""
    filler = "Karin Ek is my manager and she approves the budget of the rain garden project. "
    profile = filler
    while model.count_prompt_tokens(with_and_without(profile, "Who?")[0]) < tokens:
        profile += "more "
    messages, plain = with_and_without(profile, "Who?")
    assert model.count_prompt_tokens(messages) == tokens
    return messages, plain


@pytest.mark.e2e
def test_a_prompt_near_the_context_size_gets_the_room_that_is_left(small_model: LlamaCppModel) -> None:
    messages, plain = long_question(small_model, 250)
    settings: dict[str, Any] = {"max_tokens": 64, "temperature": 0.0, "seed": 0}
    streamed = list(small_model.stream(messages, **settings))
    assert streamed == list(small_model.stream_steered(messages, plain, strength=0.0, **settings))
    steered = list(small_model.stream_steered(messages, plain, strength=1.0, **settings))
    assert len(steered) <= 256 - 250  # cut to the context, as create_chat_completion cuts max_tokens


@pytest.mark.e2e
def test_a_prompt_longer_than_the_context_is_an_error(small_model: LlamaCppModel) -> None:
    messages, plain = long_question(small_model, 260)
    with pytest.raises(TooLongError, match="260 tokens; it does not fit the 256-token context"):
        small_model.stream_steered(messages, plain, strength=1.0, max_tokens=8, temperature=0.0, seed=0)
