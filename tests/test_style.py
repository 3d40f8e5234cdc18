"""The writing style measured on the user's own chat turns: statistics, description, voice line, JSON."""

from __future__ import annotations

import json

import pytest

from pllm_cli.memory.records import Turn
from pllm_cli.profile.style import WritingStyle, writing_style


def turn(text: str, time: str = "") -> Turn:
    return Turn(speaker="Maya", text=text, time=time, message_id="", by_user=True)


def style_of(*texts: str) -> WritingStyle:
    return writing_style([turn(text) for text in texts])


def test_no_messages() -> None:
    style = writing_style([])
    assert style.messages == 0 and style.languages == {} and style.active_hours == []
    assert style.describe() == ""
    assert style.voice_instructions("Maya") == ""
    assert writing_style([turn("   "), turn("")]).messages == 0  # blank turns do not count


def test_median_words() -> None:
    assert style_of("one", "one two three", "one two three four five").median_words == 3.0
    assert style_of("one", "one two", "one two three", "a b c d e f g h").median_words == 2.5
    # emoji are not words, apostrophes stay inside a word, digits count
    assert style_of("don't go 😂 at 5").median_words == 4.0


def test_punctuation_and_case_shares() -> None:
    style = style_of(
        "wow!",  # '!', lower case, ends in punctuation
        "Are you coming?",  # question, capital
        "well... maybe",  # ellipsis, lower case, no final punctuation
        "Sure thing",  # no final punctuation
        "fine… 🙂",  # ellipsis, lower case, ends in an emoji
        "12 o'clock it is.",  # first letter lower case
        "Really?!",  # '!' and question
        "ok (see you)",  # closing bracket is looked through: no final punctuation
    )
    assert style.messages == 8
    assert style.exclamation_share == 0.25
    assert style.question_share == 0.25
    assert style.ellipsis_share == 0.25
    assert style.no_final_punctuation_share == 0.375
    assert style.lowercase_start_share == 0.625
    assert style.emoji_share == 0.125


def test_shares_are_rounded_to_three_decimals() -> None:
    style = style_of("a!", "b", "c")
    assert style.exclamation_share == 0.333


def test_emoji_ranking_and_skin_tones() -> None:
    style = style_of("😂😂", "haha 😂", "🙂 ok", "run 🏃🏽", "🏃🏽 again", "nice ❤", "plain text")
    assert style.emoji_share == pytest.approx(6 / 7, abs=0.001)
    assert style.top_emoji == ["😂", "🏃", "🙂"]  # 3, most frequent first; the skin tone is not an emoji of its own
    assert "🏽" not in style.top_emoji


def test_vocabulary_is_measured_on_a_capped_sample() -> None:
    varied = " ".join(f"w{i}" for i in range(5000))
    # 5,000 distinct words first, then 5,000 repeats: only the first 5,000 are sampled
    assert style_of(varied, "same " * 5000).vocabulary == 1.0
    assert style_of("same " * 5000, varied).vocabulary == pytest.approx(1 / 5000, abs=0.001)
    # without the cap a long history would score far lower than a short one with the same habits
    short = style_of("the cat and the dog")
    assert short.vocabulary == 0.8
    assert style_of(*(["the cat and the dog"] * 3000)).vocabulary == pytest.approx(4 / 5000, abs=0.001)


def test_favourite_words_skip_function_words_and_single_uses() -> None:
    style = style_of(
        "Running tomorrow with the dog",
        "running again, the dog loves running",
        "haha the dog",
        "haha ok",
        "tomorrow maybe",
        "pizza",
    )
    assert style.favourite_words == ["running", "dog", "tomorrow", "haha"]
    many = style_of(*[" ".join(f"word{chr(97 + i)}" for i in range(10))] * 2)
    assert len(many.favourite_words) == 8


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("I think the weather is nice and we should go out", "en"),
        ("¿Dónde está el perro? Es muy grande y bonito", "es"),
        ("Ich bin müde und ich will heute nicht laufen", "de"),
        ("Je ne sais pas si c'est une bonne idée", "fr"),
        ("Ik heb geen zin om het te doen", "nl"),
    ],
)
def test_language_of_a_sentence(text: str, code: str) -> None:
    assert style_of(text).languages == {code: 1.0}


