"""Scoring answers to LoCoMo questions the way the benchmark does, without a model.

The rules are those of the scorer of Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM
Agents" (ACL 2024): task_eval/evaluation.py in github.com/snap-research/locomo. Answers are normalized, split
into Porter-stemmed tokens and compared by token F1; multi-hop questions (category 1) by the mean over the
gold answer's comma-separated parts; adversarial ones (category 5) by whether the answer abstains.

pllm's additions: its own abstention phrases count as abstaining, and answer_score ignores the [n] citation
markers `pllm ask` puts in answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from pllm_cli.citations import strip_citations
from pllm_cli.porter import stem

# LoCoMo's two phrases, then pllm's own two (additions: LoCoMo would score these answers 0).
ABSTENTION_PHRASES: tuple[str, ...] = (
    "no information available",
    "not mentioned",
    "not in my memories",
    "not in my notes",
)

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")


# tokens and F1 ------------------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """Commas removed, lower-cased, ASCII punctuation and the words a, an, the, and removed, spaces collapsed."""
    text = text.replace(",", "").lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """The Porter stems of the normalized text's words."""
    return [stem(word) for word in normalize_answer(text).split()]


def token_f1(prediction: str, truth: str) -> float:
    """F1 (0-1) of the two bags of tokens; 0 when they share none."""
    predicted, expected = answer_tokens(prediction), answer_tokens(truth)
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def multi_answer_f1(prediction: str, truth: str) -> float:
    """Over the truth's comma-separated parts, the mean of the best token F1 of any part of the prediction."""
    predictions = [part.strip() for part in prediction.split(",")]
    truths = [part.strip() for part in truth.split(",")]
    return sum(max(token_f1(p, t) for p in predictions) for t in truths) / len(truths)


def abstains(text: str) -> bool:
    """Whether the answer says the information is not there (contains one of ABSTENTION_PHRASES)."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in ABSTENTION_PHRASES)


def answer_score(prediction: str, answer: str, category: int) -> float:
    """LoCoMo's score (0-1) of a prediction for a question of `category` (1-5) with gold `answer`.

    Citation markers are stripped from the prediction first (a "[1, 2]" would otherwise add tokens, and its
    comma split a multi-hop answer).
    """
    if category == 5:
        return 1.0 if abstains(prediction) else 0.0
    prediction = strip_citations(prediction)
    if category == 1:
        return multi_answer_f1(prediction, answer)
    if category == 3:  # the gold answer's reasoning after ";" is not part of the answer
        return token_f1(prediction, answer.split(";")[0])
    if category in (2, 4):
        return token_f1(prediction, answer)
    raise ValueError(f"LoCoMo has no question category {category}")
