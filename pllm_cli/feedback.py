"""What the user thinks of pllm's answers: the last answer kept, judgements recorded, corrections used again.

Per persona, in its folder (files 0600, each replaced atomically):

- last-answer.json: the last answer of `pllm ask` or of a chat turn (run here or by `pllm serve`), what
  `pllm feedback good|bad` judges.
- feedback.json: the judgements, each with its question, answer, sources, fix and note, and the question's
  embedding so that a correction is found again for the same question asked in other words.

A fix is used at once: the next question close enough to a fixed one gets the fix in its prompt (`guidance`);
an answer judged bad for such a question is not given again (chat.Reply). docs/feedback.md has the measurements
and the record format a preference-tuning step reads (`preference_pairs`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pllm_cli.citations import strip_citations
from pllm_cli.errors import InputError, NotFoundError, StoreError, UsageError
from pllm_cli.locking import exclusive
from pllm_cli.memory.passages import Passage
from pllm_cli.memory.records import Chunk
from pllm_cli.paths import Paths, write_private_text
from pllm_cli.profile.state import decode_vector, encode_vector, now

FORMAT_VERSION = 1
JUDGEMENTS = ("good", "bad")
MAX_TEXT_CHARS = 2000  # a fix or a note: a paragraph, not a document
# Cosine (all-MiniLM-L6-v2) at or above which a question is "the same question" as a judged one: measured on
# paraphrases against unrelated personal questions (bench/feedback_prompt.py, docs/feedback.md).
SIMILAR = 0.60
MOST_CORRECTIONS = 1  # corrections put in one prompt: the closest (the newest of equals)
CORRECTION_SOURCE = "your correction"
WAIT_SECONDS = 10.0  # feedback is typed by hand: wait a little for another pllm recording some
# the fields of an answer's --json source that identify it; its text is not copied (a forgotten memory's text
# must not live on here)
SOURCE_FIELDS = ("n", "cited", "source", "kind", "heading", "conversation", "chunk_ids", "message_ids", "start_time")
_VERDICT = re.compile(r"\s*\(not in my memories[^)]*\)\s*$")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def normalized(answer: str) -> str:
    """An answer as compared with another: without pllm's citations and verdict, lower case, words only."""
    text = _VERDICT.sub("", strip_citations(answer))
    return " ".join(_WORD.findall(text.casefold()))


def model_words(answer: str) -> str:
    """An answer without pllm's citations and verdict: the words a model is tuned to give or not."""
    return _VERDICT.sub("", strip_citations(answer)).strip()


def _source_ids(source: dict[str, Any]) -> dict[str, Any]:
    return {key: source[key] for key in SOURCE_FIELDS if key in source}


@dataclass(frozen=True)
class LastAnswer:
    """One answer as `pllm ask --json` gives it, less the memories' text: what `pllm feedback` judges."""

    id: str
    question: str
    answer: str
    sources: list[dict[str, Any]]  # the memories in its prompt: ids, paths, and whether the answer cites each
    model: str
    time: str

    @classmethod
    def of(cls, reply: dict[str, Any], model: str, when: str | None = None) -> LastAnswer:
        """From an answer's `to_dict` (chat.Reply, or a reply streamed from `pllm serve`)."""
        when = when or now()
        question, answer = str(reply.get("question", "")), str(reply.get("answer", ""))
        sources = [_source_ids(s) for s in reply.get("sources") or []]
        return cls(
            id="a" + secrets.token_hex(6), question=question, answer=answer, sources=sources, model=model, time=when
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LastAnswer:
        return cls(
            id=str(data["id"]),
            question=str(data["question"]),
            answer=str(data["answer"]),
            sources=list(data.get("sources") or []),
            model=str(data.get("model", "")),
            time=str(data.get("time", "")),
        )


@dataclass(frozen=True)
class Feedback:
    """One judgement of one answer. `fix` is the right answer in the user's words ("" if none given)."""

    id: str
    time: str
    judgement: str  # good | bad
    question: str
    answer: str
    fix: str
    note: str
    sources: list[dict[str, Any]]
    model: str
    answer_id: str
    answered_at: str
    embedding_model: str = ""
    vector: tuple[float, ...] = field(default=(), repr=False)  # the question's embedding

    @staticmethod
    def make_id(answer_id: str) -> str:
        return "fb" + hashlib.sha256(answer_id.encode()).hexdigest()[:7]

    def to_dict(self, *, vector: bool = False) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key != "vector"}
        if vector:
            data["vector"] = encode_vector(self.vector) if self.vector else ""
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feedback:
        return cls(
            id=str(data["id"]),
            time=str(data["time"]),
            judgement=str(data["judgement"]),
            question=str(data["question"]),
            answer=str(data["answer"]),
            fix=str(data.get("fix") or ""),
            note=str(data.get("note") or ""),
            sources=list(data.get("sources") or []),
            model=str(data.get("model", "")),
            answer_id=str(data.get("answer_id", "")),
            answered_at=str(data.get("answered_at", "")),
            embedding_model=str(data.get("embedding_model", "")),
            vector=decode_vector(data["vector"]) if data.get("vector") else (),
        )


