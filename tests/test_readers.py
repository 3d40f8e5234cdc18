"""Readers: one per format, each turning bytes into a Document, or an InputError the user can act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLES

from pllm_cli.errors import ExitCode, InputError
from pllm_cli.ingest.readers import is_supported, read_document
from pllm_cli.memory.records import Mail


def read(path: Path):  # type: ignore[no-untyped-def]
    return read_document(path, path.read_bytes())


def read_bytes(name: str, data: bytes, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(data)
    return read_document(path, data)


# --- markdown and text ------------------------------------------------------------------------------


def test_markdown_sections_carry_their_heading_path(tmp_path: Path) -> None:
    text = (
        "# Trip\n\nIntro line.\n\n## Day 1\n\nWalk.\n\n### Morning\n\nCoffee at 8.\n\n"
        "## Day 2\n\nTrain home.\n\n```sh\n# not a heading\necho hi\n```\n"
    )
    document = read_bytes("trip.md", text.encode(), tmp_path)
    assert document.format == "markdown"
    assert document.title == "Trip"
    headings = [s.heading for s in document.sections]
    assert headings == ["Trip", "Trip > Day 1", "Trip > Day 1 > Morning", "Trip > Day 2"]
    assert document.sections[2].text == "Coffee at 8."
    # a "#" line inside a code fence is code, not a heading
    assert "# not a heading" in document.sections[3].text


def test_markdown_example_note() -> None:
    document = read(EXAMPLES / "notes" / "elin-gift-ideas.md")
    assert document.title == "Gift ideas for Elin"
    by_heading = {s.heading: s.text for s in document.sections}
    assert "Hagi-ware tea bowls" in by_heading["Gift ideas for Elin > What she's into right now"]
    assert "Gift ideas for Elin > Already given (don't repeat!)" in by_heading


def test_markdown_without_h1_uses_file_stem_as_title(tmp_path: Path) -> None:
    document = read_bytes("plans.md", b"## Soon\n\nBuy shoes.\n", tmp_path)
    assert document.title == "plans"
    assert [s.heading for s in document.sections] == ["plans > Soon"]


def test_plain_text_is_one_section_under_its_name() -> None:
    document = read(EXAMPLES / "notes" / "packing-list.txt")
    assert document.format == "text"
    assert [s.heading for s in document.sections] == ["packing-list"]
    assert document.sections[0].text.strip()


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    document = read_bytes("bom.md", "\ufeff# Titel\n\nSmörgås.\n".encode(), tmp_path)
    assert document.title == "Titel"
    assert document.sections[0].text == "Smörgås."


# --- HTML -------------------------------------------------------------------------------------------


def test_html_strips_script_style_and_nav_and_keeps_headings() -> None:
    document = read(EXAMPLES / "notes" / "bookmarks.html")
    assert document.format == "html"
    text = "\n".join(s.heading + "\n" + s.text for s in document.sections)
    for noise in ("gtag", "dataLayer", "font-family", "example-tracker", "border-radius", "Settings"):
        assert noise not in text
    assert "Göteborgsvarvet – official site" in text
    assert document.title == "Maya's bookmarks – saved page"
    assert "Maya's bookmarks – saved page > My bookmarks > Running" in [s.heading for s in document.sections]
    assert "&amp;" not in text and "Work – rain gardens & stormwater" in text


def test_html_entities_are_decoded(tmp_path: Path) -> None:
    html = b"<html><head><title>Page</title></head><body><p>Fish &amp; chips &ndash; Friday</p></body></html>"
    document = read_bytes("page.html", html, tmp_path)
    assert document.title == "Page"
    assert document.sections[0].text == "Fish & chips \u2013 Friday"


def test_html_inline_tags_keep_the_spaces_around_them(tmp_path: Path) -> None:
    html = b"<html><body><p>Fish and chips <b>on</b> Friday, see <a href='/x'>the menu</a> here.</p></body></html>"
    document = read_bytes("page.html", html, tmp_path)
    assert document.sections[0].text == "Fish and chips on Friday, see the menu here."


def test_html_navigation_lists_leave_no_stray_bullets(tmp_path: Path) -> None:
    html = (
        b"<html><head><title>T</title></head><body><nav><ul><li>Home</li><li>About</li></ul></nav>"
        b"<h1>Hi</h1><p>Body text here.</p></body></html>"
    )
    document = read_bytes("nav.html", html, tmp_path)
    lines = [line for s in document.sections for line in s.text.splitlines()]
    assert "-" not in lines
    assert [s.text for s in document.sections] == ["Body text here."]


def test_html_without_head_end_tag_keeps_the_body(tmp_path: Path) -> None:
    html = b"<html><head><title>T</title><body><h1>Hi</h1><p>Body text here.</p></body></html>"
    document = read_bytes("nohead.html", html, tmp_path)
    assert "Body text here." in "\n".join(s.text for s in document.sections)


# --- PDF --------------------------------------------------------------------------------------------


def test_pdf_text_layer_by_page() -> None:
    document = read(EXAMPLES / "documents" / "race-registration.pdf")
    assert document.format == "pdf"
    assert document.title == "Göteborgsvarvet 2026 – Registration confirmation"
    assert document.sections[0].heading.endswith("> page 1")
    text = document.sections[0].text
    assert "Bib number: 18342" in text
    assert "Participant: Maya Lindqvist" in text


@pytest.mark.parametrize("data", [b"%PDF-1.4 garbage", b"just some text, not a pdf"])
def test_broken_pdf_is_input_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InputError) as raised:
        read_bytes("broken.pdf", data, tmp_path)
    assert "broken.pdf" in raised.value.message
    assert raised.value.hint


# --- e-mail -----------------------------------------------------------------------------------------


def test_eml_quoted_printable_swedish_and_encoded_subject() -> None:
    document = read(EXAMPLES / "mail" / "karin-ek-slottsskogen-deadline.eml")
    assert document.format == "email"
    assert document.title == "Slottsskogen north meadow – concept review and deadline"
    [section] = document.sections
    assert section.mail is not None
    assert section.mail.message_id == "<20260210084712.4711@gronstad-landskap.example>"
    assert section.time == section.mail.date == "2026-02-10T08:47:12+01:00"
    assert section.mail.sender == "Karin Ek <karin.ek@gronstad-landskap.example>"
    assert section.mail.subject == section.heading == "Slottsskogen north meadow – concept review and deadline"
    assert section.mail.to and all("@" in address for address in section.mail.to)
    # quoted-printable soft line breaks joined, UTF-8 bytes decoded
    assert "Göteborgs Stad, Park- och naturförvaltningen" in section.text
    assert "Good work – the infiltration" in section.text
    assert "=C3" not in section.text and "=\n" not in section.text


def test_eml_multipart_alternative_prefers_plain_text() -> None:
    document = read(EXAMPLES / "mail" / "goteborgsvarvet-start-group.eml")
    [section] = document.sections
    assert "Bib number:   18342" in section.text
    assert "Göteborgsvarvet 2026" in section.text
    assert "<html" not in section.text.lower() and "<p>" not in section.text


def test_eml_html_only_body_and_attachment_names(tmp_path: Path) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Åsa <asa@example.org>"
    message["To"] = "maya@example.org"
    message["Subject"] = "Kräftskiva"
    message["Date"] = "Sat, 08 Aug 2026 18:00:00 +0200"
    message["Message-ID"] = "<kraft@example.org>"
    message.set_content("<html><body><p>Välkommen på kräftskiva!</p><script>x()</script></body></html>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="karta.pdf")
    document = read_bytes("party.eml", message.as_bytes(), tmp_path)
    [section] = document.sections
    assert "Välkommen på kräftskiva!" in section.text
    assert "x()" not in section.text
    assert "[attachments: karta.pdf]" in section.text
    assert section.mail == Mail(
        "Åsa <asa@example.org>",
        ("maya@example.org",),
        (),
        "2026-08-08T18:00:00+02:00",
        "Kräftskiva",
        "<kraft@example.org>",
    )
    assert (
        section.mail.heading() == "Email from Åsa <asa@example.org> to maya@example.org, 2026-08-08 18:00: Kräftskiva"
    )


def test_mbox_three_messages_with_quotes_stripped() -> None:
    document = read(EXAMPLES / "mail" / "archive.mbox")
    assert document.format == "mbox"
    assert len(document.sections) == 3
    subjects = [s.mail.subject for s in document.sections if s.mail]
    assert subjects == ["my birthday on the 14th", "Re: my birthday on the 14th", "Lesson notes + JLPT N4 plan"]
    assert all(s.mail and s.mail.message_id for s in document.sections)
    reply = document.sections[1].text
    assert "A double batch of cardamom buns." in reply
    # the quoted previous message is not repeated in the reply
    assert "Small thing, maybe 12 people" not in reply
    assert "wrote:" not in reply
    # Japanese text survives
    assert "妹に萩焼の茶碗をあげます" in document.sections[2].text


def test_mbox_from_escaped_lines_are_kept() -> None:
    document = read(EXAMPLES / "mail" / "archive.mbox")
    assert "From what I remember you said you'd bake?" in document.sections[0].text
    assert "From now until then, 20 minutes of Anki" in document.sections[2].text


def test_eml_without_headers_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        read_bytes("note.eml", b"\nhello, this is not a mail\n", tmp_path)
    assert "not an e-mail" in raised.value.message
    assert raised.value.hint


def test_mbox_that_is_not_an_mbox_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        read_bytes("box.mbox", b"Subject: hi\n\nbody\n", tmp_path)
    assert "not an mbox" in raised.value.message


# --- chat JSONL -------------------------------------------------------------------------------------


def chat_line(**overrides: object) -> str:
    record: dict[str, object] = {
        "conversation": "family",
        "id": "m1",
        "speaker": "Maya",
        "time": "2026-02-03T19:04:00+01:00",
        "text": "hej",
    }
    record.update(overrides)
    return json.dumps(record, ensure_ascii=False)


def test_chat_jsonl_example_messages() -> None:
    document = read(EXAMPLES / "chats" / "family.jsonl")
    assert document.format == "chat-jsonl"
    assert len(document.messages) == 108
    first = document.messages[0]
    assert (first.conversation, first.id, first.speaker) == ("family-group", "m0001", "Mamma")
    assert first.time == "2026-01-27T18:42:00+01:00"
    assert {m.conversation for m in document.messages} == {"family-group", "maya-jonas"}
    assert [m.id for m in document.messages] == [f"m{n:04d}" for n in range(1, 109)]


def test_chat_jsonl_normalises_times_and_accepts_numbers_and_empty_time(tmp_path: Path) -> None:
    lines = [
        chat_line(id=7, time="2026-02-03T18:04:00Z"),
        "",
        chat_line(id="m8", time="", text="no time"),
        chat_line(id="m9", time=None, text="null time"),
    ]
    document = read_bytes("c.jsonl", "\n".join(lines).encode(), tmp_path)
    assert [m.id for m in document.messages] == ["7", "m8", "m9"]
    assert document.messages[0].time == "2026-02-03T18:04:00+00:00"
    assert document.messages[1].time == "" and document.messages[2].time == ""


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"conversation": "family", "id": "m2", ', "line 3: not valid JSON"),
        ('["a", "list"]', "line 3: expected a JSON object"),
        (json.dumps({"conversation": "c", "id": "m2", "speaker": "A", "text": "x"}), "line 3: missing time"),
        (chat_line(time="yesterday evening"), "line 3: time 'yesterday evening' is not ISO 8601"),
        (chat_line(speaker=["A"]), "line 3: speaker must be a string"),
    ],
)
def test_chat_jsonl_bad_line_names_the_line(tmp_path: Path, bad_line: str, expected: str) -> None:
    text = "\n".join([chat_line(), "", bad_line, chat_line(id="m4")])
    with pytest.raises(InputError) as raised:
        read_bytes("family.jsonl", text.encode(), tmp_path)
    assert raised.value.message.startswith(f"family.jsonl {expected}")
    assert raised.value.hint
    assert raised.value.exit_code == ExitCode.INPUT


def test_chat_jsonl_text_may_contain_unicode_line_separators(tmp_path: Path) -> None:
    text = chat_line(text="first part\u2028second part") + "\n" + chat_line(id="m2", text="next") + "\n"
    document = read_bytes("sep.jsonl", text.encode(), tmp_path)
    assert [m.id for m in document.messages] == ["m1", "m2"]
    assert document.messages[0].text == "first part\u2028second part"


# --- bad input of every text format -----------------------------------------------------------------

TEXT_FORMATS = ["note.md", "note.txt", "page.html", "chat.jsonl"]


@pytest.mark.parametrize("name", TEXT_FORMATS)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"  \n\n\t\n", "the file is empty"),
        (b"abc\x00\x01\x02\x00def" * 10, "looks like a binary file (NUL byte at 3)"),
        ("Smörgåsbord på fredag".encode("latin-1"), "not valid UTF-8 (byte 2)"),
    ],
    ids=["empty", "whitespace", "binary", "latin1"],
)
def test_unreadable_text_is_input_error_with_hint(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    with pytest.raises(InputError) as raised:
        read_bytes(name, data, tmp_path)
    assert raised.value.message == f"{name}: {expected}"
    assert raised.value.hint
    if "UTF-8" in expected:
        assert "iconv" in raised.value.hint


def test_markdown_with_only_headings_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no text found"):
        read_bytes("empty.md", b"# Title\n\n## Section\n", tmp_path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    assert not is_supported(Path("photo.jpg"))
    assert is_supported(Path("NOTES.MD"))
    with pytest.raises(InputError, match=r"unsupported file type '\.jpg'") as raised:
        read_bytes("photo.jpg", b"\xff\xd8\xff", tmp_path)
    assert ".md" in (raised.value.hint or "")
