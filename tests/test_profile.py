"""The profile: statements found in memory chunks, restated under a grammar and checked, classified into
slots, merged (confirm, supersede, forget) and pruned; the files on disk with their versions; refresh, pin
and forget on a real on-disk memory with the fake embedder and model; what the model is shown within a
budget; and the lock between processes.

Every test here is fast: no real model is run (the grammar check loads at most a GGUF's vocabulary).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeChatModel, FakeEmbedder

from pllm_cli.errors import BusyError, ExitCode, InputError, NotFoundError, StoreError
from pllm_cli.ingest.pipeline import IngestOptions, ingest_paths
from pllm_cli.locking import exclusive
from pllm_cli.memory.records import Chunk, Mail, Turn
from pllm_cli.memory.store import ChromaStore
from pllm_cli.paths import Paths
from pllm_cli.profile import manage
from pllm_cli.profile.classify import Categorizer, slot_of
from pllm_cli.profile.extract import (
    FACT_TOKENS,
    MAX_FACT_CHARS,
    Statement,
    fact_grammar,
    restate,
    statements,
    support,
)
from pllm_cli.profile.facts import Evidence, Fact, Origin
from pllm_cli.profile.merge import NewFact, merge, prune
from pllm_cli.profile.refresh import RefreshReport
from pllm_cli.profile.render import describe, select, wants_my_voice
from pllm_cli.profile.state import ProfileFiles, ProfileState
from pllm_cli.profile.style import writing_style
from pllm_cli.runtime import ChatMessage

ME = ("Maya",)
CHAT_SOURCE = "/chats/maya.jsonl"
EMBEDDER = FakeEmbedder()


# --- helpers -----------------------------------------------------------------------------------------


def vec(text: str) -> tuple[float, ...]:
    return tuple(EMBEDDER.vector(text))


def chat_chunk(*turns: tuple[str, str], chunk_id: str = "c1") -> Chunk:
    """A chat chunk as ingest stores it: turns with ids m1..mN at 21:1N, Maya's marked as the user's."""
    return Chunk(
        id=chunk_id,
        source=CHAT_SOURCE,
        position=0,
        kind="chat",
        conversation="c",
        turns=tuple(
            Turn(f"m{n + 1}", speaker, text, f"2026-01-27T21:{10 + n:02d}:00", speaker == "Maya")
            for n, (speaker, text) in enumerate(turns)
        ),
    )


def text_chunk(text: str, heading: str = "", chunk_id: str = "t1", source: str = "/notes/n.md") -> Chunk:
    return Chunk(id=chunk_id, source=source, position=0, kind="text", body=text, section=heading)


def mail_chunk(text: str, sender: str) -> Chunk:
    headers = Mail(sender, ("Jonas <jonas@example.org>",), (), "2026-02-03T09:00:00+01:00", "Kyoto", "<k@x>")
    return Chunk(id="e1", source="/mail/sent.mbox", position=0, kind="text", body=text, mail=headers)


def found(chunk: Chunk, source_format: str = "chat-jsonl", me: Sequence[str] = ME) -> list[Statement]:
    return statements(chunk, me, source_format=source_format, ingested_at="2026-02-01T10:00:00+00:00")


def new_fact(
    text: str,
    said_at: str,
    *,
    origin: Origin = "self",
    chunk: str = "c1",
    quote: str | None = None,
    speaker: str = "Maya",
    slot: str = "",
    value: str = "",
    restated: bool = True,
) -> NewFact:
    evidence = Evidence(chunk, CHAT_SOURCE, quote or text, (f"id-{chunk}",), said_at, speaker)
    return NewFact("identity", text, origin, evidence, vec(text), restated, slot, value)


def a_fact(
    fact_id: str,
    text: str,
    *,
    origin: Origin = "self",
    chunk: str = "c1",
    message: str = "",
    confidence: float = 0.6,
    category: str = "identity",
    speaker: str = "Maya",
    **changes: Any,
) -> Fact:
    evidence = (
        ()
        if origin == "pinned"
        else (Evidence(chunk, CHAT_SOURCE, text, (message,) if message else (), "2026-01-27 21:15", speaker),)
    )
    values: dict[str, Any] = {
        "id": fact_id,
        "category": category,
        "text": text,
        "origin": origin,
        "evidence": evidence,
        "first_seen": "2026-01-27 21:15",
        "last_confirmed": "2026-01-27 21:15",
        "confidence": confidence,
        "vector": vec(text),
    }
    return Fact(**{**values, **changes})


@dataclass
class FixedModel:
    """A StructuredModel that always answers the same, recording what it was asked."""

    answer: str
    name: str = "fixed"
    calls: list[tuple[list[ChatMessage], str, int]] = field(default_factory=list)

    def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
        self.calls.append((list(messages), grammar, max_tokens))
        return self.answer


def fact_json(text: str) -> str:
    return json.dumps({"fact": text})


def words(text: str) -> int:
    return len(text.split())


def write_chat(path: Path, rows: Sequence[tuple[str, str, str, str, str]]) -> Path:
    keys = ("conversation", "id", "speaker", "time", "text")
    path.write_text("\n".join(json.dumps(dict(zip(keys, row, strict=True))) for row in rows) + "\n", encoding="utf-8")
    return path


CHAT = [
    ("dinner", "m1", "Jonas", "2026-01-27T21:10:00+01:00", "Maya makes the best lemon cake in town."),
    ("dinner", "m2", "Maya", "2026-01-27T21:15:00+01:00", "I live in Lisbon with my cat Miso."),
    ("dinner", "m3", "Maya", "2026-01-27T21:16:00+01:00", "I work as a landscape architect for the city."),
]
NOTE = "# Notes\n\nI started learning Japanese for my trip to Kyoto next spring.\n"
NEW_MESSAGE = ("trip", "m4", "Maya", "2026-02-03T19:04:00+01:00", "I just adopted a puppy named Luna from the shelter.")


@dataclass
class Memory:
    store: ChromaStore
    chat: Path
    note: Path
    files: ProfileFiles
    embedder: FakeEmbedder
    model: FakeChatModel

    def ingest(self, *paths: Path) -> None:
        report = ingest_paths(list(paths), self.store, self.embedder, options=IngestOptions(me=ME))
        assert not report.failed

    def refresh(self, rebuild: bool = False) -> RefreshReport:
        return manage.refresh_profile(
            self.files, self.store.index, self.embedder, self.model, name="Maya", me=ME, rebuild=rebuild
        )

    def fact(self, contains: str) -> Fact:
        [match] = [f for f in self.files.load().facts if contains in f.text]
        return match


@pytest.fixture
def files(home: Path) -> ProfileFiles:
    return ProfileFiles(Paths(home))


@pytest.fixture
def memory(
    tmp_path: Path, store: ChromaStore, fake_embedder: FakeEmbedder, fake_model: FakeChatModel, files: ProfileFiles
) -> Memory:
    """A chat between Maya and Jonas and one of Maya's notes, ingested into a real on-disk memory."""
    chat = write_chat(tmp_path / "chat.jsonl", CHAT)
    note = tmp_path / "note.md"
    note.write_text(NOTE, encoding="utf-8")
    memory = Memory(store, chat, note, files, fake_embedder, fake_model)
    memory.ingest(chat, note)
    return memory


