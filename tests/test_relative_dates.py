"""Relative times in a message pinned to the day it was sent."""

from __future__ import annotations

import pytest

from pllm_cli.memory.relative_dates import pin_relative_dates

SENT = "2023-05-08T13:56:00+02:00"  # a Monday


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("I went yesterday", "I went yesterday (7 May 2023)"),
        ("Last night was fun", "Last night (7 May 2023) was fun"),
        ("see you tomorrow!", "see you tomorrow (9 May 2023)!"),
        ("We went camping last week!", "We went camping last week (the week before 8 May 2023)!"),
        ("this weekend we hike", "this weekend (the weekend of 8 May 2023) we hike"),
        ("last Friday I painted", "last Friday (the Friday before 8 May 2023) I painted"),
        ("next Sunday?", "next Sunday (the Sunday after 8 May 2023)?"),
        ("Two days ago I ran", "Two days ago (6 May 2023) I ran"),
        ("a couple of weeks ago", "a couple of weeks ago (2 weeks before 8 May 2023)"),
        ("a few months ago", "a few months ago (a few months before 8 May 2023)"),
        ("I moved here 3 years ago", "I moved here 3 years ago (2020)"),
        ("last month", "last month (April 2023)"),
        ("next month", "next month (June 2023)"),
        ("Last year was rough", "Last year (2022) was rough"),
        ("five months ago", "five months ago (December 2022)"),
    ],
)
def test_relative_times_get_the_date_they_meant(said: str, shown: str) -> None:
    assert pin_relative_dates(said, SENT) == shown


def test_what_cannot_be_pinned_is_left_alone() -> None:
    assert pin_relative_dates("this Friday?", SENT) == "this Friday?"  # coming or gone: the words do not say
    assert pin_relative_dates("yesterday", "") == "yesterday"  # no time sent
    assert pin_relative_dates("yesterday", "not a time") == "yesterday"
    assert pin_relative_dates("yesterday (7 May 2023)", SENT) == "yesterday (7 May 2023)"  # already pinned
    assert pin_relative_dates("the yesterdays and weekly news", SENT) == "the yesterdays and weekly news"
