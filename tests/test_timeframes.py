"""The periods a question names or implies, read relative to a fixed 'now'."""

from __future__ import annotations

from datetime import datetime

import pytest

from pllm_cli.memory.timeframes import describe, periods

NOW = datetime(2026, 3, 18, 15, 30)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What did Maria do on 7 July, 2023?", ["2023-07-07..2023-07-07"]),
        ("What did John share on December 1,2023?", ["2023-12-01..2023-12-01"]),
        ("Which book did Tim finish on 8th December, 2023?", ["2023-12-08..2023-12-08"]),
        ("notes from 2025-11-03", ["2025-11-03..2025-11-03"]),
        ("What did Joanna watch on 1 May, 2022 and 3 May, 2022?", ["2022-05-01..2022-05-01", "2022-05-03..2022-05-03"]),
        ("What workout did Maria start in December 2023?", ["2023-12-01..2023-12-31"]),
        ("Which trip in Feb. 2024?", ["2024-02-01..2024-02-29"]),
        ("What state did Joanna visit in summer 2021?", ["2021-06-01..2021-08-31"]),
        ("snow in winter 2024", ["2023-12-01..2024-02-29"]),
        ("How many times did she go to the beach in 2023?", ["2023-01-01..2023-12-31"]),
        ("When did Melanie go camping in June?", ["2025-06-01..2025-06-30"]),  # the latest June that began
        ("plans for this March", ["2026-03-01..2026-03-31"]),
        ("what did I buy yesterday", ["2026-03-17..2026-03-17"]),
        ("what did I do today", ["2026-03-18..2026-03-18"]),
        ("what did we discuss last week", ["2026-03-09..2026-03-15"]),
        ("this week's runs", ["2026-03-16..2026-03-22"]),
        ("the dinner last month", ["2026-02-01..2026-02-28"]),
        ("where did we travel last year", ["2025-01-01..2025-12-31"]),
        ("what did we do last summer", ["2025-06-01..2025-08-31"]),
        ("the concert two weeks ago", ["2026-03-01..2026-03-07"]),  # 4 March, give or take 3 days
        ("a call 3 days ago", ["2026-03-14..2026-03-16"]),
    ],
)
def test_named_and_implied_periods(text: str, expected: list[str]) -> None:
    assert list(describe(periods(text, NOW))) == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is my manager's name?",
        "May I ask what Caroline likes?",  # "May" the verb
        "I march in the parade",  # "march" the verb, no preposition before it
        "It cost 2023 dollars",  # a number, not a year after a preposition
        "a summer dress",
    ],
)
def test_no_period_where_none_is_named(text: str) -> None:
    assert periods(text, NOW) == []


def test_a_day_is_not_also_read_as_its_month_or_year() -> None:
    assert len(periods("on 7 July, 2023", NOW)) == 1


def test_a_day_that_does_not_exist_falls_back_to_its_month() -> None:
    assert list(describe(periods("the 31 February, 2023 meeting", NOW))) == ["2023-02-01..2023-02-28"]


def test_relative_periods_follow_now_and_ignore_its_time_zone() -> None:
    from datetime import UTC

    assert periods("yesterday", datetime(2024, 1, 1, 9, tzinfo=UTC)) == [(datetime(2023, 12, 31), datetime(2024, 1, 1))]
    assert list(describe(periods("last month", datetime(2024, 1, 10)))) == ["2023-12-01..2023-12-31"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what did I do on 7 July?", ["2025-07-07..2025-07-07"]),  # the latest 7 July
        ("what about March 3", ["2026-03-03..2026-03-03"]),
        ("everything since 2024", ["2024-01-01..2026-03-18"]),
        ("the trip last March", ["2025-03-01..2025-03-31"]),  # said in March: the one before
        ("the trip in March", ["2026-03-01..2026-03-31"]),
    ],
)
def test_days_without_a_year_since_and_last_month_name(text: str, expected: list[str]) -> None:
    assert list(describe(periods(text, NOW))) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ideas in marketing",
        "I live in Augsburg",
        "the octopus in decisions",
        "this may be a silly question",
        "I paid for 2000 dollars",
        "what was it like 5000 years ago",
        "99999999999 days ago",
        "read in 2090 pages",
    ],
)
def test_words_and_numbers_that_only_look_like_times(text: str) -> None:
    assert periods(text, NOW) == []