# --- 1. statements ----------------------------------------------------------------------------------


def test_the_users_first_person_sentences_in_a_chat_are_self_statements_with_their_provenance() -> None:
    chunk = chat_chunk(("Jonas", "How was the weekend?"), ("Maya", "I live in Lisbon with my cat Miso."))
    [statement] = found(chunk)
    assert statement.text == "I live in Lisbon with my cat Miso."
    assert statement.origin == "self"
    assert statement.evidence == Evidence("c1", CHAT_SOURCE, statement.text, ("m2",), "2026-01-27 21:11", "Maya")


def test_questions_short_sentences_and_small_talk_are_skipped() -> None:
    chunk = chat_chunk(
        ("Maya", "Do you think I should move to Porto next year?"),  # a question
        ("Maya", "I love green tea."),  # under five words
        ("Maya", "Of course I have a list."),  # fewer than three content words
        ("Maya", "I love tea so much!"),  # five words, two content words
        ("Maya", "The weather was lovely in the park today."),  # not in the first person
    )
    assert found(chunk) == []


def test_another_speaker_naming_the_user_is_reported() -> None:
    chunk = chat_chunk(
        ("Jonas", "Elin said Maya makes the best lemon cake in town."),
        ("Elin", "True, everyone loves that cake."),
        ("Maya", "Thanks, both of you."),
    )
    [statement] = found(chunk, me=("Maya Berg",))
    assert statement.origin == "reported"
    assert statement.evidence.speaker == "Jonas"
    assert statement.evidence.message_ids == ("m1",)


def test_you_is_about_the_user_only_in_a_two_speaker_chunk_and_not_when_the_speaker_talks_about_themselves() -> None:
    about_you = "You always bring fresh flowers to the office."
    about_me = "I sent you the photos from the hiking trip."
    two = chat_chunk(("Jonas", about_you), ("Jonas", about_me), ("Maya", "Thanks a lot."))
    three = chat_chunk(("Jonas", about_you), ("Elin", "Agreed, they are lovely."), ("Maya", "Thanks a lot."))
    assert [(s.text, s.origin, s.evidence.speaker) for s in found(two)] == [(about_you, "reported", "Jonas")]
    assert found(three) == []


def test_you_between_two_other_people_is_not_about_the_user() -> None:
    chunk = chat_chunk(("Jonas", "You always bring fresh flowers to the office."), ("Elin", "Aww, thanks Jonas."))
    assert found(chunk) == []


def test_mail_counts_only_when_the_user_sent_it() -> None:
    body = "I booked the train tickets to Kyoto for our spring trip.\nThe hotel is near the station."
    sent = mail_chunk(body, "Maya Berg <maya@example.org>")
    received = mail_chunk(body, "Jonas <jonas@example.org>")
    for source_format in ("email", "mbox"):  # the formats the mail readers write (not "mail")
        assert [s.text for s in found(sent, source_format)] == [
            "I booked the train tickets to Kyoto for our spring trip."
        ]
        assert found(received, source_format) == []


def test_saved_web_pages_give_nothing() -> None:
    assert found(text_chunk("I moved to Porto last year and I love the city."), "html") == []


def test_notes_give_first_person_sentences_dated_when_ingested() -> None:
    chunk = text_chunk("I started learning Japanese for my trip. The cherry blossoms bloom in early April.", "Kyoto")
    [statement] = found(chunk, "markdown")
    assert statement.text == "I started learning Japanese for my trip."
    assert statement.origin == "self"
    assert (statement.evidence.chunk_id, statement.evidence.said_at) == ("t1", "2026-02-01 10:00")


# --- 2. restating and checking ----------------------------------------------------------------------

PUPPY = Statement(
    "I adopted a puppy named Luna last week.",
    "self",
    Evidence("c1", CHAT_SOURCE, "I adopted a puppy named Luna last week.", ("m1",), "2026-01-27 21:10", "Maya"),
)


def test_support_is_the_share_of_the_facts_content_words_in_the_statement_apart_from_the_name() -> None:
    assert support("Maya adopted a puppy named Luna.", PUPPY.text, "Maya") == 1.0
    assert support("Maya adopted a black puppy.", PUPPY.text, "Maya") == pytest.approx(2 / 3)
    assert support("Maya.", PUPPY.text, "Maya") == 0.0


def test_a_good_restatement_is_kept_and_ends_with_a_full_stop() -> None:
    model = FixedModel(fact_json("Maya adopted a puppy named Luna last week"))
    candidate = restate(model, PUPPY, "Maya", fact_grammar("Maya"))
    assert (candidate.text, candidate.restated, candidate.statement) == (
        "Maya adopted a puppy named Luna last week.",
        True,
        PUPPY,
    )
    [(messages, grammar, max_tokens)] = model.calls
    assert grammar == fact_grammar("Maya") and max_tokens == FACT_TOKENS
    assert messages[-1].content == f"Maya said: {PUPPY.text}\nFact about Maya:"


