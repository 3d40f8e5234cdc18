"""Packing ranked hits into passages within a token budget: neighbours, merging, duplicates, rendering."""

from __future__ import annotations

from dataclasses import replace

from pllm_cli.memory.passages import Passage, approximate_tokens, chunk_turns, pack, render_turns
from pllm_cli.memory.records import Chunk, Hit, Turn

SOURCE = "/chats/elin.jsonl"


def words(passage: Passage) -> int:
    return len(passage.text.split())


def chat(
    position: int, turns: list[tuple[str, str]], *, context: tuple[Turn, ...] = (), day: str = "2026-03-01"
) -> Chunk:
    """A chat chunk of (speaker, text) turns at 10:<position>; ids m<position>.<n>."""
    when = f"{day}T10:{position:02d}:00"
    return Chunk(
        id=f"c{position}",
        source=SOURCE,
        position=position,
        kind="chat",
        conversation="elin",
        turns=tuple(Turn(f"m{position}.{n}", speaker, text, when) for n, (speaker, text) in enumerate(turns)),
        start_time=when,
        end_time=when,
        context=context,
    )


def note(position: int, text: str, source: str = "/notes/a.md") -> Chunk:
    return Chunk(id=f"n{position}{source}", source=source, position=position, kind="text", body=text)


class Chain:
    """Neighbours by position, like the index."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.by_position = {c.position: c for c in chunks}

    def neighbours(self, chunk: Chunk) -> tuple[Chunk | None, Chunk | None]:
        return self.by_position.get(chunk.position - 1), self.by_position.get(chunk.position + 1)


def conversation() -> list[Chunk]:
    """Four windows of one exchange; each after the first carries the turn before as its context."""
    windows = [
        [("Elin", "where shall we eat tonight"), ("Maya", "the ramen place?")],
        [("Elin", "sure, at seven"), ("Maya", "I will book a table")],
        [("Elin", "did you hear about Karin"), ("Maya", "she got the job in Porto")],
        [("Elin", "wow, good for her"), ("Maya", "we should celebrate")],
    ]
    chunks: list[Chunk] = []
    for position, turns in enumerate(windows):
        chunks.append(chat(position, turns, context=chunks[-1].turns[-1:] if chunks else ()))
    return chunks


def hits(*chunks: Chunk) -> list[Hit]:
    return [Hit(c, 1.0 / (n + 1)) for n, c in enumerate(chunks)]


def test_passages_stay_within_the_budget_and_a_big_hit_is_skipped_for_smaller_ones() -> None:
    small, big, other = note(0, "one two three"), note(1, " ".join(["word"] * 50)), note(2, "four five six")
    packed = pack(hits(small, big, other), 10, words)
    assert [p.chunks[0] for p in packed] == [small, other]
    assert sum(words(p) for p in packed) <= 10


def test_a_chat_hit_brings_the_turn_before_and_the_turn_after() -> None:
    chunks = conversation()
    [passage] = pack(hits(chunks[2]), 1000, words, neighbours=Chain(chunks))
    assert passage.message_ids == ["m1.1", "m2.0", "m2.1", "m3.0"]
    assert passage.text.splitlines() == [
        "[1 March 2026 10:01] Maya: I will book a table",
        "Elin: did you hear about Karin",
        "Maya: she got the job in Porto",
        "Elin: wow, good for her",
    ]


def test_no_turn_before_across_a_pause_or_another_conversation() -> None:
    chunks = conversation()
    cut = [chunks[0], chunks[1], replace(chunks[2], context=()), chunks[3]]
    [passage] = pack(hits(cut[2]), 1000, words, neighbours=Chain(cut))
    assert passage.message_ids[0] == "m2.0"


def test_without_neighbours_hits_are_taken_as_they_are() -> None:
    chunks = conversation()
    [passage] = pack(hits(chunks[2]), 1000, words)
    assert passage.message_ids == ["m2.0", "m2.1"]


def test_adjacent_hits_merge_into_one_passage_and_shared_turns_are_paid_once() -> None:
    chunks = conversation()
    chain = Chain(chunks)
    merged = pack(hits(chunks[1], chunks[2]), 1000, words, neighbours=chain)
    assert len(merged) == 1
    assert merged[0].message_ids == ["m0.1", "m1.0", "m1.1", "m2.0", "m2.1", "m3.0"]
    assert [c.id for c in merged[0].chunks] == ["c1", "c2"]
    exact = words(merged[0])
    assert pack(hits(chunks[1], chunks[2]), exact, words, neighbours=chain) == merged  # no turn counted twice
    # one word short: the second hit no longer fits with its neighbours, but its own turns still do
    tighter = pack(hits(chunks[1], chunks[2]), exact - 1, words, neighbours=chain)
    assert [p.message_ids for p in tighter] == [["m0.1", "m1.0", "m1.1", "m2.0", "m2.1"]]


def test_a_hit_too_big_with_its_neighbours_comes_alone() -> None:
    chunks = conversation()
    [bare] = pack(hits(chunks[2]), 1000, words)
    alone = pack(hits(chunks[2]), words(bare), words, neighbours=Chain(chunks))
    assert [p.message_ids for p in alone] == [["m2.0", "m2.1"]]
    assert pack(hits(chunks[2]), words(bare) - 1, words, neighbours=Chain(chunks)) == []


def test_a_neighbouring_burst_of_short_messages_comes_whole() -> None:
    before = chat(0, [("Elin", "hey"), ("Maya", "guess what"), ("Maya", "karin"), ("Maya", "got the job")])
    hit = chat(1, [("Elin", "no way"), ("Elin", "where?")], context=before.turns[-3:])
    after = chat(2, [("Maya", "porto"), ("Maya", "in june"), ("Elin", "wow")], context=hit.turns[-2:])
    [passage] = pack(hits(hit), 1000, words, neighbours=Chain([before, hit, after]))
    assert passage.message_ids == ["m0.1", "m0.2", "m0.3", "m1.0", "m1.1", "m2.0", "m2.1"]


def test_a_hit_adding_nothing_new_is_skipped() -> None:
    chunks = conversation()
    packed = pack(hits(chunks[1], chunks[1]), 1000, words)
    assert len(packed) == 1 and packed[0].message_ids == ["m1.0", "m1.1"]


def test_a_near_duplicate_text_is_skipped() -> None:
    first = note(0, "Karin got the job in Porto and starts in May.")
    copy = note(0, "Karin got the job in Porto and starts in May!", source="/notes/b.md")
    different = note(1, "Elin goes bouldering three times a week.")
    packed = pack(hits(first, copy, different), 1000, words)
    assert [p.chunks[0] for p in packed] == [first, different]


def test_limit_caps_the_number_of_passages() -> None:
    notes = [note(n, f"note number {n}") for n in range(5)]
    assert len(pack(hits(*notes), 1000, words, limit=2)) == 2


def test_passages_keep_rank_order_when_a_later_hit_merges_into_an_earlier_one() -> None:
    chunks = conversation()
    elsewhere = note(0, "Elin goes bouldering three times a week.")
    packed = pack(hits(chunks[0], elsewhere, chunks[2]), 1000, words, neighbours=Chain(chunks))
    assert [p.kind for p in packed] == ["chat", "text"]
    assert packed[0].message_ids == ["m0.0", "m0.1", "m1.0", "m1.1", "m2.0", "m2.1", "m3.0"]


def test_render_stamps_only_where_a_run_starts_or_the_day_changes() -> None:
    monday = chat(0, [("Elin", "hi"), ("Maya", "hello")], day="2026-03-02")
    tuesday = chat(1, [("Elin", "again")], day="2026-03-03", context=monday.turns[-1:])
    later = chat(5, [("Maya", "much later")], day="2026-03-03")
    turns = chunk_turns(monday) + chunk_turns(tuesday) + chunk_turns(later)
    assert render_turns(turns).splitlines() == [
        "[2 March 2026 10:00] Elin: hi",
        "Maya: hello",
        "[3 March 2026 10:01] Elin: again",
        "[3 March 2026 10:05] Maya: much later",
    ]


def test_multi_line_messages_stay_one_turn() -> None:
    chunk = chat(0, [("Elin", "list:\n- eggs\n- milk"), ("Maya", "ok")])
    turns = chunk_turns(chunk)
    assert [t.turn.message_id for t in turns] == ["m0.0", "m0.1"]
    assert turns[0].turn.text.endswith("- milk")
    assert render_turns(turns).splitlines() == ["[1 March 2026 10:00] Elin: list:", "- eggs", "- milk", "Maya: ok"]


def test_approximate_tokens_and_to_dict() -> None:
    assert approximate_tokens("one two three four five six seven eight nine ten") == 13
    data = pack(hits(conversation()[0]), 1000, words)[0].to_dict()
    assert data["message_ids"] == ["m0.0", "m0.1"] and data["chunk_ids"] == ["c0"]
    assert data["start_time"] == "2026-03-01T10:00:00" and data["kind"] == "chat"


def test_windows_of_different_conversations_are_never_merged() -> None:
    family = chat(0, [("Mamma", "dinner at six")])
    work = replace(chat(1, [("Karin", "the report is due")]), conversation="work")
    packed = pack(hits(family, work), 1000, words, neighbours=Chain([family, work]))
    assert [p.conversation for p in packed] == ["elin", "work"]
    assert all(line.startswith("[") for p in packed for line in p.text.splitlines())


def test_a_window_after_a_pause_is_not_run_on_without_its_stamp() -> None:
    before = chat(0, [("Elin", "good night")])
    after = chat(1, [("Elin", "good morning")])  # no context: a pause came between them
    [passage] = pack(hits(before, after), 1000, words, neighbours=Chain([before, after]))[:1]
    assert passage.message_ids == ["m0.0"]
