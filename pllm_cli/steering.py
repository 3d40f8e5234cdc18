"""Context steering: contrastive decoding over the personal context.

As in context-aware decoding (Shi et al. 2023, "Trusting Your Evidence") and Context Steering (He et al. 2024),
every answer token is chosen from two runs of the same model: one on the prompt WITH the personal context
(profile + memories) and one on the prompt WITHOUT it (the same system prompt and question), each continued
with the tokens generated so far. The next-token distribution is

    log_softmax(lp_ctx + λ·(lp_ctx - lp_none)),   lp_* = log_softmax(logits of that run)

so λ (the strength) pushes the answer toward what the context makes more likely than the model's prior; λ = 0
is plain decoding.

How it runs in llama.cpp: one loaded model, no second copy of the weights. A second llama.cpp context over the
Llama's own `llama_model` holds both runs as two sequences (seq 0 with the context, seq 1 without), and each
step decodes ONE batch of two tokens, one per sequence, with separate logits. The KV cache of that context is
not unified (each sequence has its own stream of cells): with a unified cache, sequence 0's logits drifted from
those of a one-sequence context by up to ~1.0 once sequence 1's cells sat between its own (measured with this
llama.cpp), while separate streams reproduce them bit for bit, which is what makes λ = 0 give exactly the
answer of `Llama.create_chat_completion`.

Sampling is llama-cpp-python's own sampler chain (`Llama._init_sampler`: the same penalties, top-k/top-p/min-p,
temperature and seed as `create_chat_completion`), applied to the steered scores instead of the raw logits.
The steered scores are `logits_ctx + λ·(lp_ctx - lp_none)`: the same distribution as the formula above (they
differ by a constant per step), and at λ = 0 exactly the raw logits. The repeat penalty is not invariant under a
constant shift (it divides positive scores and multiplies negative ones), so scoring the normalized
log-probabilities instead would have changed today's answers.
"""

from __future__ import annotations

import codecs
import ctypes
import random
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from pllm_cli.errors import TooLongError

SEQUENCES = 2  # 0: the prompt with the personal context, 1: without it
CELL_ROUNDING = 256  # llama.cpp pads a context to a multiple of 256 cells anyway
# create_chat_completion's defaults (llama_cpp/llama_chat_format.py), which `LlamaCppModel.stream` keeps
TOP_K, TOP_P, MIN_P, TYPICAL_P = 40, 0.95, 0.05, 1.0
# Tokens past max_tokens that may finish a character cut across tokens: create_completion keeps going until the
# character is whole (with no bound); a UTF-8 character has at most 3 bytes after its first.
UTF8_GRACE = 3


def log_softmax(logits: Any) -> Any:
    """log_softmax over the last axis, in the dtype given."""
    import numpy

    shifted = logits - numpy.max(logits, axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.sum(numpy.exp(shifted), axis=-1, keepdims=True))


def steered_logprobs(with_context: Any, without_context: Any, strength: float) -> Any:
    """The steered next-token log-probabilities: log_softmax(lp_ctx + λ·(lp_ctx - lp_none))."""
    with_lp = log_softmax(with_context)
    return log_softmax(with_lp + strength * (with_lp - log_softmax(without_context)))


def steer_logits(with_context: Any, without_context: Any, strength: float) -> Any:
    """Scores to sample from: logits_ctx + λ·(lp_ctx - lp_none).

    Their log_softmax is `steered_logprobs(...)` (they differ by a constant), and at λ = 0 they are
    `with_context` itself, so every sampler (penalties included) sees exactly the logits of plain decoding.
    """
    if strength == 0:
        return with_context
    return with_context + strength * (log_softmax(with_context) - log_softmax(without_context))


