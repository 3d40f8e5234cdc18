"""`pllm eval answers`: what the user reads, scored on LoCoMo-format data, several settings side by side.

Each conversation goes into its own temporary memory (evaluation/conversations.py) with one speaker as the
user. Every chosen question is asked through the same ChatSession, prompt builder and model as `pllm ask`,
once per setting (no memory; memory; memory + profile, the profile built by the same refresh users run;
context steering at each strength asked for). Answers are scored as LoCoMo scores them
(evaluation/answer_scoring.py); citations are checked against the evidence turns of the question.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pllm_cli.chat import ChatSession, GenerationSettings, Reply
from pllm_cli.citations import strip_citations
from pllm_cli.embedding import Embedder
from pllm_cli.evaluation.answer_scoring import abstains, answer_score
from pllm_cli.evaluation.conversations import conversation_memories
from pllm_cli.evaluation.locomo import CATEGORY_NAMES, Question, extract_questions, load_locomo
from pllm_cli.memory.retrieval import Retriever
from pllm_cli.profile.render import PromptProfile
from pllm_cli.runtime import ChatModel, StructuredModel


class AnsweringModel(ChatModel, StructuredModel, Protocol):
    """A model that answers (ChatModel) and extracts profile facts (StructuredModel), as LlamaCppModel does."""


ALL_CATEGORIES: tuple[int, ...] = (1, 2, 3, 4, 5)
ANSWER_CATEGORIES: tuple[int, ...] = (1, 2, 3, 4)  # 5 has no answer: scored by abstention


@dataclass(frozen=True)
class Setting:
    """One way of asking: with or without memories and profile, and how strongly the context steers."""

    name: str
    memory: bool = True
    profile: bool = False
    steer: float = 0.0
    short: bool = True  # the answer ends with its first line (chat.short_answer)
    check: bool = True  # pllm checks the answer against the memories (grounding.py)

    def generation(self, base: GenerationSettings) -> GenerationSettings:
        return replace(base, steer=self.steer, short=self.short, check=self.check)


def settings_for(*, profile: bool, steer: Sequence[float], ablate: bool = False) -> list[Setting]:
    """The side-by-side settings: no memory, memory, memory + profile (if built), then each steering strength
    over the fullest context; `ablate`: memory again without each answering technique, to show what it adds."""
    chosen = [Setting("no memory", memory=False), Setting("memory")]
    if ablate:
        chosen += [Setting("memory -check", check=False), Setting("memory -short -check", short=False, check=False)]
    if profile:
        chosen.append(Setting("memory + profile", profile=True))
    base = "memory + profile" if profile else "memory"
    chosen += [Setting(f"{base}, steer {s:g}", profile=profile, steer=s) for s in steer if s != 0]
    return chosen


@dataclass
class Answer:
    """One question asked in one setting, scored."""

    setting: str
    sample_id: str
    category: int
    question: str
    gold: str
    answer: str
    score: float  # LoCoMo's: answer F1 for categories 1-4, 1/0 "said it is not there" for 5
    abstained: bool
    cited: list[int]  # the [n] markers of the answer that name a memory in the prompt
    cited_precision: float | None  # share of cited memories holding evidence (None: nothing cited/no evidence)
    evidence_in_prompt: float | None  # share of the evidence the prompt's memories hold (None: no memory)
    words: int
    first_token_s: float
    total_s: float
    sources: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["category_name"] = CATEGORY_NAMES.get(self.category, str(self.category))
        for key in ("score", "cited_precision", "evidence_in_prompt", "first_token_s", "total_s"):
            if data[key] is not None:
                data[key] = round(data[key], 4)
        return data


def choose_questions(
    samples: Sequence[Mapping[str, Any]], limit: int | None, categories: Iterable[int] = ALL_CATEGORIES
) -> list[Question]:
    """Every question of `categories` (in file order), or `limit` per category drawn from the whole file.

    The draw is reproducible and independent of file order: questions are ranked by a hash of their
    conversation id and text, so the same file gives the same questions on every machine."""
    every = [q for sample in samples for q in extract_questions(sample, tuple(categories), require_evidence=False)]
    if limit is None:
        return every

    def rank(q: Question) -> str:
        return hashlib.sha256(f"{q.sample_id}\0{q.question}".encode()).hexdigest()

    chosen = {id(q) for c in categories for q in sorted((q for q in every if q.category == c), key=rank)[:limit]}
    return [q for q in every if id(q) in chosen]


def score_reply(setting: Setting, question: Question, reply: Reply) -> Answer:
    used = reply.plan.used_memories
    cited = reply.cited
    evidence = set(question.evidence)
    precision = None
    if cited and evidence:
        precision = sum(bool(evidence & set(used[n - 1].message_ids)) for n in cited) / len(cited)
    in_prompt = None
    if setting.memory and evidence:
        shown = {i for memory in used for i in memory.message_ids}
        in_prompt = len(evidence & shown) / len(evidence)
    plain = strip_citations(reply.text)
    return Answer(
        setting=setting.name,
        sample_id=question.sample_id,
        category=question.category,
        question=question.question,
        gold=question.answer,
        answer=reply.text,
        score=answer_score(plain, question.answer, question.category),
        abstained=abstains(plain),
        cited=cited,
        cited_precision=precision,
        evidence_in_prompt=in_prompt,
        words=len(plain.split()),
        first_token_s=reply.timings.get("first_token_s", reply.timings.get("generate_s", 0.0)),
        total_s=reply.timings.get("total_s", 0.0),
        sources=[{"n": n, "message_ids": m.message_ids} for n, m in enumerate(used, start=1)],
    )


def summarize(answers: Sequence[Answer]) -> dict[str, float | None]:
    """The figures of one setting (percentages, words and seconds), over the answers given."""
    answerable = [a for a in answers if a.category in ANSWER_CATEGORIES]
    unanswerable = [a for a in answers if a.category not in ANSWER_CATEGORIES]
    precisions = [a.cited_precision for a in answerable if a.cited_precision is not None]
    in_prompt = [a.evidence_in_prompt for a in answerable if a.evidence_in_prompt is not None]

    def pct(values: Sequence[float]) -> float | None:
        return round(100 * sum(values) / len(values), 1) if values else None  # None: nothing to measure

    summary: dict[str, float | None] = {
        "questions": len(answers),
        "f1": pct([a.score for a in answerable]),
        **{
            CATEGORY_NAMES[c]: pct([a.score for a in answerable if a.category == c])
            for c in ANSWER_CATEGORIES
            if any(a.category == c for a in answerable)
        },
        "abstains_when_absent": pct([a.score for a in unanswerable]),
        "abstains_when_present": pct([float(a.abstained) for a in answerable]),
        "cites": pct([float(bool(a.cited)) for a in answers]),
        "citation_precision": pct(precisions),
        "evidence_in_prompt": pct(in_prompt),
        "words": round(statistics.fmean(a.words for a in answers), 1) if answers else None,
        "first_token_s": round(statistics.median(a.first_token_s for a in answers), 2) if answers else None,
        "total_s": round(statistics.median(a.total_s for a in answers), 2) if answers else None,
    }
    return summary


@dataclass
class AnswerEvaluation:
    model: str
    settings: list[Setting]
    answers: list[Answer] = field(default_factory=list)
    conversations: int = 0
    profile_facts: dict[str, int] = field(default_factory=dict)  # sample id -> facts built

    def table(self) -> dict[str, dict[str, float | None]]:
        return {s.name: summarize([a for a in self.answers if a.setting == s.name]) for s in self.settings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "conversations": self.conversations,
            "questions": len({(a.sample_id, a.question) for a in self.answers}),
            "settings": [asdict(s) for s in self.settings],
            "profile_facts": self.profile_facts,
            "summary": self.table(),
            "answers": [a.to_dict() for a in self.answers],
        }


def evaluate_answers(
    path: Path,
    embedder: Embedder,
    model: AnsweringModel,
    settings: Sequence[Setting],
    *,
    speaker: str = "a",
    limit: int | None = None,
    generation: GenerationSettings | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> AnswerEvaluation:
    """Ask every chosen question in every setting; see the module docstring."""
    from pllm_cli.profile.refresh import refresh
    from pllm_cli.profile.state import ProfileState

    samples = load_locomo(path)
    questions = choose_questions(samples, limit)
    by_sample: dict[str, list[Question]] = {}
    for q in questions:
        by_sample.setdefault(q.sample_id, []).append(q)
    evaluation = AnswerEvaluation(model=model.name, settings=list(settings))
    generation = generation or GenerationSettings()
    build_profile = any(s.profile for s in settings)

    def user(sample: Mapping[str, Any]) -> tuple[str, ...]:
        return (str(sample["conversation"][f"speaker_{speaker}"]),)

    wanted = [s for s in samples if str(s["sample_id"]) in by_sample]
    for sample, _records, store in conversation_memories(path, embedder, me=user, samples=wanted):
        sample_id = str(sample["sample_id"])
        (name,) = user(sample)
        retriever = Retriever(store, embedder, now=store.latest_time())
        profile: PromptProfile | None = None
        if build_profile:
            started = time.perf_counter()
            state = ProfileState()
            refresh(state, store.index, embedder, model, name=name, me=(name,))
            evaluation.profile_facts[sample_id] = len(state.active)
            profile = PromptProfile(state, lambda text: embedder.embed([text])[0], model.count_tokens)
            if on_progress:
                took = time.perf_counter() - started
                on_progress(f"{sample_id}: profile of {name} built, {len(state.active)} facts in {took:.0f} s")
        for setting in settings:
            for question in by_sample[sample_id]:
                session = ChatSession(
                    model,
                    retriever if setting.memory else None,
                    profile=profile if setting.profile and profile is not None else "",
                    name=name,
                    settings=setting.generation(generation),
                )
                started = time.perf_counter()
                reply = session.ask(question.question)
                for _ in reply:
                    pass
                reply.timings["total_s"] = time.perf_counter() - started
                evaluation.answers.append(score_reply(setting, question, reply))
            if on_progress:
                done = [a for a in evaluation.answers if a.setting == setting.name and a.sample_id == sample_id]
                f1 = summarize(done)["f1"]
                shown = "-" if f1 is None else f"{f1:.1f}"
                on_progress(f"{sample_id} ({name}), {setting.name}: {len(done)} questions, F1 {shown}")
        evaluation.conversations += 1
    return evaluation


COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("f1", "F1 1-4", "{:.1f}"),
    ("multi-hop", "multi", "{:.1f}"),
    ("temporal", "temp", "{:.1f}"),
    ("open-domain", "open", "{:.1f}"),
    ("single-hop", "single", "{:.1f}"),
    ("abstains_when_absent", "abst 5", "{:.0f}"),
    ("abstains_when_present", "abst 1-4", "{:.0f}"),
    ("cites", "cites", "{:.0f}"),
    ("citation_precision", "cite ok", "{:.0f}"),
    ("evidence_in_prompt", "evid", "{:.0f}"),
    ("words", "words", "{:.1f}"),
    ("first_token_s", "1st s", "{:.2f}"),
    ("total_s", "total s", "{:.2f}"),
)


def render_table(evaluation: AnswerEvaluation) -> str:
    table = evaluation.table()
    width = max([len("setting"), *(len(name) for name in table)])
    header = f"{'setting':<{width}} " + " ".join(f"{title:>8}" for _, title, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for name, row in table.items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>8}")
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)
