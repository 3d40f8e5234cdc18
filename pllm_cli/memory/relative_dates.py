"""Relative times in a message, pinned to the day it was sent: "yesterday" -> "yesterday (7 May 2023)".

A message from two years ago that says "last week" means nothing to a reader today, and a small model cannot
do the date arithmetic from the message's stamp. So what the model and the user are shown of a chat message
carries the resolved date beside the words, in the form people write dates in ("the week before 8 May 2023").
Pure functions; English only; what the message says is never changed, only annotated.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "a couple of": 2}
_COUNT = r"(?P<count>\d{1,2}|a couple of|an?|one|two|three|four|five|six)"
_EXPRESSION = re.compile(
    r"\b(?:"
    r"(?P<day>yesterday|today|tonight|tomorrow|this (?:morning|afternoon|evening)|last night)"
    r"|(?P<which>last|this past|past|this|next) (?P<span>week(?:end)?|month|year|"
    + "|".join(_WEEKDAYS)
    + r")"
    + rf"|{_COUNT} (?P<unit>day|week|month|year)s? ago"
    + r"|(?P<few>a few) (?P<few_unit>day|week|month|year)s ago"
    r")\b(?! \()",
    re.IGNORECASE,
)


def spoken_day(day: date) -> str:
    """date(2023, 5, 7) -> '7 May 2023'."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _month(year: int, month: int) -> str:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return f"{_MONTHS[month - 1]} {year}"


def resolve(match: re.Match[str], sent: date) -> str | None:
    """The date or period an expression of `_EXPRESSION` names, said on `sent`."""
    said = spoken_day(sent)
    if match["day"]:
        word = match["day"].lower()
        if word in ("yesterday", "last night"):
            return spoken_day(sent - timedelta(days=1))
        return spoken_day(sent + timedelta(days=1)) if word == "tomorrow" else said
    if match["span"]:
        which, span = match["which"].lower(), match["span"].lower()
        before = which in ("last", "this past", "past")
        if span in _WEEKDAYS:
            if which == "this":
                return None  # "this Friday": coming or gone, the words do not say
            return f"the {span.capitalize()} {'before' if before else 'after'} {said}"
        if span in ("week", "weekend"):
            return f"the {span} {'before' if before else 'of' if which == 'this' else 'after'} {said}"
        step = -1 if before else 0 if which == "this" else 1
        if span == "month":
            return _month(sent.year, sent.month + step)
        return str(sent.year + step)
    if match["few"]:
        return f"a few {match['few_unit'].lower()}s before {said}"
    count = _COUNTS.get(match["count"].lower()) or int(match["count"])
    unit = match["unit"].lower()
    if unit == "day":
        return spoken_day(sent - timedelta(days=count))
    if unit == "month":
        return _month(sent.year, sent.month - count)
    if unit == "year":
        return str(sent.year - count)
    return f"{count} week{'s' if count > 1 else ''} before {said}"


def pin_relative_dates(text: str, sent: str) -> str:
    """`text` with each relative time followed by the date it meant when sent at `sent` (ISO; '' leaves the
    text as it is)."""
    try:
        day = datetime.fromisoformat(sent).date() if sent else None
    except ValueError:
        day = None
    if day is None:
        return text

    def annotate(match: re.Match[str]) -> str:
        resolved = resolve(match, day)
        return f"{match[0]} ({resolved})" if resolved else match[0]

    return _EXPRESSION.sub(annotate, text)
