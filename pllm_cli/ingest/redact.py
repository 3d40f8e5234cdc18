"""Masking of personal data and secrets before anything is embedded or stored.

`redact(text)` replaces e-mail addresses, phone numbers, payment card numbers, IBANs and secrets (API keys,
tokens, private keys, password assignments, long random-looking strings) with "[email]", "[phone]", "[card]",
"[iban]" and "[secret]", and counts what it masked.

False positives cost as much as misses (a date masked as a phone number is a lost memory), so the number
patterns are narrow and validated: cards must pass the Luhn check, IBANs the mod-97 check, and a phone number
needs 8 or more digits in a phone's shape (a leading + or 00, a trunk 0, an area code in parentheses or the
North American 3-3-4 grouping). Dates, times, years, amounts, version numbers, IP addresses, UUIDs and
short numbers such as race bibs are left alone. UUIDs are identifiers, not secrets, and are never masked.

Known limits: a password written in prose ("the password is hunter2") is not found, only assignments
("password: hunter2"); long hexadecimal hashes (git commits, checksums) are masked as secrets, like the API
keys they cannot be told apart from; national identity numbers are not masked.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from itertools import pairwise

EMAIL = "[email]"
PHONE = "[phone]"
CARD = "[card]"
IBAN = "[iban]"
SECRET = "[secret]"
PLACEHOLDERS = {"email": EMAIL, "phone": PHONE, "card": CARD, "iban": IBAN, "secret": SECRET}

_PLACEHOLDER = r"\[(?:email|phone|card|iban|secret)\]"

# --- secrets ----------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:\s+(?:[A-Za-z0-9+/=]{16,}|Proc-Type:[^\n]*|DEK-Info:[^\n]*))*)",  # a block cut short: its base64 lines
    re.DOTALL,
)

_TOKEN = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?=[\w-]*[0-9])(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|xox[baprs]-(?=[A-Za-z-]*[0-9])[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
    r")(?![\w-])"
    r"|hooks\.slack\.com/services/[A-Za-z0-9/]+"  # a Slack webhook URL's secret path
)

_BEARER = re.compile(r"(?i)(\bbearer\s+)(?=[A-Za-z._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*")
_URL_PASSWORD = re.compile(r"(://[^\s/:@]+:)[^\s/@]+(@)")

# "password: hunter2", OPENAI_API_KEY=..., "client_secret": "...": the value after the key is masked
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9_.-])((?:[A-Za-z0-9]+[_.-])*"
    r"(?:api[_-]?key|api[_-]?secret|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key"
    r"|[A-Za-z0-9]+[_-]secret|(?:auth|access|refresh|bearer|session|api)?[_-]?token"
    r"|password|passwd|passphrase|pwd|lösenord|private[_-]?key)"
    r"""["']?[ \t]*[:=][ \t]*)"""
    rf"""(?:(["'])(?!{_PLACEHOLDER})[^"'\n]{{3,200}}\2|(?!{_PLACEHOLDER})[^\s"'`,;&]{{3,}})"""
)
_ASSIGNMENT_HINT = re.compile(r"(?i)key|token|secret|passw|pwd|lösenord|bearer")