@pytest.mark.parametrize(
    "answer",
    [
        fact_json("Maya adopted a black puppy named Luna."),  # "black" was never said
        fact_json("Maya adopted my puppy named Luna."),
        fact_json("I adopted a puppy named Luna."),
        fact_json("Maya adopted a puppy named Luna for you."),
        "not json at all",
    ],
)
def test_a_restatement_adding_a_word_or_a_pronoun_is_replaced_by_the_quoted_statement(answer: str) -> None:
    candidate = restate(FixedModel(answer), PUPPY, "Maya", fact_grammar("Maya"))
    assert candidate.restated is False
    assert candidate.text == 'Maya: "I adopted a puppy named Luna last week."'


def test_a_reported_statement_is_quoted_in_its_speakers_name() -> None:
    said = "Maya makes the best lemon cake in town."
    statement = Statement(said, "reported", Evidence("c1", CHAT_SOURCE, said, ("m1",), "", "Jonas"))
    model = FixedModel(fact_json("Maya makes the best cheesecake in town."))
    assert restate(model, statement, "Maya", fact_grammar("Maya")).text == f'Jonas: "{said}"'
    assert model.calls[0][0][-1].content.startswith("Jonas said: ")


def gbnf_root_literal(grammar: str) -> str:
    """The first string literal of the `root` rule, decoded as llama.cpp's GBNF parser decodes it."""
    rule = grammar.split("root ::= ", 1)[1]
    assert rule[0] == '"'
    escapes = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "[": "[", "]": "]"}
    out, position = [], 1
    while rule[position] != '"':
        if rule[position] == "\\":
            out.append(escapes[rule[position + 1]])
            position += 2
        else:
            out.append(rule[position])
            position += 1
    return "".join(out)


NASTY_NAMES = ["Maya", 'O"Brien', "a\\b", "Zoë", "new\nline", 'Ann "\\" Lee']


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_the_fact_grammar_forces_valid_json_starting_with_the_name(name: str) -> None:
    grammar = fact_grammar(name)
    assert f"char{{3,{MAX_FACT_CHARS}}}" in grammar
    prefix = gbnf_root_literal(grammar)
    assert json.loads(prefix + "likes tea" + '"}') == {"fact": f"{name} likes tea"}
    char_rule = grammar.split("char ::= ", 1)[1].strip()
    assert char_rule == '[^"\\\\\\x00-\\x1f]'  # never a quote, a backslash or a control character


@pytest.fixture(scope="module")
def gguf_vocabulary() -> Iterator[Any]:
    """The bundled model's vocabulary only (no weights): enough for llama.cpp to parse a grammar."""
    import llama_cpp.llama_cpp as llama

    from pllm_cli.runtime import bundled_model_path

    try:
        path = bundled_model_path()
    except Exception:
        pytest.skip("the bundled GGUF model is not installed")
    if not path.exists():
        pytest.skip("the bundled GGUF model is not installed")
    llama.llama_backend_init()
    params = llama.llama_model_default_params()
    params.vocab_only = True
    model = llama.llama_model_load_from_file(str(path).encode(), params)
    assert model
    yield llama.llama_model_get_vocab(model)
    llama.llama_model_free(model)


def llama_cpp_parses(vocabulary: Any, grammar: str) -> bool:
    import llama_cpp.llama_cpp as llama

    sampler = llama.llama_sampler_init_grammar(vocabulary, grammar.encode(), b"root")
    if not sampler:
        return False
    llama.llama_sampler_free(sampler)
    return True


def test_llama_cpp_parses_the_fact_grammar_even_for_names_with_quotes_and_backslashes(gguf_vocabulary: Any) -> None:
    # LlamaGrammar.from_string no longer parses anything (llama-cpp-python 0.3.x): ask llama.cpp itself
    assert not llama_cpp_parses(gguf_vocabulary, 'root ::= "unterminated')  # the check can fail
    for name in NASTY_NAMES:
        assert llama_cpp_parses(gguf_vocabulary, fact_grammar(name)), name


# --- 3. slots ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "slot"),
    [
        ("I live in Lisbon with my cat.", ("residence", "lisbon")),
        ("Last year I moved to Porto for work.", ("residence", "porto")),
        ("I've moved to New York recently.", ("residence", "new york")),
        ("I work at Google since March.", ("employer", "google")),
        ("I work as a nurse.", ("job", "nurse")),
        ("I'm 34 years old.", ("age", "34")),
        ("I just turned 40!", ("age", "40")),
        ("I'm married to Elin.", ("relationship status", "married")),
        ("We finally got engaged, I got engaged!", ("relationship status", "engaged")),
        ("my wife Elin loves tea", ("partner", "elin")),
        ("My favourite book is Dune.", ("favourite book", "dune")),
        ("my favorite food is green curry", ("favourite food", "green curry")),
        ("I love hiking in the mountains.", ("", "")),
        ("I work for the city council.", ("", "")),
    ],
)
def test_slot_of(sentence: str, slot: tuple[str, str]) -> None:
    assert slot_of(sentence) == slot


def test_a_number_of_minutes_is_not_an_age() -> None:
    assert slot_of("I'm 10 minutes late for the meeting.") == ("", "")


def test_im_living_in_is_a_residence() -> None:
    assert slot_of("I'm living in Porto now.") == ("residence", "porto")


# --- 4. merging -------------------------------------------------------------------------------------


def test_the_same_fact_twice_is_confirmed_not_duplicated_and_reading_it_again_changes_nothing() -> None:
    state = ProfileState()
    first = new_fact("Maya plays the cello in an orchestra.", "2026-01-10 10:00", chunk="c1")
    again = new_fact("Maya plays the cello in an orchestra.", "2026-02-10 10:00", chunk="c2")
    added = merge(state, [first], "Maya")
    [fact] = state.facts
    assert added.added == [fact.id] and fact.confidence == pytest.approx(0.6)
    report = merge(state, [again], "Maya")
    [confirmed] = state.facts
    assert report.added == [] and report.confirmed == [fact.id]
    assert confirmed.evidence == (first.evidence, again.evidence)
    assert confirmed.confidence == pytest.approx(0.7)
    assert (confirmed.first_seen, confirmed.last_confirmed) == ("2026-01-10 10:00", "2026-02-10 10:00")
    before = list(state.facts)
    assert merge(state, [again, first], "Maya").changed == []
    assert state.facts == before


