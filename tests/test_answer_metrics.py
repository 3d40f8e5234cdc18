"""Answer scoring as LoCoMo does it: the Porter stemmer, normalization, token F1, categories, citations."""

from __future__ import annotations

import pytest

from pllm_cli.citations import cited_numbers, strip_citations
from pllm_cli.evaluation.answer_scoring import (
    abstains,
    answer_score,
    answer_tokens,
    multi_answer_f1,
    normalize_answer,
    token_f1,
)
from pllm_cli.porter import stem

# The examples of Porter (1980), step by step.
PAPER_EXAMPLES = {
    # 1a
    "caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
    # 1b
    "feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled", "motoring": "motor", "sing": "sing",
    "conflated": "conflat", "troubled": "troubl", "sized": "size", "hopping": "hop", "tanned": "tan",
    "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "failing": "fail", "filing": "file",
    # 1c
    "happy": "happi", "sky": "sky",
    # 2
    "relational": "relat", "conditional": "condit", "rational": "ration", "valenci": "valenc",
    "hesitanci": "hesit", "digitizer": "digit", "conformabli": "conform", "radicalli": "radic",
    "differentli": "differ", "vileli": "vile", "analogousli": "analog", "vietnamization": "vietnam",
    "predication": "predic", "operator": "oper", "feudalism": "feudal", "decisiveness": "decis",
    "hopefulness": "hope", "callousness": "callous", "formaliti": "formal", "sensitiviti": "sensit",
    "sensibiliti": "sensibl",
    # 3
    "triplicate": "triplic", "formative": "form", "formalize": "formal", "electriciti": "electr",
    "electrical": "electr", "hopeful": "hope", "goodness": "good",
    # 4
    "revival": "reviv", "allowance": "allow", "inference": "infer", "airliner": "airlin",
    "gyroscopic": "gyroscop", "adjustable": "adjust", "defensible": "defens", "irritant": "irrit",
    "replacement": "replac", "adjustment": "adjust", "dependent": "depend", "adoption": "adopt",
    "homologou": "homolog", "communism": "commun", "activate": "activ", "angulariti": "angular",
    "homologous": "homolog", "effective": "effect", "bowdlerize": "bowdler",
    # 5
    "probate": "probat", "rate": "rate", "cease": "ceas", "controll": "control", "roll": "roll",
    # all steps
    "generalizations": "gener", "oscillators": "oscil",
}  # fmt: skip


@pytest.mark.parametrize(("word", "expected"), PAPER_EXAMPLES.items())
def test_porter_paper_examples(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_porter_leaves_short_words_and_plain_stems() -> None:
    assert [stem(w) for w in ("as", "is", "us", "run", "paris")] == ["as", "is", "us", "run", "pari"]
    assert [stem(w) for w in ("snowing", "fixed", "opinion")] == ["snow", "fix", "opinion"]  # *o, ion after n
    assert stem("y" * 5000) == "y" * 4999 + "i"  # y after y alternates consonant and vowel; no recursion limit


def test_normalize_answer() -> None:
    assert normalize_answer("The cat, and a dog!") == "cat dog"
    assert normalize_answer("Anna's  band\n(an  ANDES trip)") == "annas band andes trip"  # whole words only
    assert normalize_answer("1,000 km.") == "1000 km"
    assert normalize_answer("don’t") == "don’t"  # only ASCII punctuation goes, as in LoCoMo


def test_answer_tokens_are_stemmed() -> None:
    assert answer_tokens("The hikers were running, hopping") == ["hiker", "were", "run", "hop"]


def test_token_f1_hand_computed() -> None:
    assert token_f1("The running", "runs") == 1.0  # stems match, article ignored
    assert token_f1("a red car", "the red car") == 1.0
    assert token_f1("Paris, France", "Paris France") == 1.0
    assert token_f1("She runs", "running") == pytest.approx(2 / 3)  # P 1/2, R 1
    assert token_f1("in Paris in May", "Paris") == pytest.approx(0.4)  # P 1/4, R 1
    assert token_f1("cat cat", "cat cat dog") == pytest.approx(0.8)  # a bag, not a set: P 1, R 2/3
    assert token_f1("Paris", "Rome") == 0.0


def test_token_f1_empty_sides() -> None:
    assert token_f1("", "Paris") == 0.0
    assert token_f1("Paris", "") == 0.0
    assert token_f1("the", "a") == 0.0  # nothing left after normalization


def test_multi_answer_f1() -> None:
    # hiking: best of "painting" 0 and "hiking and swimming" 2/3; painting: 1
    assert multi_answer_f1("painting, hiking and swimming", "hiking, painting") == pytest.approx(5 / 6)
    assert multi_answer_f1("Paris", "Paris, Rome") == 0.5
    assert multi_answer_f1("Rome, Paris", "Paris") == 1.0  # extra predicted parts cost nothing


def test_answer_score_by_category() -> None:
    assert answer_score("painting, hiking", "hiking, painting", 1) == 1.0
    assert answer_score("painting, hiking", "hiking, painting", 2) == 1.0
    assert answer_score("Paris", "Paris, Rome", 1) == 0.5
    assert answer_score("Paris", "Paris, Rome", 4) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="category 6"):
        answer_score("Paris", "Paris", 6)


def test_category_3_scores_against_the_part_before_the_semicolon() -> None:
    answer = "Likely no; though she likes reading, she wants to be a counselor"
    assert answer_score("likely no", answer, 3) == 1.0
    assert answer_score("likely no", answer, 2) == pytest.approx(4 / 13)  # "like" and "no" of 11 tokens


def test_category_5_scores_abstention() -> None:
    assert answer_score("That is not mentioned in the conversation.", "", 5) == 1.0
    assert answer_score("No information available", "Paris", 5) == 1.0
    assert answer_score("It's not in my memories [1].", "", 5) == 1.0
    assert answer_score("Paris", "Paris", 5) == 0.0


def test_abstains() -> None:
    assert abstains("NOT MENTIONED")
    assert abstains("Sorry, that is not in my notes.")
    assert not abstains("It was mentioned twice.")
    assert not abstains("")


def test_cited_numbers() -> None:
    assert cited_numbers("Paris [2][1] and Rome [4, 3], again [1,5] [ 7 6 ].") == [2, 1, 4, 3, 5, 7, 6]
    assert cited_numbers("No sources.") == []


def test_bracketed_text_that_is_not_a_citation() -> None:
    text = "[shares a photo: x] in [2023] [2 and 3] [1, 200] [0] [] [1,] [99]"
    assert cited_numbers(text) == [99]
    assert strip_citations(text) == "[shares a photo: x] in [2023] [2 and 3] [1, 200] [0] [] [1,]"


def test_strip_citations() -> None:
    assert strip_citations("Paris [1]. Rome [2, 3][4]  and [2023].") == "Paris. Rome and [2023]."
    assert strip_citations("[1] Paris\n[2]") == "Paris"


def test_answer_score_ignores_citation_markers() -> None:
    assert token_f1("Paris [1]", "Paris") == pytest.approx(2 / 3)  # "1" would be a token
    assert answer_score("Paris [1]", "Paris", 4) == 1.0
    assert answer_score("Paris [1, 2], Rome [3]", "Paris, Rome", 1) == 1.0  # its comma would split a part
