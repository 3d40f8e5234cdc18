"""A ChatSession for `pllm ask` and `pllm chat` from an AppContext and the request's settings: the same for a
command run in this process and for one that `pllm serve` runs for a client."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pllm_cli.chat import ChatSession, GenerationSettings, Reply
from pllm_cli.config import Config
from pllm_cli.context import AppContext
from pllm_cli.errors import ConfigError
from pllm_cli.feedback import FeedbackStore, Guidance, LastAnswer
from pllm_cli.profile.render import PromptProfile
from pllm_cli.profile.state import ProfileFiles


@dataclass(frozen=True)
class SessionOptions:
    """What `ask` and `chat` take besides the settings in Config."""

    no_memory: bool = False
    no_profile: bool = False
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionOptions:
        seed = data.get("seed")
        return cls(
            no_memory=bool(data.get("no_memory", False)),
            no_profile=bool(data.get("no_profile", False)),
            seed=int(seed) if seed is not None else None,
        )


def open_session(app: AppContext, config: Config, options: SessionOptions) -> ChatSession:
    """The session: memory (checked not to be empty) unless no_memory, the profile unless no_profile, the
    user's corrections (feedback.py), and generation settings from `config`. The models are `app`'s (built from
    its own config). Each answer given in full is kept as the persona's last answer, for `pllm feedback`."""
    if config.steer and config.model_url:
        raise ConfigError(
            "context steering needs the model's logits, which a model server (model_url) does not give",
            hint="ask with --steer 0 (or `pllm config set steer 0`), or unset model_url to steer the local model",
        )
    retriever = None
    if not options.no_memory:
        retriever = app.retriever
        retriever.require_memories()
    settings = GenerationSettings(
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        seed=options.seed,
        k=config.k,
        memory_tokens=config.memory_tokens,
        profile_tokens=config.profile_tokens,
        steer=config.steer,
    )
    files = ProfileFiles(app.paths)
    profile: str | PromptProfile = ""
    if not options.no_profile and files.exists:
        state = files.load()
        embedder = app.embedder
        same_model = state.embedding_model == embedder.name
        embed = (lambda text: embedder.embed([text])[0]) if same_model else None
        profile = PromptProfile(state, embed, app.model.count_tokens)
    feedback = FeedbackStore(app.paths)
    model = app.model

    def guidance(question: str) -> Guidance:
        embedder = app.embedder
        return feedback.guidance(question, lambda text: embedder.embed([text])[0], embedder.name)

    def keep(reply: Reply) -> None:
        feedback.keep_last(LastAnswer.of(reply.to_dict(), model.name))

    return ChatSession(
        model,
        retriever,
        profile=profile,
        name=config.display_name,
        settings=settings,
        feedback=None if options.no_memory and options.no_profile else guidance,  # the plain model: none
        on_answer=keep,
    )