def test_a_quoted_statement_starts_less_sure() -> None:
    state = ProfileState()
    merge(state, [new_fact('Maya: "I play the cello."', "2026-01-10 10:00", restated=False)], "Maya")
    assert state.facts[0].confidence == pytest.approx(0.5)


def test_a_reported_fact_confirmed_by_the_user_becomes_their_own() -> None:
    state = ProfileState()
    text = "Maya makes the best lemon cake in town."
    merge(state, [new_fact(text, "2026-01-10 10:00", origin="reported", speaker="Jonas")], "Maya")
    assert state.facts[0].origin == "reported"
    assert state.facts[0].confidence == pytest.approx(0.4)
    merge(state, [new_fact(text, "2026-01-11 10:00", chunk="c2")], "Maya")
    [fact] = state.facts
    assert fact.origin == "self"
    assert fact.confidence == pytest.approx(0.7)


LISBON = ("Maya lives in Lisbon.", "residence", "lisbon")
PORTO = ("Maya moved to Porto.", "residence", "porto")
FARO = ("Maya lives in Faro.", "residence", "faro")


def residence(fact: tuple[str, str, str], said_at: str, chunk: str) -> NewFact:
    text, slot, value = fact
    return new_fact(text, said_at, chunk=chunk, slot=slot, value=value)


def by_text(state: ProfileState) -> dict[str, Fact]:
    return {f.text: f for f in state.facts}


def test_a_newer_value_of_a_slot_supersedes_the_older_and_an_older_one_arriving_later_is_superseded() -> None:
    state = ProfileState()
    merge(state, [residence(LISBON, "2025-03-01 10:00", "c1")], "Maya")
    report = merge(state, [residence(PORTO, "2026-01-01 10:00", "c2")], "Maya")
    facts = by_text(state)
    lisbon, porto = facts[LISBON[0]], facts[PORTO[0]]
    assert report.superseded == [lisbon.id]
    assert (lisbon.status, lisbon.superseded_by) == ("superseded", porto.id)
    assert porto.active
    late = merge(state, [residence(FARO, "2024-01-01 10:00", "c3")], "Maya")
    faro = by_text(state)[FARO[0]]
    assert late.added == [faro.id] and late.superseded == []  # born superseded: added, no existing fact changed
    assert (faro.status, faro.superseded_by) == ("superseded", porto.id)
    assert [f.text for f in state.active] == [PORTO[0]]


def test_a_pinned_fact_is_never_superseded() -> None:
    pinned = a_fact("fpin0001", "I live in Lisbon.", origin="pinned", confidence=1.0, slot="residence", value="lisbon")
    state = ProfileState(facts=[pinned.with_(first_seen="2020-01-01 00:00", last_confirmed="2020-01-01 00:00")])
    report = merge(state, [residence(PORTO, "2026-01-01 10:00", "c2")], "Maya")
    facts = {f.id: f for f in state.facts}
    assert facts["fpin0001"].active
    [porto] = report.added
    assert (facts[porto].status, facts[porto].superseded_by) == ("superseded", "fpin0001")


def test_a_candidate_close_to_a_forgotten_fact_is_dropped() -> None:
    state = ProfileState(forgotten=[vec("Maya plays the cello in an orchestra.")])
    report = merge(state, [new_fact("Maya plays the cello in an orchestra.", "2026-01-10 10:00")], "Maya")
    assert report.dropped_as_forgotten == 1 and report.added == []
    assert state.facts == []


def test_merging_no_candidates_changes_nothing() -> None:
    state = ProfileState(facts=[a_fact("f0000001", "Maya plays the cello.")])
    report = merge(state, [], "Maya")
    assert report.added == [] and report.changed == []


# --- 5. pruning -------------------------------------------------------------------------------------


def test_prune_drops_evidence_gone_from_memory_and_facts_left_with_none_but_keeps_pinned_facts() -> None:
    two = a_fact("f0000002", "Maya plays the cello.", chunk="gone", message="m1")
    two = two.with_(evidence=(*two.evidence, Evidence("kept", CHAT_SOURCE, "I play the cello.", (), "", "Maya")))
    state = ProfileState(
        facts=[
            a_fact("f0000001", "Maya lives in Lisbon.", chunk="gone", message="m9"),
            two,
            a_fact("f0000003", "Maya runs on Sundays.", chunk="rechunked", message="m3"),  # its message remains
            a_fact("f0000004", "I am vegetarian.", origin="pinned", confidence=1.0),
        ]
    )
    removed = prune(state, chunks={"kept", "new"}, messages={(CHAT_SOURCE, "m3")})
    assert removed == ["f0000001"]
    facts = {f.id: f for f in state.facts}
    assert set(facts) == {"f0000002", "f0000003", "f0000004"}
    assert [e.chunk_id for e in facts["f0000002"].evidence] == ["kept"]
    assert [e.chunk_id for e in facts["f0000003"].evidence] == ["rechunked"]


def test_prune_brings_back_a_fact_superseded_by_a_removed_one() -> None:
    state = ProfileState()
    merge(state, [residence(LISBON, "2025-03-01 10:00", "c1"), residence(PORTO, "2026-01-01 10:00", "c2")], "Maya")
    porto = by_text(state)[PORTO[0]]
    assert prune(state, chunks={"c1"}, messages=set()) == [porto.id]
    [lisbon] = state.facts
    assert (lisbon.text, lisbon.status, lisbon.superseded_by) == (LISBON[0], "active", "")


def test_prune_brings_back_only_the_latest_value_of_a_slot() -> None:
    state = ProfileState()
    merge(state, [residence(LISBON, "2025-03-01 10:00", "c1"), residence(PORTO, "2026-01-01 10:00", "c2")], "Maya")
    merge(state, [residence(FARO, "2024-01-01 10:00", "c3")], "Maya")
    prune(state, chunks={"c1", "c3"}, messages=set())
    assert [f.text for f in state.active if f.slot == "residence"] == [LISBON[0]]


