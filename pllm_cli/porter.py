"""The Porter stemmer as published: M. F. Porter, "An algorithm for suffix stripping", Program 14(3), 1980.

Steps 1a, 1b, 1c, 2, 3, 4, 5a and 5b of the paper, nothing more; in each step only the rule with the longest
matching suffix is tried. LoCoMo scored with NLTK's PorterStemmer, whose default mode adds a few extensions
(irregular forms such as "dying", "ies" -> "ie" in four-letter words, "bli", "logi", "fulli" and "lessli" in
step 2), so rare words may stem differently here: "ties" is "ti" here, "tie" in NLTK.
"""

from __future__ import annotations

from collections.abc import Iterable

_STEP2 = {
    "ational": "ate",
    "tional": "tion",
    "enci": "ence",
    "anci": "ance",
    "izer": "ize",
    "abli": "able",
    "alli": "al",
    "entli": "ent",
    "eli": "e",
    "ousli": "ous",
    "ization": "ize",
    "ation": "ate",
    "ator": "ate",
    "alism": "al",
    "iveness": "ive",
    "fulness": "ful",
    "ousness": "ous",
    "aliti": "al",
    "iviti": "ive",
    "biliti": "ble",
}
_STEP3 = {"icate": "ic", "ative": "", "alize": "al", "iciti": "ic", "ical": "ic", "ful": "", "ness": ""}
_STEP4 = "al ance ence er ic able ible ant ement ment ent ion ou ism ate iti ous ive ize".split()


def stem(word: str) -> str:
    """The stem of a lower-case word; words of one or two letters are returned unchanged."""
    if len(word) <= 2:
        return word
    for step in (_step1a, _step1b, _step1c, _step2, _step3, _step4, _step5a, _step5b):
        word = step(word)
    return word


# the paper's conditions ----------------------------------------------------------------------------------
def _kinds(word: str) -> str:
    """'c' or 'v' for each letter: y is a vowel after a consonant, a consonant elsewhere."""
    kinds: list[str] = []
    for i, letter in enumerate(word):
        vowel = letter in "aeiou" or (letter == "y" and i > 0 and kinds[-1] == "c")
        kinds.append("v" if vowel else "c")
    return "".join(kinds)


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]."""
    return _kinds(stem).count("vc")


def _has_vowel(stem: str) -> bool:
    return "v" in _kinds(stem)


def _ends_double_consonant(stem: str) -> bool:
    return len(stem) >= 2 and stem[-1] == stem[-2] and _kinds(stem)[-1] == "c"


def _ends_cvc(stem: str) -> bool:
    """*o: consonant, vowel, consonant, the last not w, x or y."""
    return _kinds(stem).endswith("cvc") and stem[-1] not in "wxy"


def _longest_suffix(word: str, suffixes: Iterable[str]) -> str | None:
    return max((s for s in suffixes if word.endswith(s)), key=len, default=None)


# the steps ------------------------------------------------------------------------------------------------
def _step1a(word: str) -> str:
    for suffix, replacement in (("sses", "ss"), ("ies", "i"), ("ss", "ss"), ("s", "")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def _step1b(word: str) -> str:
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            return _tidy_step1b(word[: -len(suffix)])
    return word


def _tidy_step1b(stem: str) -> str:
    """What follows a removed -ed or -ing: restore an e, or undouble a final consonant."""
    if stem.endswith(("at", "bl", "iz")):
        return stem + "e"
    if _ends_double_consonant(stem) and stem[-1] not in "lsz":
        return stem[:-1]
    if _measure(stem) == 1 and _ends_cvc(stem):
        return stem + "e"
    return stem


def _step1c(word: str) -> str:
    return word[:-1] + "i" if word.endswith("y") and _has_vowel(word[:-1]) else word


def _step2(word: str) -> str:
    return _replace_suffix(word, _STEP2)


def _step3(word: str) -> str:
    return _replace_suffix(word, _STEP3)


def _replace_suffix(word: str, rules: dict[str, str]) -> str:
    """Steps 2 and 3: the longest matching suffix replaced if m > 0 before it."""
    suffix = _longest_suffix(word, rules)
    if suffix is None or _measure(word[: -len(suffix)]) == 0:
        return word
    return word[: -len(suffix)] + rules[suffix]


def _step4(word: str) -> str:
    suffix = _longest_suffix(word, _STEP4)
    if suffix is None:
        return word
    stem = word[: -len(suffix)]
    if _measure(stem) > 1 and (suffix != "ion" or stem.endswith(("s", "t"))):
        return stem
    return word


def _step5a(word: str) -> str:
    if not word.endswith("e"):
        return word
    stem = word[:-1]
    measure = _measure(stem)
    return stem if measure > 1 or (measure == 1 and not _ends_cvc(stem)) else word


def _step5b(word: str) -> str:
    return word[:-1] if word.endswith("ll") and _measure(word) > 1 else word