def test_language_shares() -> None:
    english = ["I think the weather is nice and we should go"] * 9
    style = style_of(*english, "¿Dónde está el perro? Es muy grande y bonito", "😂", "ok", "de")
    # the emoji, "ok" (no function words) and "de" (a tie of several languages) have no clear winner
    assert style.languages == {"en": 0.9, "es": 0.1}
    assert list(style.languages) == ["en", "es"]


def test_rare_languages_are_dropped() -> None:
    english = ["I think the weather is nice and we should go"] * 20
    style = style_of(*english, "Ich bin müde und ich will nicht laufen")
    assert style.languages == {"en": 0.952}  # German at 1/21 < 5%


def test_active_hours() -> None:
    times = ["2026-01-27 21:15"] * 3 + ["2026-01-28 22:05"] * 2 + ["2026-01-29 13:30"] * 2 + ["2026-01-30 08:00"]
    turns = [turn("hi", time) for time in times] + [turn("no time")]
    assert writing_style(turns).active_hours == [21, 13, 22]  # busiest first, ties by hour
    assert writing_style([turn("at nine", "9:10 PM"), turn("at midnight", "12:05 am")]).active_hours == [0, 21]
    assert writing_style([turn("hi"), turn("there")]).active_hours == []
    assert writing_style([turn("hi", "2026-01-27")]).active_hours == []


def test_describe() -> None:
    turns = [turn("haha yes! 😂", "2026-01-27 21:15"), turn("haha ok 😂", "2026-01-27 22:15")]
    turns += [turn("Tomorrow? I think the run is at nine", "2026-01-28 21:00"), turn("¿Dónde está el perro?")]
    text = writing_style(turns).describe()
    lines = text.splitlines()
    assert lines[0] == "Measured on 4 messages you wrote."
    assert lines[1] == "- Short messages: a median of 3 words."
    assert "- '!' in 25% of messages, questions in 50%, '...' in 0%;" in text
    assert "- Emoji in 50% of messages, most often 😂." in lines
    assert "- Languages: English 67%, Spanish 33%." in lines
    assert "- Most active around 21:00 and 22:00." in lines
    assert "- Words you use often: haha." in lines
    assert "No emoji" in style_of("Plain words here.").describe()
    assert (
        style_of("one").describe().startswith("Measured on 1 message you wrote.\n- Short messages: a median of 1 word.")
    )
    assert "Long messages" in style_of(" ".join(["word"] * 40)).describe()


def test_voice_instructions() -> None:
    texts = ["😂 haha see you tomorrow", "going for a run tomorrow", "🙂 haha no way", "😂 the run was fun"]
    texts += ["tomorrow then", "ok cool"]
    line = style_of(*texts).voice_instructions("Maya")
    assert line.startswith("Write as Maya writes: short messages (about 3.5 words), mostly lower case, ")
    assert "rarely a final full stop" in line
    assert "emoji often (😂 🙂)" in line
    assert "in English" in line
    assert line.endswith("; words they often use: tomorrow, haha, run.")
    assert "\n" not in line and len(line.split()) < 60
    assert not {" she ", " he ", " her ", " his "} & {f" {w} " for w in line.split()}
    formal = style_of("Good morning. I will send the report today.", "Thank you for the update.")
    formal_line = formal.voice_instructions("")
    assert formal_line.startswith("Write as the user writes: ")
    assert "lower case" not in formal_line and "full stop" not in formal_line and "no emoji" in formal_line


def test_dict_round_trip() -> None:
    turns = [turn("haha yes! 😂", "2026-01-27 21:15"), turn("Ich bin müde und ich will nicht laufen", "22:00")]
    turns += [turn("I think the weather is nice and we should go...")]
    style = writing_style(turns)
    data = style.to_dict()
    assert set(data) == {
        "messages",
        "median_words",
        "vocabulary",
        "favourite_words",
        "exclamation_share",
        "question_share",
        "ellipsis_share",
        "no_final_punctuation_share",
        "lowercase_start_share",
        "emoji_share",
        "top_emoji",
        "languages",
        "active_hours",
    }
    assert data["exclamation_share"] == 0.333 and data["languages"] == {"en": 0.667, "de": 0.333}
    assert WritingStyle.from_dict(data) == style
    assert WritingStyle.from_dict(json.loads(json.dumps(data))) == style
    assert WritingStyle.from_dict(writing_style([]).to_dict()) == writing_style([])