class SteeringContext:
    """A llama.cpp context beside the Llama's own, over the same weights, with room for two sequences.

    Built on first use and rebuilt only when a longer prompt needs more cells; `close()` frees its KV cache.
    Each sequence has its own stream of `cells_per_sequence` cells (kv_unified off, see the module docstring),
    so the KV cache is twice that many cells.
    """

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.n_vocab = int(llama.n_vocab())
        self.cells_per_sequence = 0
        self.batch_size = int(llama.context_params.n_batch)
        self._context: Any = None
        self._batch: Any = None

    def prepare(self, cells: int) -> None:
        """Make the context empty, with at least `cells` cells per sequence."""
        import llama_cpp
        from llama_cpp import _internals

        if self._context is not None and self.cells_per_sequence >= cells:
            self._context.kv_cache_clear()
            return
        self.close()
        # The Llama's own settings (threads, batch sizes, KV cache types, flash attention off), two sequences.
        params = llama_cpp.llama_context_params.from_buffer_copy(self.llama.context_params)
        params.n_ctx = -(-cells // CELL_ROUNDING) * CELL_ROUNDING * SEQUENCES
        params.n_seq_max = SEQUENCES
        params.kv_unified = False
        self._context = _internals.LlamaContext(model=self.llama._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(
            n_tokens=max(self.batch_size, SEQUENCES), embd=0, n_seq_max=1, verbose=False
        )
        self.cells_per_sequence = int(llama_cpp.llama_n_ctx_seq(self._context.ctx))

    def evaluate_prompt(self, tokens: Sequence[int], sequence: int) -> Any:
        """Decode a prompt into `sequence` in chunks of n_batch, as Llama.eval does; a copy of its last logits."""
        for start in range(0, len(tokens), self.batch_size):
            chunk = tokens[start : start + self.batch_size]
            last = start + len(chunk) == len(tokens)
            self._decode([(t, start + i, sequence, last and i == len(chunk) - 1) for i, t in enumerate(chunk)])
        return self._logits(len(chunk) - 1).copy()

    def step(self, token: int, positions: Sequence[int]) -> list[Any]:
        """Append `token` to each sequence (at its position) in ONE batch; each one's next-token logits.

        The arrays are views into llama.cpp's buffer, valid until the next decode."""
        self._decode([(token, position, sequence, True) for sequence, position in enumerate(positions)])
        return [self._logits(row) for row in range(len(positions))]

    def _decode(self, rows: Sequence[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) rows."""
        raw = self._batch.batch
        raw.n_tokens = len(rows)
        for i, (token, position, sequence, logits) in enumerate(rows):
            raw.token[i] = token
            raw.pos[i] = position
            raw.seq_id[i][0] = sequence
            raw.n_seq_id[i] = 1
            raw.logits[i] = logits
        self._context.decode(self._batch)

    def _logits(self, row: int) -> Any:
        import numpy

        return numpy.ctypeslib.as_array(self._context.get_logits_ith(row), shape=(self.n_vocab,))

    def close(self) -> None:
        if self._context is not None:
            self._context.close()
            self._batch.close()
        self._context, self._batch, self.cells_per_sequence = None, None, 0


def _missing_utf8_bytes(data: bytes) -> int:
    """Bytes still missing from a character cut at the end of `data`, by llama-cpp-python's rule.

    Llama._create_completion looks at the last three bytes, taking k = 3, 2, 1 for them (whatever the length of
    the text), and for a lead byte of an n-byte character with n > k reports n - k; the last such byte wins.
    Applying the same rule makes λ = 0 stop on the same token as create_completion at max_tokens.
    """
    missing = 0
    for index, byte in enumerate(data[-3:]):
        k = 3 - index
        length = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 0
        if length > k:
            missing = length - k
    return missing


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop text (so not shown yet)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop), len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return held


def steered_tokens(
    llama: Any,
    with_context: Sequence[int],
    without_context: Sequence[int],
    *,
    strength: float,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    stop_tokens: Collection[int] = (),
    stop_texts: Sequence[str] = (),
    repeat_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    context: SteeringContext | None = None,
) -> Iterator[str]:
    """Generate from two prompts of token ids, yielding text pieces (never half a UTF-8 character).

    `strength` is λ; at 0 the prompt without the context is not evaluated at all and the tokens are those of
    `Llama.create_completion` with the same settings. Temperature 0 is greedy; above 0 the sampler draws with
    `seed` (None: the Llama's own seed sequence, as create_completion does). Generation stops at an
    end-of-generation token of the vocabulary (the chat template's end of turn included), at any of
    `stop_tokens`, at a stop text (cut off, as create_completion does) or after `max_tokens` tokens, which is
    cut to the room left in the Llama's context. `context` is reused between calls when given.

    A prompt that does not fit the Llama's context raises TooLongError here, before any decoding.
    """
    steering = strength != 0
    prompts = [with_context, without_context] if steering else [with_context]
    n_ctx = int(llama.n_ctx())
    for prompt, which in zip(prompts, ("with", "without"), strict=False):
        if not prompt:
            raise ValueError(f"the prompt {which} the personal context is empty")
        if len(prompt) >= n_ctx:
            raise TooLongError(
                f"the prompt {which} the personal context is {len(prompt)} tokens; it does not fit the "
                f"{n_ctx}-token context",
                hint="shorten the question or the memories, or raise context_size (pllm config set context_size 8192)",
            )
    if max_tokens <= 0 or max_tokens + len(with_context) > n_ctx:
        max_tokens = n_ctx - len(with_context)  # as create_completion does
    settings = {
        "top_k": TOP_K,
        "top_p": TOP_P,
        "min_p": MIN_P,
        "typical_p": TYPICAL_P,
        "temp": temperature,
        "repeat_penalty": repeat_penalty,
        "frequency_penalty": frequency_penalty,
        "presence_penalty": presence_penalty,
    }
    return _generate(llama, prompts, strength, max_tokens, seed, settings, stop_tokens, stop_texts, context)


def _generate(
    llama: Any,
    prompts: Sequence[Sequence[int]],
    strength: float,
    max_tokens: int,
    seed: int | None,
    settings: dict[str, float],
    stop_tokens: Collection[int],
    stop_texts: Sequence[str],
    context: SteeringContext | None,
) -> Iterator[str]:
    import llama_cpp
    import numpy

    owned = context is None
    steer = context or SteeringContext(llama)
    steer.prepare(max(map(len, prompts)) + max_tokens + UTF8_GRACE)
    n_vocab = int(llama.n_vocab())
    vocab = llama._model.vocab
    llama.set_seed(seed if seed is not None else random.Random(llama._seed).randint(0, 2**32))
    sampler = llama._init_sampler(**settings)  # the chain create_completion builds (llama_cpp/llama.py)
    candidates = numpy.zeros(
        n_vocab, dtype=numpy.dtype([("id", numpy.intc), ("logit", numpy.single), ("p", numpy.single)], align=True)
    )
    ids = numpy.arange(n_vocab, dtype=numpy.intc)
    array = llama_cpp.llama_token_data_array(
        data=candidates.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
    )
    stops = set(stop_tokens)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        logits = [steer.evaluate_prompt(prompt, sequence) for sequence, prompt in enumerate(prompts)]
        positions = [len(prompt) for prompt in prompts]
        generated = bytearray()
        text, shown, cut, skip = "", 0, False, 0
        last = max_tokens + UTF8_GRACE
        for count in range(1, last + 1):
            candidates["id"] = ids
            candidates["logit"] = steer_logits(logits[0], logits[-1], strength)
            candidates["p"] = 0.0
            array.size, array.selected, array.sorted = n_vocab, -1, False
            llama_cpp.llama_sampler_apply(sampler.sampler, ctypes.byref(array))
            token = int(candidates["id"][array.selected])
            sampler.accept(token)
            if token in stops or llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            piece = llama.detokenize([token])
            generated += piece
            text += decoder.decode(piece)
            skip = _missing_utf8_bytes(bytes(generated[-3:])) or skip
            if skip:  # a character is still cut: neither a stop text nor max_tokens ends the answer here
                skip -= 1
            else:
                found = [text.index(stop) for stop in stop_texts if stop in text]
                if found:
                    text, cut = text[: min(found)], True
                    break
                visible = len(text) - _held_back(text, stop_texts)
                if visible > shown:
                    yield text[shown:visible]
                    shown = visible
                if count >= max_tokens:
                    break
            if count == last:
                break
            logits = steer.step(token, positions)
            positions = [position + 1 for position in positions]
        if not cut:
            text += decoder.decode(b"", final=True)
        if len(text) > shown:
            yield text[shown:]
    finally:
        sampler.close()
        if owned:
            steer.close()