@dataclass
class Guidance:
    """What the feedback says for one question: fixes of close questions (as memories), answers judged bad."""

    corrections: list[Passage] = field(default_factory=list)
    rejected: frozenset[str] = frozenset()  # normalized answers not to give again


Embed = Callable[[str], Sequence[float]]


class FeedbackStore:
    """The persona's last answer and judgements. Readers take no lock; writers of feedback.json take one."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # the last answer -----------------------------------------------------------------------------
    def keep_last(self, answer: LastAnswer) -> None:
        write_private_text(self.paths.last_answer_file, json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))

    def last(self) -> LastAnswer | None:
        data = self._read(self.paths.last_answer_file)
        return LastAnswer.from_dict(data) if data else None

    def answer_of(self, reply: dict[str, Any], model: str) -> LastAnswer:
        """The kept last answer if it is `reply` (a chat's last turn), else `reply` as one: another pllm may
        have answered something since, and a chat judges its own turn."""
        kept = self.last()
        if kept is not None and (kept.question, kept.answer) == (reply.get("question"), reply.get("answer")):
            return kept
        return LastAnswer.of(reply, model)

    # judgements ------------------------------------------------------------------------------------
    def records(self) -> list[Feedback]:
        data = self._read(self.paths.feedback_file)
        return [Feedback.from_dict(item) for item in (data or {}).get("feedback", [])]

    def record(
        self,
        answer: LastAnswer,
        judgement: str,
        *,
        fix: str = "",
        note: str = "",
        embed: Embed | None = None,
        embedding_model: str = "",
    ) -> tuple[Feedback, bool]:
        """Record the judgement of `answer` (one per answer: a second one replaces the first); the record and
        whether it replaced one. `embed` embeds the question, for finding the fix again."""
        if judgement not in JUDGEMENTS:
            raise UsageError(f"unknown judgement {judgement!r}", hint="good or bad")
        fix, note = _clean(fix, "--fix"), _clean(note, "--note")
        if fix and judgement == "good":
            raise UsageError("a fix goes with a bad answer", hint='pllm feedback bad --fix "the right answer"')
        vector = tuple(float(v) for v in embed(answer.question)) if embed is not None else ()
        feedback = Feedback(
            id=Feedback.make_id(answer.id),
            time=now(),
            judgement=judgement,
            question=answer.question,
            answer=answer.answer,
            fix=fix,
            note=note,
            sources=answer.sources,
            model=answer.model,
            answer_id=answer.id,
            answered_at=answer.time,
            embedding_model=embedding_model if vector else "",
            vector=vector,
        )
        with self._lock():
            records = self.records()
            replaced = any(r.id == feedback.id for r in records)
            self._save([r for r in records if r.id != feedback.id] + [feedback])
        return feedback, replaced

    def forget(self, feedback_id: str | None) -> list[Feedback]:
        """Remove one judgement (its id or a unique prefix), or every one (None), and the last answer if it was
        one of those judged: nothing of them is left in the persona's folder."""
        with self._lock():
            records = self.records()
            if feedback_id is None:
                gone = records
            else:
                gone = [r for r in records if r.id.startswith(feedback_id.strip())] if feedback_id.strip() else []
                if not gone:
                    raise NotFoundError(f"no feedback {feedback_id!r}", hint="see the ids: pllm feedback list")
                if len(gone) > 1:
                    raise InputError(f"{feedback_id!r} matches {len(gone)} records", hint="give more of the id")
            ids = {r.id for r in gone}
            self._save([r for r in records if r.id not in ids])
            last = self.last()
            if last is not None and last.id in {r.answer_id for r in gone}:
                self.paths.last_answer_file.unlink(missing_ok=True)
        return gone

    # using them -------------------------------------------------------------------------------------
    def guidance(self, question: str, embed: Embed | None, embedding_model: str = "") -> Guidance:
        """The fixes and bad answers of questions close to `question`. Embeds it only if some exist."""
        useful = [r for r in self.records() if r.fix or r.judgement == "bad"]
        if not useful:
            return Guidance()
        vector: Sequence[float] | None = None
        if embed is not None and any(r.vector and r.embedding_model == embedding_model for r in useful):
            vector = embed(question)
        close = [(score, r) for r in useful if (score := similarity(question, vector, embedding_model, r)) >= SIMILAR]
        close.sort(key=lambda pair: (pair[0], pair[1].time), reverse=True)
        fixes: list[Passage] = []
        seen: set[str] = set()
        for score, record in close:
            if record.fix and normalized(record.fix) not in seen and len(fixes) < MOST_CORRECTIONS:
                seen.add(normalized(record.fix))
                fixes.append(correction_passage(record, score))
        rejected = frozenset(normalized(r.answer) for _, r in close if r.judgement == "bad") - seen - {""}
        return Guidance(corrections=fixes, rejected=rejected)

    # files ------------------------------------------------------------------------------------------
    def _lock(self) -> Any:
        return exclusive(self.paths.feedback_lock_file, "recording feedback", wait=WAIT_SECONDS)

    def _save(self, records: list[Feedback]) -> None:
        data = {"version": FORMAT_VERSION, "feedback": [r.to_dict(vector=True) for r in records]}
        write_private_text(self.paths.feedback_file, json.dumps(data, ensure_ascii=False, indent=1))

    @staticmethod
    def _read(path: Any) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StoreError(f"{path} is damaged", hint=f"remove it (rm {path}); its feedback is lost")
        return data


def _clean(text: str, option: str) -> str:
    text = " ".join((text or "").split())
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"{option} holds at most {MAX_TEXT_CHARS} characters", hint="say it in fewer words")
    return text


