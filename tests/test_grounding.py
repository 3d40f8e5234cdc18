"""pllm's own check of an answer against the memories in its prompt: citations, support, who said it."""

from __future__ import annotations

from pllm_cli.grounding import Misattribution, content_words, ground, misattributed
from pllm_cli.memory.passages import Passage, PlacedTurn
from pllm_cli.memory.records import Chunk, Turn


def chat(*turns: tuple[str, str]) -> Passage:
    placed = [
        PlacedTurn(0, i, i == len(turns) - 1, False, Turn(f"D1:{i}", speaker, text))
        for i, (speaker, text) in enumerate(turns)
    ]
    chunk = Chunk(id="c", source="/chats/ana.jsonl", position=0, kind="chat", turns=tuple(p.turn for p in placed))
    return Passage("/chats/ana.jsonl", "chat", "Ana", "Ana", 1.0, [chunk], placed)


def note(text: str) -> Passage:
    chunk = Chunk(id="n", source="/notes/work.md", position=0, kind="text", body=text, section="Work")
    return Passage("/notes/work.md", "text", "Work", "", 1.0, [chunk])


def test_content_words_are_stemmed_and_leave_out_function_words_and_markers() -> None:
    assert content_words("The runners were running [1] in the park.") == {"runner", "run", "park"}


def test_an_answer_the_memories_hold_cites_them_best_first() -> None:
    memories = [note("Lunch with Elin on Friday."), note("My manager is Karin Ek. Deadline 30 June.")]
    found = ground("Karin Ek, by 30 June.", "Who is my manager and when is my deadline?", memories)
    assert found.trusted and found.cited == [2] and found.support == 1.0


def test_an_answer_no_memory_holds_is_not_trusted() -> None:
    found = ground("Your manager is Bob Smith.", "Who is my manager?", [note("My manager is Karin Ek.")])
    assert not found.trusted and found.cited == [] and found.support == 0.0


def test_words_taken_from_the_question_prove_nothing() -> None:
    found = ground("Yes, my manager.", "Is Karin my manager?", [note("Lunch with Elin.")])
    assert found.trusted and found.support == 1.0 and found.cited == []


def test_a_date_in_the_answer_is_supported_by_the_time_of_the_message() -> None:
    placed = [PlacedTurn(0, 0, True, False, Turn("D1:1", "Ana", "I signed up for pottery!", "2023-07-02T10:00:00"))]
    chunk = Chunk(id="c", source="/c.jsonl", position=0, kind="chat", turns=(placed[0].turn,))
    memories = [Passage("/c.jsonl", "chat", "Ana", "Ana", 1.0, [chunk], placed)]
    assert ground("On 2 July 2023.", "When did Ana sign up for pottery?", memories).trusted
    assert not ground("On 9 March 2021.", "When did Ana sign up for pottery?", memories).trusted


RACE = chat(
    ("Melanie", "I ran a charity race for mental health last Saturday, it made me realize self-care matters"),
    ("Caroline", "That's amazing Mel! Proud of you"),
)


def test_a_question_put_to_the_wrong_person_is_caught_before_the_answer() -> None:
    wrong = misattributed("What did Caroline realize after her charity race?", [RACE])
    assert wrong == Misattribution(named="Caroline", speaker="Melanie", memory=1)
    found = ground("Self-care matters.", "What did Caroline realize after her charity race?", [RACE])
    assert not found.trusted and found.support == 1.0  # the answer's words are there, but said by Melanie
    assert found.to_dict()["misattribution"] == {"named": "Caroline", "speaker": "Melanie", "memory": 1}


def test_the_right_person_or_no_single_person_is_not_flagged() -> None:
    assert misattributed("What did Melanie realize after her charity race?", [RACE]) is None
    assert misattributed("What did Melanie and Caroline say about the race?", [RACE]) is None  # two people
    assert misattributed("What did I realize after the charity race?", [RACE]) is None  # nobody named
    assert misattributed("What did Karin realize after her charity race?", [RACE]) is None  # not in the chats
    assert misattributed("Who did Caroline meet in Paris?", [RACE]) is None  # nobody says it: support decides


def test_a_note_or_the_persons_own_message_saying_it_too_clears_the_question() -> None:
    own = chat(("Caroline", "I ran a charity race too, realize how much I love it"), ("Melanie", "nice"))
    assert misattributed("What did Caroline realize after her charity race?", [RACE, own]) is None
    by_note = note("Caroline ran a charity race and came to realize self-care matters.")
    assert misattributed("What did Caroline realize after her charity race?", [RACE, by_note]) is None
