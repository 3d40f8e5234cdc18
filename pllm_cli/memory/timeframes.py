"""The periods a question names or implies: "on 7 July, 2023", "on 7 July", "in May 2023", "summer 2021",
"in 2022", "since 2020", "in June", "last week", "yesterday", "two months ago".

Pure functions on text and a reference time (`now`); English only. Times are wall-clock, as the user lived
them, like the chunks' start_at/end_at (memory/index.py). Each period is [start, end).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

Period = tuple[datetime, datetime]


def wall_clock(iso: str) -> str:
    """'2026-02-03T19:04:00+01:00' -> '2026-02-03T19:04:00': the local time the source wrote, comparable as
    text with any other wall-clock time ('' if there is none). Times in UTC (exports that keep timestamps,
    such as ChatGPT's) are taken to this machine's time zone first."""
    try:
        moment = datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return ""
    if moment is None:
        return ""
    if moment.utcoffset() == timedelta(0):
        moment = moment.astimezone()
    return moment.replace(tzinfo=None).isoformat(timespec="seconds")


_MONTH_NAMES = (
    ("january", "jan"),
    ("february", "feb"),
    ("march", "mar"),
    ("april", "apr"),
    ("may",),
    ("june", "jun"),
    ("july", "jul"),
    ("august", "aug"),
    ("september", "sept", "sep"),
    ("october", "oct"),
    ("november", "nov"),
    ("december", "dec"),
)
MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES, start=1) for name in names}
SEASONS = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "fall": (9, 11), "winter": (12, 2)}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

_MON = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_SEASON = "summer|winter|spring|autumn|fall"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("day", rf"\b{_DAY}\s+(?:of\s+)?{_MON},?\s*{_YEAR}\b"),
        ("day", rf"\b{_MON}\s+{_DAY},?\s*{_YEAR}\b"),
        ("iso", r"\b(?P<year>(?:19|20)\d\d)-(?P<month>\d\d)-(?P<day>\d\d)\b"),
        ("month", rf"\b{_MON},?\s+(?:of\s+)?{_YEAR}\b"),
        ("season", r"\b(?P<season>" + _SEASON + r")\s+(?:of\s+)?(?P<year>(?:19|20)\d\d)\b"),
        ("day_of_year", rf"\b{_DAY}\s+(?:of\s+)?{_MON}(?!,?\s*\d)"),
        ("day_of_year", rf"\b{_MON}\s+{_DAY}\b(?!,?\s*\d)"),
        ("since", r"\b(?:since|after)\s+(?P<year>(?:19|20)\d\d)\b"),
        ("year", r"\b(?:in|of|during|from)\s+(?P<year>(?:19|20)\d\d)\b"),
        ("bare_month", rf"\b(?P<prefix>in|during|of|early|late|mid|this|last)[\s-]+{_MON}(?!\s*\d)"),
        ("day_word", r"\b(?P<word>yesterday|today|tonight)\b"),
        (
            "last",
            r"\b(?:last|past|previous)\s+(?P<unit>week|weekend|month|year|night|summer|winter|spring|autumn|fall)\b",
        ),
        ("this", r"\bthis\s+(?P<unit>week|weekend|month|year)\b"),
        ("ago", r"\b(?P<n>\d{1,2}|an?|one|two|three|four|five|six)\s+(?P<unit>day|week|month|year)s?\s+ago\b"),
    )
)


def periods(text: str, now: datetime) -> list[Period]:
    """The periods `text` names, each once, in the order found; [] if it names none. Relative expressions
    ("last week", "in June") are read from `now`."""
    found: list[Period] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue  # "7 July, 2023" is one day, not also a month and a year
            try:
                period = _period(kind, match, now.replace(tzinfo=None))
            except (ValueError, OverflowError):  # 31 February; a year out of range
                period = None
            if period is not None:
                taken.append(match.span())
                if period not in found:
                    found.append(period)
    return found


def _period(kind: str, match: re.Match[str], now: datetime) -> Period | None:
    today = datetime(now.year, now.month, now.day)
    group = match.groupdict()
    if group.get("month") == "may":
        return None  # "may" the verb; the month is written "May"
    if kind in ("day", "iso"):
        month = int(group["month"]) if kind == "iso" else MONTHS[group["month"].lower()]
        day = datetime(int(group["year"]), month, int(group["day"]))
        return day, day + timedelta(days=1)
    if kind == "day_of_year":  # the latest such day, today included
        month, number = MONTHS[group["month"].lower()], int(group["day"])
        day = datetime(now.year, month, number)
        day = day if day <= today else datetime(now.year - 1, month, number)
        return day, day + timedelta(days=1)
    if kind == "month":
        return _month(int(group["year"]), MONTHS[group["month"].lower()])
    if kind == "season":
        return _season(group["season"].lower(), int(group["year"]))
    if kind in ("year", "since"):
        year = int(group["year"])
        if year > now.year + 1:
            return None  # "in 2090 pages" is no time
        return datetime(year, 1, 1), (today + timedelta(days=1) if kind == "since" else datetime(year + 1, 1, 1))
    if kind == "bare_month":  # the latest one, this month included; "last May" said in May: the one before
        month = MONTHS[group["month"].lower()]
        latest = month < now.month or (month == now.month and group["prefix"].lower() != "last")
        return _month(now.year if latest else now.year - 1, month)
    if kind == "day_word":
        start = today - timedelta(days=1) if group["word"].lower() == "yesterday" else today
        return start, start + timedelta(days=1)
    if kind == "ago":
        count = _NUMBERS.get(group["n"].lower()) or int(group["n"])
        days = _UNIT_DAYS[group["unit"].lower()] * count
        centre, slack = today - timedelta(days=days), timedelta(days=max(1, days // 4))
        return centre - slack, centre + slack + timedelta(days=1)
    return _relative(kind, group["unit"].lower(), now, today)


def _relative(kind: str, unit: str, now: datetime, today: datetime) -> Period:
    monday = today - timedelta(days=today.weekday())
    if kind == "this":
        if unit in ("week", "weekend"):
            return monday, monday + timedelta(days=7)
        if unit == "month":
            return _month(now.year, now.month)
        return datetime(now.year, 1, 1), datetime(now.year + 1, 1, 1)
    if unit in ("week", "weekend"):
        return monday - timedelta(days=7), monday
    if unit == "night":
        return today - timedelta(days=1), today + timedelta(hours=6)
    if unit == "month":
        return _month(now.year, now.month - 1) if now.month > 1 else _month(now.year - 1, 12)
    if unit == "year":
        return datetime(now.year - 1, 1, 1), datetime(now.year, 1, 1)
    first, last = SEASONS[unit]  # "last summer": the latest one that is over
    ends = last if first <= last else 2
    year = now.year if now.month > ends else now.year - 1
    return _season(unit, year)


def _month(year: int, month: int) -> Period:
    start = datetime(year, month, 1)
    return start, datetime(year + month // 12, month % 12 + 1, 1)


def _season(name: str, year: int) -> Period:
    """A season of `year`; winter is the one that ends in it (December of the year before to February)."""
    first, last = SEASONS[name]
    if first > last:
        return datetime(year - 1, 12, 1), datetime(year, 3, 1)
    return datetime(year, first, 1), _month(year, last)[1]


def describe(found: list[Period]) -> Iterator[str]:
    """Each period as 'YYYY-MM-DD..YYYY-MM-DD' (end inclusive), for --json and debugging."""
    for start, end in found:
        yield f"{start:%Y-%m-%d}..{end - timedelta(seconds=1):%Y-%m-%d}"