def similarity(question: str, vector: Sequence[float] | None, embedding_model: str, record: Feedback) -> float:
    """1.0 for the same question (normalized), else the cosine of the two questions' unit embeddings."""
    if normalized(question) == normalized(record.question):
        return 1.0
    if vector is None or not record.vector or record.embedding_model != embedding_model:
        return 0.0
    if len(vector) != len(record.vector):
        return 0.0
    return float(sum(a * b for a, b in zip(vector, record.vector, strict=True)))


def correction_passage(record: Feedback, score: float) -> Passage:
    """A fix as a source of the answer: its text is the fix (prompting.CORRECTION_LINE shows it to the model)."""
    chunk = Chunk(
        id=record.id, source=CORRECTION_SOURCE, position=0, kind="text", body=record.fix, start_time=record.time
    )
    return Passage(CORRECTION_SOURCE, "correction", record.id, "", score, [chunk])


def preference_pairs(records: Sequence[Feedback]) -> list[dict[str, Any]]:
    """The judgements as a preference-tuning step reads them, one per question (normalized), newest last:
    {"prompt", "chosen", "rejected", "feedback"}; chosen is the newest fix, else the newest answer judged good
    ("" if none), rejected the answers judged bad (newest first, [] if none); feedback the records' ids."""
    groups: dict[str, list[Feedback]] = {}
    for record in sorted(records, key=lambda r: r.time):
        groups.setdefault(normalized(record.question), []).append(record)
    pairs = []
    for group in groups.values():
        fixes = [r.fix for r in group if r.fix]
        good = [model_words(r.answer) for r in group if r.judgement == "good"]
        rejected = list(dict.fromkeys(model_words(r.answer) for r in reversed(group) if r.judgement == "bad"))
        chosen = fixes[-1] if fixes else (good[-1] if good else "")
        pairs.append(
            {
                "prompt": group[-1].question,
                "chosen": chosen,
                "rejected": [a for a in rejected if normalized(a) != normalized(chosen)],
                "feedback": [r.id for r in group],
            }
        )
    return pairs
