"""LoCoMo (Maharana et al., ACL 2024) as a retrieval benchmark for pllm.

Pure functions: load the JSON file, turn one conversation into pllm's chat-jsonl records, pull out the
questions with their evidence turns, and score what was retrieved by evidence recall. Nothing here imports a
model or the store; evaluation/retrieval.py searches and packs, and scores with these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pllm_cli.memory.timeframes import MONTHS

CATEGORY_NAMES: dict[int, str] = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
RECALL_CATEGORIES: tuple[int, ...] = (1, 2, 3, 4)  # 5 (adversarial) has no answer in the conversation

Sample = Mapping[str, Any]
Hit = Mapping[str, Any]  # a hit of `pllm memory search --json`: at least "text" and "message_ids"

_SESSION_KEY = re.compile(r"session_(\d+)")
_DATE_TIME = re.compile(
    r"\s*(\d{1,2}):(\d{2})\s*([ap])\.?\s*m\.?\s+on\s+(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})\s*", re.IGNORECASE
)
_EVIDENCE_ID = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Question:
    sample_id: str
    question: str
    answer: str
    category: int
    evidence: tuple[str, ...]  # dia_ids of existing turns, e.g. ("D1:3", "D8:6"); empty only if not required

    @property
    def category_name(self) -> str:
        return CATEGORY_NAMES.get(self.category, str(self.category))


# loading and converting -------------------------------------------------------------------------------
def load_locomo(path: Path) -> list[dict[str, Any]]:
    """The samples (conversations) of a LoCoMo JSON file, e.g. locomo10.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{path}: expected a JSON list of LoCoMo samples")
    return data


def session_numbers(sample: Sample) -> list[int]:
    """The numbers of the sample's sessions that hold turns, in order."""
    conversation: Mapping[str, Any] = sample["conversation"]
    numbers = []
    for key, value in conversation.items():
        match = _SESSION_KEY.fullmatch(key)
        if match and isinstance(value, list):
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def parse_session_time(value: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> datetime(2023, 5, 8, 13, 56) (naive: LoCoMo gives no time zone)."""
    match = _DATE_TIME.fullmatch(value)
    if not match:
        raise ValueError(f"unrecognised LoCoMo session time {value!r}")
    hour, minute, half, day, month_name, year = match.groups()
    month = MONTHS.get(month_name.lower())
    if month is None:
        raise ValueError(f"unrecognised month in LoCoMo session time {value!r}")
    hour24 = int(hour) % 12 + (12 if half.lower() == "p" else 0)
    return datetime(int(year), month, int(day), hour24, int(minute))


def turn_text(turn: Mapping[str, Any]) -> str:
    """A turn's text, with its shared photo described as LoCoMo's own captions do."""
    text = str(turn.get("text", "")).strip()
    caption = str(turn.get("blip_caption") or "").strip()
    return f"{text} [shares a photo: {caption}]" if caption else text


def sample_to_chat_records(sample: Sample) -> list[dict[str, str]]:
    """One sample as chat-jsonl records (conversation, id, speaker, time, text), session by session.

    Each session is its own conversation "<sample_id>-session_<n>"; turn i (from 0) of a session is placed
    i minutes after the session's start, so the order of turns and the session's date are both kept.
    """
    sample_id = str(sample["sample_id"])
    conversation: Mapping[str, Any] = sample["conversation"]
    records: list[dict[str, str]] = []
    for number in session_numbers(sample):
        when = conversation.get(f"session_{number}_date_time")
        if not isinstance(when, str):
            raise ValueError(f"{sample_id}: session_{number} has no session_{number}_date_time")
        start = parse_session_time(when)
        for index, turn in enumerate(conversation[f"session_{number}"]):
            records.append(
                {
                    "conversation": f"{sample_id}-session_{number}",
                    "id": str(turn["dia_id"]),
                    "speaker": str(turn["speaker"]),
                    "time": (start + timedelta(minutes=index)).isoformat(),
                    "text": turn_text(turn),
                }
            )
    return records


def write_chat_jsonl(records: Iterable[Mapping[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def dia_ids(sample: Sample) -> set[str]:
    """Every turn id (dia_id) of the sample."""
    conversation: Mapping[str, Any] = sample["conversation"]
    return {str(turn["dia_id"]) for n in session_numbers(sample) for turn in conversation[f"session_{n}"]}


# questions --------------------------------------------------------------------------------------------
def parse_evidence(evidence: str | Iterable[str]) -> list[str]:
    """Evidence ids, parsed leniently: 'D8:6; D9:17' -> ['D8:6', 'D9:17'], 'D:11:26' -> ['D11:26'].

    Order is kept and duplicates are removed; strings holding no id (e.g. 'D') give nothing.
    """
    items = [evidence] if isinstance(evidence, str) else list(evidence)
    found: dict[str, None] = {}
    for item in items:
        for match in _EVIDENCE_ID.finditer(str(item)):
            found[f"D{int(match.group(1))}:{int(match.group(2))}"] = None
    return list(found)


def extract_questions(
    sample: Sample, categories: Collection[int] = RECALL_CATEGORIES, *, require_evidence: bool = True
) -> list[Question]:
    """The sample's questions of `categories` whose evidence points at existing turns.

    Evidence ids that are not turns of this conversation are dropped, then (if `require_evidence`) questions
    left without evidence.
    """
    known = dia_ids(sample)
    sample_id = str(sample["sample_id"])
    questions: list[Question] = []
    for qa in sample.get("qa", []):
        category = int(qa.get("category", 0))
        if category not in categories:
            continue
        evidence = tuple(e for e in parse_evidence(qa.get("evidence") or []) if e in known)
        if not evidence and require_evidence:
            continue
        answer = qa.get("answer", qa.get("adversarial_answer", ""))
        questions.append(
            Question(
                sample_id=sample_id,
                question=" ".join(str(qa["question"]).split()),
                answer="" if answer is None else str(answer),
                category=category,
                evidence=evidence,
            )
        )
    return questions


# metrics ----------------------------------------------------------------------------------------------
def evidence_share(hits: Iterable[Hit], evidence: Collection[str]) -> float:
    """The share (0-1) of the evidence ids that appear in the hits' message_ids."""
    wanted = set(evidence)
    if not wanted:
        raise ValueError("a question without evidence cannot be scored")
    found: set[str] = set()
    for hit in hits:
        found.update(str(i) for i in hit.get("message_ids") or ())
    return len(wanted & found) / len(wanted)


def recall_at_k(hits: Sequence[Hit], evidence: Collection[str], k: int) -> float:
    """Evidence recall of the top k hits, whatever their size."""
    return evidence_share(hits[:k], evidence)


def aggregate(results: Iterable[tuple[int, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each metric, as a percentage, under 'overall' and under each category's name.

    `results` holds (category, scores) per question; every group also gets 'n', its number of questions.
    Categories appear in their numeric order, after 'overall'.
    """
    groups: dict[str, list[Mapping[str, float]]] = {"overall": []}
    by_category: dict[int, list[Mapping[str, float]]] = {}
    for category, scores in results:
        groups["overall"].append(scores)
        by_category.setdefault(category, []).append(scores)
    for category in sorted(by_category):
        groups[CATEGORY_NAMES.get(category, str(category))] = by_category[category]
    table: dict[str, dict[str, float]] = {}
    for name, rows in groups.items():
        summary: dict[str, float] = {"n": float(len(rows))}
        for key in dict.fromkeys(key for row in rows for key in row):
            values = [row[key] for row in rows if key in row]
            summary[key] = round(100.0 * sum(values) / len(values), 2) if values else 0.0
        table[name] = summary
    return table