# a long run of base64/base64url/hex characters: masked when it looks random (see _random_piece)
_RANDOM_RUN = re.compile(r"(?<![\w+/-])[A-Za-z0-9+/_-]{32,}={0,2}(?![\w+/=-])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = frozenset("0123456789abcdefABCDEF")
_PIECE_SEPARATORS = re.compile(r"[/_-]")
_WORDLIKE = re.compile(r"[A-Z]?[a-z]{2,}[0-9]*|[A-Z]{2,}[0-9]*|[0-9]+[A-Za-z]?")  # word, ACRONYM2, 24bit
_LOWER_RUN = re.compile(r"[a-z]{3,}")

# --- e-mail -----------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]*\w@(?!\d+x\.)"  # not "icon@2x.png"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)

# --- numbers ----------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b")

_CARD = re.compile(r"(?<![\w+.,/:-])[2-6][0-9](?:[ -]?[0-9]){11,17}(?![0-9]|[.,/:-][0-9])")

# digits in groups separated by one space, dash or dot, with optional + or 00 prefix and parentheses
_PHONE = re.compile(
    r"(?<![\w+.,/()-])(?:\+|\()?[0-9]+(?:(?:[ .-]?\(|\)[ .-]?|[ .-])[0-9]+)*"
    r"(?![\w/:]|[.,-][0-9])"
)
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]\.[0-9]")
_TIME_RANGE = re.compile(r"[0-9]{1,2}[.:][0-9]{2} ?[-–] ?[0-9]{1,2}[.:][0-9]{2}")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """The ISO 13616 check: the country code and check digits moved to the end, read as a number, mod 97 is 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    length = len(text)
    return -sum(count / length * math.log2(count / length) for count in Counter(text).values())


def _random_piece(run: str) -> bool:
    body = run.rstrip("=")
    if len(body) < 32 or _UUID.search(body):
        return False
    digits = sum(char.isdigit() for char in body)
    if all(char in _HEX for char in body):  # a hex digest or key: digits and letters, in one case
        letters = len(body) - digits
        return digits >= 2 and letters >= 2 and (body.islower() or body.isupper()) and _entropy(body) > 3.0
    uppers = sum(char.isupper() for char in body)
    lowers = sum(char.islower() for char in body)
    if digits < 2 or uppers < 2 or lowers < 2 or _entropy(body) <= 4.0:
        return False
    # random text changes between upper, lower, digit and symbol at about 2 of 3 characters, words and
    # identifiers (Wav2Vec2ConformerModel, my-notes-2024-final) far less often
    kinds = [0 if c.isupper() else 1 if c.islower() else 2 if c.isdigit() else 3 for c in body]
    if sum(a != b for a, b in pairwise(kinds)) < 0.4 * (len(body) - 1):
        return False
    pieces = _PIECE_SEPARATORS.split(body)
    if len(pieces) > 1 and sum(len(p) for p in pieces if _WORDLIKE.fullmatch(p)) >= 0.4 * len(body):
        return False
    return sum(len(run) for run in _LOWER_RUN.findall(body)) < 0.5 * len(body)


def _mask_random(run: str, counts: Counter[str]) -> str:
    """Mask a random-looking run; in a path or URL ("github.com/x/y/blob/<sha>/z") only its random segments."""
    segments = run.split("/")
    if len(segments) > 1 and any(len(s) >= 3 and _WORDLIKE.fullmatch(s) for s in segments):
        masked = [SECRET if _random_piece(s) else s for s in segments]
        counts["secret"] += masked.count(SECRET)
        return "/".join(masked)
    if _random_piece(run):
        counts["secret"] += 1
        return SECRET
    return run


_MAX_WORDS = 9  # an IBAN in groups of four has at most 9 words, a phone number fewer


def _split_runs(candidate: str, valid: Callable[[str], bool], placeholder: str, counts: Counter[str], kind: str) -> str:
    """Mask the longest valid space-separated runs of `candidate`: "070-123 45 67 2026" masks the phone only."""
    words = candidate.split(" ")
    out: list[str] = []
    start = 0
    while start < len(words):
        for end in range(min(len(words), start + _MAX_WORDS), start, -1):
            if valid(" ".join(words[start:end])):
                out.append(placeholder)
                counts[kind] += 1
                start = end
                break
        else:
            out.append(words[start])
            start += 1
    return " ".join(out)


def _card_valid(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or not candidate[-1].isdigit():
        return False
    if " " in candidate and "-" in candidate:  # one kind of separator
        return False
    return luhn_valid(digits)


def _is_date(groups: list[str]) -> bool:
    if len(groups) == 2:  # a range of years, 2024-2026
        return all(len(g) == 4 and g[:2] in ("19", "20") for g in groups)
    if len(groups) != 3:
        return False
    lengths = tuple(len(g) for g in groups)
    if lengths == (4, 2, 2):
        year, month, day = groups
    elif lengths in ((2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4)):
        day, month, year = groups
        if int(month) > 12:  # month first: 12/31/2026
            day, month = month, day
    else:
        return False
    return year[:2] in ("19", "20") and 1 <= int(month) <= 12 and 1 <= int(day) <= 31


def _is_time_range(groups: list[str]) -> bool:  # 0800-1700
    return all(len(g) == 4 and int(g[:2]) < 24 and int(g[2:]) < 60 for g in groups)


def _phone_valid(candidate: str) -> bool:
    if not candidate or not candidate[-1].isdigit() or _TIME_RANGE.fullmatch(candidate):
        return False
    groups = _DIGITS.findall(candidate)
    digits = "".join(groups)
    count = len(digits)
    if count < 8 or count > 15 or _is_date(groups) or groups[0] == "0":  # 0.12345678 is a decimal
        return False
    if len(groups) == 2 and (_DECIMAL.search(candidate) or _is_time_range(groups)):
        return False
    if candidate[0] == "+":
        return digits[0] != "0"
    if digits.startswith("00"):  # the international prefix: 0046 70 ...
        return count >= 10 and digits[2] != "0"
    if candidate[0] == "(":
        return 9 <= count <= 11
    if digits[0] == "0" and digits[1] != "0":  # a trunk prefix: 070-123 45 67, 08-123 456 78, 0701234567
        if len(groups) == 1:
            return 9 <= count <= 11
        lengths = [len(g) for g in groups]
        return count <= 11 and lengths[0] <= 5 and lengths not in ([6, 4], [8, 4])  # not a personal number
    lengths = [len(g) for g in groups]
    separators = set(re.sub(r"[0-9]+", "|", candidate).strip("|").split("|"))
    if len(separators) != 1 or not separators <= {"-", ".", " "}:
        return False
    # North American: 555-123-4567, 1-800-555-1234
    return (lengths == [3, 3, 4] and digits[0] not in "01") or (lengths == [1, 3, 3, 4] and digits[0] == "1")


# --- the passes -------------------------------------------------------------------------------------


def redact(text: str) -> tuple[str, Counter[str]]:
    """`text` with personal data and secrets masked, and how many of each kind were masked."""
    counts: Counter[str] = Counter()

    def mask(kind: str) -> Callable[[re.Match[str]], str]:
        def replace(_: re.Match[str]) -> str:
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return replace

    def assignment(match: re.Match[str]) -> str:  # "password: " + [secret], quotes kept
        counts["secret"] += 1
        quote = match.group(2) or ""
        return match.group(1) + quote + SECRET + quote

    def bearer(match: re.Match[str]) -> str:  # "Bearer " + [secret]
        counts["secret"] += 1
        return match.group(1) + SECRET

    def url_password(match: re.Match[str]) -> str:  # https://elin: + [secret] + @host
        counts["secret"] += 1
        return match.group(1) + SECRET + match.group(2)

    def phone(match: re.Match[str]) -> str:
        candidate = match.group()
        if len(candidate) < 8:
            return candidate
        if candidate[0] == "(" and ")" not in candidate:  # a number in parentheses: (070-123 45 67)
            return "(" + _split_runs(candidate[1:], _phone_valid, PHONE, counts, "phone")
        return _split_runs(candidate, _phone_valid, PHONE, counts, "phone")

    def numbers(part: str) -> str:
        return _PHONE.sub(phone, _CARD.sub(lambda m: _split_runs(m.group(), _card_valid, CARD, counts, "card"), part))

    if "-----BEGIN" in text:
        text = _PRIVATE_KEY.sub(mask("secret"), text)
    text = _TOKEN.sub(mask("secret"), text)
    if "://" in text:
        text = _URL_PASSWORD.sub(url_password, text)
    if _ASSIGNMENT_HINT.search(text):
        text = _ASSIGNMENT.sub(assignment, text)
        text = _BEARER.sub(bearer, text)
    if "@" in text:
        text = _EMAIL.sub(mask("email"), text)
    # an IBAN-shaped run is masked if it passes the check, and its digits are never read as a card or phone
    pieces: list[str] = []
    end = 0
    for match in _IBAN.finditer(text):
        pieces.append(numbers(text[end : match.start()]))
        pieces.append(_split_runs(match.group(), iban_valid, IBAN, counts, "iban"))
        end = match.end()
    text = "".join(pieces) + numbers(text[end:]) if pieces else numbers(text)
    text = _RANDOM_RUN.sub(lambda m: _mask_random(m.group(), counts), text)
    return text, counts