# --- 6. the files on disk ---------------------------------------------------------------------------


def sample_state() -> ProfileState:
    return ProfileState(
        name="Maya",
        embedding_model="fake-embedder",
        facts=[
            a_fact("f0000001", "Maya lives in Lisbon.", message="m2", slot="residence", value="lisbon"),
            a_fact("f0000002", "Maya makes the best cake.", origin="reported", speaker="Jonas", confidence=0.4),
        ],
        style={"messages": 3},
        forgotten=[vec("Maya plays the cello.")],
        read={"c1", "c2"},
    )


def test_save_and_load_round_trip_with_vectors_at_float16_precision(files: ProfileFiles) -> None:
    import numpy

    state = sample_state()
    files.save(state, "refresh", {"added": ["f0000001", "f0000002"]})
    loaded = files.load()
    assert loaded.facts == state.facts  # every field but the vectors
    assert (loaded.version, loaded.name, loaded.style, loaded.read) == (1, "Maya", {"messages": 3}, {"c1", "c2"})
    for before, after in zip(state.facts, loaded.facts, strict=True):
        assert after.vector == tuple(float(v) for v in numpy.asarray(before.vector, dtype=numpy.float16))
        assert after.vector == pytest.approx(before.vector, abs=1e-3)
    assert loaded.forgotten[0] == pytest.approx(vec("Maya plays the cello."), abs=1e-3)
    assert loaded.facts[1].reported_by == "Jonas"


def test_each_save_is_a_new_version_in_the_history(files: ProfileFiles) -> None:
    state = sample_state()
    files.save(state, "refresh", {"added": ["f0000001"]})
    state.facts = state.facts[:1]
    files.save(state, "forget", {"removed": ["f0000002"]})
    assert files.load().version == 2
    history = files.history()
    assert [(v["version"], v["reason"]) for v in history] == [(1, "refresh"), (2, "forget")]
    assert [f["id"] for f in files.version(1)["facts"]] == ["f0000001", "f0000002"]
    assert [f["id"] for f in files.version(2)["facts"]] == ["f0000001"]
    for unknown in (0, 3, -1):
        with pytest.raises(NotFoundError):
            files.version(unknown)


def test_no_profile_yet(files: ProfileFiles) -> None:
    assert files.load().facts == [] and files.history() == []
    with pytest.raises(NotFoundError, match="no profile yet"):
        files.load(required=True)


def test_a_crash_while_writing_profile_json_leaves_the_previous_profile_whole(
    files: ProfileFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.save(sample_state(), "refresh", {})
    before = files.paths.profile_file.read_bytes()
    real_replace = os.replace

    def crash_on_profile(source: Any, target: Any) -> None:
        if Path(target) == files.paths.profile_file:
            raise OSError("power cut")
        real_replace(source, target)

    monkeypatch.setattr("pllm_cli.paths.os.replace", crash_on_profile)
    changed = files.load()
    changed.facts = []
    with pytest.raises(OSError, match="power cut"):
        files.save(changed, "forget", {})
    monkeypatch.undo()
    assert files.paths.profile_file.read_bytes() == before
    again = files.load()
    assert again.version == 1 and len(again.facts) == 2
    assert [v["version"] for v in files.history()] == [1]  # the orphaned snapshot of version 2 is ignored


@pytest.mark.parametrize("damage", ["{not json", "", '{"facts": [{"id": "f1"}]}', '{"facts": [], "version": "x"}'])
def test_a_damaged_profile_raises_a_store_error_with_a_hint(files: ProfileFiles, damage: str) -> None:
    files.save(sample_state(), "refresh", {})
    files.paths.profile_file.write_text(damage, encoding="utf-8")
    with pytest.raises(StoreError) as error:
        files.load()
    assert error.value.exit_code == ExitCode.STORE
    assert error.value.hint and "--rebuild" in error.value.hint


@pytest.mark.parametrize("damage", ["[]", "null", '{"facts": ["x"]}'])
def test_a_profile_of_the_wrong_shape_raises_a_store_error(files: ProfileFiles, damage: str) -> None:
    files.save(sample_state(), "refresh", {})
    files.paths.profile_file.write_text(damage, encoding="utf-8")
    with pytest.raises(StoreError):
        files.load()


def test_profile_files_are_private(files: ProfileFiles) -> None:
    files.save(sample_state(), "refresh", {})
    paths = files.paths
    written = [paths.profile_file, paths.profile_read_file, *paths.profile_history_dir.iterdir()]
    assert len(written) == 3
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(paths.profile_history_dir.stat().st_mode) == 0o700


# --- 7. refresh on a real memory --------------------------------------------------------------------


def test_a_refresh_lets_others_in_after_every_statement_it_restates(memory: Memory) -> None:
    """`between` (what `pllm serve` runs waiting questions in) comes after each restatement, so a chunk with
    several statements is not one long step."""
    restated: list[int] = []
    complete = memory.model.complete

    def counting(*args: Any, **kwargs: Any) -> str:
        restated.append(len(between))
        return complete(*args, **kwargs)

    between: list[int] = []
    memory.model.complete = counting  # type: ignore[method-assign]
    report = manage.refresh_profile(
        memory.files,
        memory.store.index,
        memory.embedder,
        memory.model,
        name="Maya",
        me=ME,
        between=lambda: between.append(1),
    )
    assert report.statements == 4 and report.chunks_read == 2  # 3 statements in the chat's one chunk
    assert len(between) == 4 and restated == [0, 1, 2, 3]  # one call after each, never two restatements in a row


def test_the_first_refresh_adds_facts_with_their_evidence(memory: Memory) -> None:
    report = memory.refresh()
    assert report.saved and report.version == 1
    assert report.chunks_read == 2 and report.statements == 4 and len(report.merge.added) == 4
    state = memory.files.load()
    chunk_ids = {chunk_id for chunk_id, _, _ in memory.store.index.chunk_refs()}
    assert state.read == chunk_ids
    for fact in state.facts:
        assert fact.vector and fact.evidence
        assert {e.chunk_id for e in fact.evidence} <= chunk_ids
    assert memory.fact("Lisbon").evidence[0].message_ids == ("m2",)
    assert memory.fact("Lisbon").origin == "self"
    assert (memory.fact("lemon cake").origin, memory.fact("lemon cake").reported_by) == ("reported", "Jonas")
    assert memory.fact("Kyoto").evidence[0].source == str(memory.note)
    assert memory.fact("Kyoto").evidence[0].message_ids == ()


def test_a_second_refresh_with_nothing_new_changes_nothing(memory: Memory) -> None:
    memory.refresh()
    before = memory.files.paths.profile_file.read_bytes()
    calls = len(memory.model.calls)
    report = memory.refresh()
    assert (report.saved, report.version, report.chunks_read) == (False, 1, 0)
    assert len(memory.model.calls) == calls
    assert memory.files.paths.profile_file.read_bytes() == before


def test_a_refresh_reads_only_the_chunks_memory_gained(memory: Memory) -> None:
    memory.refresh()
    calls = len(memory.model.calls)
    write_chat(memory.chat, [*CHAT, NEW_MESSAGE])  # a new conversation: the first one's chunk is unchanged
    memory.ingest(memory.chat)
    report = memory.refresh()
    assert (report.chunks_read, report.statements, report.version) == (1, 1, 2)
    [puppy] = report.merge.added
    assert report.merge.changed == [] and report.merge.removed == []
    assert [c["messages"][-1].content for c in memory.model.calls[calls:]] == [
        f"Maya said: {NEW_MESSAGE[4]}\nFact about Maya:"
    ]
    assert memory.fact("puppy").id == puppy
    assert memory.fact("puppy").evidence[0].message_ids == ("m4",)


def test_a_message_appended_to_a_conversation_does_not_confirm_the_older_ones(memory: Memory) -> None:
    memory.refresh()
    appended = ("dinner", "m4", "Maya", "2026-01-27T21:20:00+01:00", "I just adopted a puppy named Luna.")
    write_chat(memory.chat, [*CHAT, appended])
    memory.ingest(memory.chat)
    report = memory.refresh()
    assert report.merge.changed == []
    lisbon = memory.fact("Lisbon")
    assert len(lisbon.evidence) == 1
    assert lisbon.confidence == pytest.approx(0.6)


def test_rebuild_reads_everything_again_and_keeps_pinned_facts(memory: Memory) -> None:
    memory.refresh()
    first = {f.id for f in memory.files.load().facts}
    pinned = manage.pin(memory.files, "I am vegetarian", memory.embedder, "preferences")
    report = memory.refresh(rebuild=True)
    assert report.saved and report.chunks_read == 2 and report.version == 3
    facts = {f.id: f for f in memory.files.load().facts}
    assert set(facts) == first | {pinned.id}
    assert facts[pinned.id].origin == "pinned"
    assert memory.files.history()[-1]["reason"] == "rebuild"


def test_a_refresh_after_a_source_left_memory_removes_the_facts_only_it_gave(memory: Memory) -> None:
    memory.refresh()
    kyoto = memory.fact("Kyoto")
    memory.store.remove_source(str(memory.note))
    report = memory.refresh()
    assert report.merge.removed == [kyoto.id]
    assert "Kyoto" not in " ".join(f.text for f in memory.files.load().facts)


def test_a_refresh_after_one_source_left_and_another_came_removes_and_adds(memory: Memory) -> None:
    memory.refresh()
    kyoto = memory.fact("Kyoto")
    memory.store.remove_source(str(memory.note))
    memory.ingest(write_chat(memory.chat.with_name("trip.jsonl"), [NEW_MESSAGE]))
    report = memory.refresh()
    assert report.merge.removed == [kyoto.id]
    assert len(report.merge.added) == 1
    texts = " ".join(f.text for f in memory.files.load().facts)
    assert "Kyoto" not in texts and "puppy" in texts and "Lisbon" in texts


def test_facts_of_forgotten_memory_are_dropped(memory: Memory) -> None:
    memory.refresh()
    kyoto = memory.fact("Kyoto")
    memory.store.remove_source(str(memory.note))
    assert [f.id for f in manage.drop_facts_of_forgotten_memory(memory.files, memory.store.index)] == [kyoto.id]
    state = memory.files.load()
    assert (state.version, len(state.facts)) == (2, 3)
    assert state.read == {chunk_id for chunk_id, _, _ in memory.store.index.chunk_refs()}
    assert manage.drop_facts_of_forgotten_memory(memory.files, memory.store.index) == []
    assert memory.files.load().version == 2


def test_refresh_of_an_empty_memory_is_not_found(files: ProfileFiles, store: ChromaStore) -> None:
    with pytest.raises(NotFoundError, match="memory is empty"):
        manage.refresh_profile(files, store.index, FakeEmbedder(), FakeChatModel(), name="Maya", me=ME)


# --- 8. pin, forget, diff ---------------------------------------------------------------------------


def test_pin_adds_a_sure_fact(files: ProfileFiles, fake_embedder: FakeEmbedder) -> None:
    fact = manage.pin(files, "  I am   vegetarian  ", fake_embedder, "preferences")
    [stored] = files.load().facts
    assert stored == fact
    assert (fact.text, fact.origin, fact.confidence, fact.category) == ("I am vegetarian", "pinned", 1.0, "preferences")
    assert files.load().version == 1
    manage.pin(files, "I am vegetarian", fake_embedder, "preferences")  # already there: no new version
    assert files.load().version == 1
    dog = "I have a dog named Luna"
    expected = Categorizer(fake_embedder).categories(fake_embedder.embed([dog]))[0]
    assert manage.pin(files, dog, fake_embedder).category == expected  # no category given: the closest one


@pytest.mark.parametrize(
    ("text", "category", "message"),
    [("", None, "empty"), ("   ", None, "empty"), ("x" * 501, None, "at most"), ("I run", "hobbies", "category")],
)
def test_pin_rejects_bad_input(
    files: ProfileFiles, fake_embedder: FakeEmbedder, text: str, category: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        manage.pin(files, text, fake_embedder, category)
    assert not files.exists


def test_forget_removes_a_fact_and_a_rebuild_does_not_bring_it_back(memory: Memory) -> None:
    memory.refresh()
    lisbon = memory.fact("Lisbon")
    assert manage.forget(memory.files, lisbon.id[:5]) == lisbon  # a unique prefix will do
    state = memory.files.load()
    assert lisbon.id not in {f.id for f in state.facts}
    assert len(state.forgotten) == 1 and state.forgotten[0] == pytest.approx(lisbon.vector, abs=1e-3)
    report = memory.refresh(rebuild=True)
    assert report.merge.dropped_as_forgotten == 1
    assert "Lisbon" not in " ".join(f.text for f in memory.files.load().facts)
    with pytest.raises(NotFoundError):
        manage.forget(memory.files, lisbon.id)


def test_diff_reports_added_removed_and_changed() -> None:
    old = [
        {"id": "f1", "text": "a", "status": "active", "category": "identity"},
        {"id": "f2", "text": "b", "status": "active", "category": "identity"},
    ]
    new = [
        {"id": "f2", "text": "b", "status": "superseded", "category": "identity"},
        {"id": "f3", "text": "c", "status": "active", "category": "work"},
    ]
    assert manage.diff(old, new) == {
        "added": [new[1]],
        "removed": [old[0]],
        "changed": [{"id": "f2", "status": ["active", "superseded"]}],
    }
    assert manage.diff(old, old) == {"added": [], "removed": [], "changed": []}


# --- 9. what the model is shown ----------------------------------------------------------------------

CELLO = "Maya plays the cello in an orchestra."


def render_state(style: bool = False) -> ProfileState:
    turns = [Turn("", "Maya", text, "", True) for text in ("haha yes!", "see you at 8", "ok 🙂", "running late")]
    return ProfileState(
        name="Maya",
        version=4,
        facts=[
            a_fact("fpin0001", "I am vegetarian.", origin="pinned", confidence=1.0, category="preferences"),
            a_fact("f0000001", "Maya works as a landscape architect.", category="work"),
            a_fact("f0000002", CELLO, category="preferences"),
            a_fact("f0000003", "Maya makes the best lemon cake.", origin="reported", speaker="Jonas", confidence=0.4),
            a_fact("f0000004", "Maya lives in Faro.", status="superseded", superseded_by="f0000005"),
        ],
        style=writing_style(turns).to_dict() if style else {},
    )


def test_pinned_facts_come_first_and_stay_when_others_are_cut() -> None:
    state = render_state()
    pinned_line = "- I am vegetarian."
    selection = select(state, "anything", vec("anything"), words(pinned_line), words)
    assert selection.text == pinned_line
    assert selection.used == ["fpin0001"]
    assert sorted(selection.cut) == ["f0000001", "f0000002", "f0000003"]  # never the superseded one


@pytest.mark.parametrize("room", [0, 3, 8, 12, 15, 20, 30, 100])
def test_the_budget_is_respected(room: int) -> None:
    selection = select(render_state(style=True), "write a message to Jonas", vec("cello"), room, words)
    lines = selection.text.split("\n") if selection.text else []
    assert sum(words(line) for line in lines) + max(len(lines) - 1, 0) <= room
    assert len(selection.used) + len(selection.cut) == 4
    if room >= 100:
        assert selection.cut == []


def test_after_the_core_the_facts_closest_to_the_question_fill_the_room() -> None:
    """Room 24 (words): the pinned fact (4), the core's half of the rest holds the most confident fact (8), and
    what is left (12) takes the fact closest to the question."""
    cello = select(render_state(), "cello orchestra", vec("cello orchestra"), 24, words)
    assert cello.used == ["fpin0001", "f0000001", "f0000002"]
    assert cello.text.split("\n")[2] == f"- {CELLO}"
    cake = select(render_state(), "lemon cake", vec("lemon cake"), 24, words)
    assert cake.used == ["fpin0001", "f0000001", "f0000003"]
    assert cake.text.split("\n")[2] == "- Maya makes the best lemon cake. (told by Jonas)"


def test_the_pinned_and_most_confident_facts_begin_the_profile_for_every_question() -> None:
    """What the prompt's cached beginning rests on (prefix_cache.py): the same first lines, whatever is asked."""
    selections = [select(render_state(), q, vec(q), 24, words) for q in ("cello orchestra", "lemon cake", "x")]
    assert {s.stable_lines for s in selections} == {2}
    assert {s.stable_text for s in selections} == {"- I am vegetarian.\n- Maya works as a landscape architect."}
    assert all(s.text.startswith(s.stable_text) for s in selections)
    everything = select(render_state(), "x", vec("x"), 200, words)  # room for all: all of it is the core
    assert everything.stable_lines == 4 and everything.stable_text == everything.text


@pytest.mark.parametrize(
    ("question", "voice"),
    [
        ("write a message to Jonas", True),
        ("Draft an email to Karin about the drawings", True),
        ("reply to Elin's text for me", True),
        ("say it in my voice", True),
        ("make it sound like me", True),
        ("Where do I live?", False),
        ("What did Jonas write about the cake?", False),
        ("When is my next cello rehearsal?", False),
    ],
)
def test_wants_my_voice(question: str, voice: bool) -> None:
    assert wants_my_voice(question) is voice


def test_the_writing_style_line_is_added_only_when_the_user_asks_for_their_voice() -> None:
    state = render_state(style=True)
    asked = select(state, "write a message to Jonas", vec("write a message to Jonas"), 200, words)
    assert asked.voice is True
    lines = asked.text.split("\n")
    assert lines[0] == "- I am vegetarian." and lines[asked.stable_lines].startswith("Write as Maya writes: ")
    assert asked.stable_text == select(state, "Where do I live?", vec("Where"), 200, words).stable_text
    plain = select(state, "Where do I live?", vec("Where do I live?"), 200, words)
    assert plain.voice is False and "Write as" not in plain.text
    unmeasured = select(render_state(), "write a message to Jonas", vec("message"), 200, words)
    assert unmeasured.voice is False and "Write as" not in unmeasured.text


def test_describe_shows_ids_categories_and_who_told() -> None:
    text = describe(render_state())
    assert text.startswith("# Profile of Maya (version 4, ")
    for expected in ("## Preferences", "## Skills and work", "## Identity", "told by Jonas", "pinned"):
        assert expected in text
    for fact_id in ("fpin0001", "f0000001", "f0000002", "f0000003"):
        assert fact_id in text
    assert "f0000004" not in text  # superseded: only with all_facts
    assert "superseded by f0000005" in describe(render_state(), all_facts=True)
    assert "No facts yet." in describe(ProfileState())


# --- 10. the lock -----------------------------------------------------------------------------------


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A lock held by another thread for the test's duration."""
    path = tmp_path / "locks" / "profile.lock"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(path, "changing this profile"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    yield path
    release.set()
    thread.join(5)


def test_a_held_lock_is_busy_at_once(held_lock: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BusyError) as error, exclusive(held_lock, "changing this profile"):
        pass
    assert time.monotonic() - started < 0.2
    assert error.value.exit_code == ExitCode.BUSY
    assert int(error.value.exit_code) == 10
    assert f"(pid {os.getpid()}) is changing this profile" in error.value.message


def test_waiting_for_a_held_lock_gives_up_after_the_wait(held_lock: Path) -> None:
    started = time.monotonic()
    with (
        pytest.raises(BusyError, match=r"after waiting 0\.3 s"),
        exclusive(held_lock, "changing this profile", wait=0.3),
    ):
        pass
    assert 0.3 <= time.monotonic() - started < 0.7


def test_the_lock_is_free_again_after_the_block(tmp_path: Path) -> None:
    path = tmp_path / "profile.lock"
    with exclusive(path, "changing this profile"):
        pass
    with exclusive(path, "changing this profile"):
        assert path.read_text() == str(os.getpid())
    assert path.read_text() == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _hold_in_child(path: Path, held: Any, release: Any) -> None:
    with exclusive(path, "changing this profile"):
        held.set()
        release.wait(10)


def test_another_process_holding_the_lock_makes_us_wait_until_it_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "profile.lock"
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    child = context.Process(target=_hold_in_child, args=(path, held, release))
    child.start()
    try:
        assert held.wait(5)
        with pytest.raises(BusyError, match=f"pid {child.pid}"), exclusive(path, "changing this profile"):
            pass
        threading.Timer(0.2, release.set).start()
        started = time.monotonic()
        with exclusive(path, "changing this profile", wait=5):
            assert time.monotonic() - started >= 0.15
    finally:
        release.set()
        child.join(5)
    assert child.exitcode == 0


# --- findings of the review: re-cut chats, negations, who a sentence is about --------------------------------


def test_a_superseded_fact_read_again_from_a_re_cut_chunk_is_not_duplicated() -> None:
    state = ProfileState()
    merge(state, [residence(LISBON, "2025-03-01 10:00", "c1")], "Maya")
    merge(state, [residence(PORTO, "2026-01-01 10:00", "c2")], "Maya")
    again = residence(LISBON, "2025-03-01 10:00", "c1")  # the same message in a chunk re-cut as "c1b"
    moved = NewFact(
        again.category,
        again.text,
        again.origin,
        Evidence("c1b", CHAT_SOURCE, again.evidence.quote, again.evidence.message_ids, again.evidence.said_at, "Maya"),
        again.vector,
        again.restated,
        again.slot,
        again.value,
    )
    report = merge(state, [moved], "Maya")
    assert report.added == [] and report.superseded == [] and report.confirmed == []
    lisbon = [f for f in state.facts if f.text == LISBON[0]]
    assert len(lisbon) == 1 and lisbon[0].status == "superseded"
    assert [e.chunk_id for e in lisbon[0].evidence] == ["c1b"], "the evidence follows the message to its new chunk"


@pytest.mark.parametrize(
    ("fact", "statement"),
    [
        ("Maya eats meat.", "I never eat meat anymore, not since last year."),
        ("Maya has a dog.", "I have never had a dog in my life."),
        ("Maya eats meat.", "I don't eat meat."),
        ("Maya moves to Berlin.", "If I moved to Berlin I would miss the sea."),
    ],
)
def test_a_restatement_that_drops_a_negation_or_a_condition_is_not_supported(fact: str, statement: str) -> None:
    assert support(fact, statement, "Maya") == 0.0


def test_a_restatement_that_keeps_the_negation_is_supported() -> None:
    assert support("Maya never eats meat.", "I never eat meat.", "Maya") == 1.0


def test_another_speaker_talking_about_themselves_is_not_reported_about_the_user() -> None:
    chunk = chat_chunk(("Jonas", "I told Maya that I am moving to Berlin next spring."), ("Maya", "oh wow"))
    assert found(chunk) == []


def test_we_in_a_document_is_not_the_user() -> None:
    chunk = text_chunk("In this paper we propose a novel method for graph partitioning at scale.")
    assert found(chunk, source_format="pdf") == []
    mine = text_chunk("I rewrote the partitioning method for our team in the spring.")
    assert [s.text for s in found(mine, source_format="pdf")] == [mine.text]


def test_a_looping_restatement_is_not_kept() -> None:
    statement = Statement(
        "Starting my own business sounds awesome to me.",
        "self",
        Evidence("c1", CHAT_SOURCE, "Starting my own business sounds awesome to me.", ("m1",), "", "Maya"),
    )
    looping = "Maya starting own business, starting own business, starting own business."

    class Looping:
        name = "looping"

        def complete(self, messages: Sequence[ChatMessage], *, grammar: str, max_tokens: int) -> str:
            return json.dumps({"fact": looping})

    assert support(looping, statement.text, "Maya") == 1.0, "the words alone would pass"
    candidate = restate(Looping(), statement, "Maya", fact_grammar("Maya"))
    assert not candidate.restated and candidate.text == 'Maya: "Starting my own business sounds awesome to me."'
