"""Chat-export importers (ChatGPT, Claude, WhatsApp, Telegram) and sniff(), which recognises them by content."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, TESTS_DIR

from pllm_cli.errors import ExitCode, InputError
from pllm_cli.ingest.document import Document, Message
from pllm_cli.ingest.readers import chatgpt, claude, telegram, whatsapp
from pllm_cli.ingest.readers.exports import sniff

FIXTURES = TESTS_DIR / "fixtures" / "exports"
LRM, NNBSP = "\u200e", "\u202f"


def fixture(name: str) -> tuple[Path, bytes]:
    path = FIXTURES / name
    return path, path.read_bytes()


def make_zip(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def texts(document: Document) -> list[str]:
    return [message.text for message in document.messages]


def by_id(document: Document) -> dict[str, Message]:
    return {message.id: message for message in document.messages}


def assert_valid_messages(document: Document) -> None:
    """Every message has all fields; ids are unique within the file; times are ISO 8601 or empty."""
    assert document.messages
    ids = [message.id for message in document.messages]
    assert len(ids) == len(set(ids))
    for message in document.messages:
        assert message.conversation and message.id and message.speaker and message.text.strip()
        if message.time:
            datetime.fromisoformat(message.time)


# --- ChatGPT ---------------------------------------------------------------------------------------------


def test_chatgpt_follows_the_kept_branch_only() -> None:
    path, data = fixture("chatgpt_conversations.json")
    document = chatgpt.read_chatgpt(path, data)
    assert document.format == "chatgpt"
    assert_valid_messages(document)
    trip = [m for m in document.messages if m.conversation == "Trip to Reykjavík ✈️"]
    # root -> ... -> current_node, in order; the edited question's first version and the regenerated
    # answer are on abandoned branches
    assert [m.id for m in trip] == ["u-1", "a-1", "u-2", "a-2-call", "a-2", "u-3", "a-3"]
    joined = "\n".join(texts(document))
    assert "ABANDONED" not in joined
    assert "REGENERATED-AWAY" not in joined


def test_chatgpt_skips_system_tool_hidden_and_scaffolding() -> None:
    document = chatgpt.read_chatgpt(*fixture("chatgpt_conversations.json"))
    ids = set(by_id(document))
    assert not ids & {"sys-1", "ctx-1", "tool-1", "th-1", "a-22"}  # system, custom instructions, tool, thoughts, empty
    joined = "\n".join(texts(document))
    assert "I live in Oslo" not in joined
    assert "Sky Lagoon】" not in joined
    assert "Looks like a church" not in joined


def test_chatgpt_speakers_roles_and_times() -> None:
    messages = by_id(chatgpt.read_chatgpt(*fixture("chatgpt_conversations.json")))
    user, answer = messages["u-1"], messages["a-1"]
    assert (user.speaker, user.from_user) == ("User", True)
    assert (answer.speaker, answer.from_user) == ("ChatGPT", False)
    assert user.time == "2024-03-02T09:15:00+00:00"
    assert answer.time == "2024-03-02T09:15:12+00:00"  # epoch floats, in UTC, to the second
    assert answer.text == "Layers:\n- thermal base layer\n- fleece\n- waterproof shell 🧥"
    assert messages["u-21"].time == ""  # create_time null
    assert messages["u-21"].text == "מה כדאי לעשות בתל אביב בערב?"


def test_chatgpt_content_types() -> None:
    messages = by_id(chatgpt.read_chatgpt(*fixture("chatgpt_conversations.json")))
    assert messages["u-3"].text == "[image]\nWhat is this building?"  # multimodal_text: an image and a question
    assert messages["a-2-call"].text == 'search("Sky Lagoon vs Blue Lagoon prices 2024")'  # code keeps its text


def test_chatgpt_conversation_falls_back_to_its_id_without_a_title() -> None:
    messages = by_id(chatgpt.read_chatgpt(*fixture("chatgpt_conversations.json")))
    assert messages["u-31"].conversation == "6650a1b2-0000-4000-8000-000000000003"
    assert messages["u-31"].text == "Zoë says hi"


def test_chatgpt_zip_as_downloaded_reads_like_its_conversations_json() -> None:
    from_zip = chatgpt.read_chatgpt(*fixture("chatgpt_export.zip"))
    from_json = chatgpt.read_chatgpt(*fixture("chatgpt_conversations.json"))
    assert from_zip.messages == from_json.messages
    assert from_zip.source.endswith("chatgpt_export.zip")


def test_chatgpt_conversations_json_in_a_subfolder_of_the_zip(tmp_path: Path) -> None:
    _, data = fixture("chatgpt_conversations.json")
    archive = make_zip({"export-2024/user.json": "{}", "export-2024/conversations.json": data})
    document = chatgpt.read_chatgpt(tmp_path / "export.zip", archive)
    assert len(document.messages) == 10


def _linear_conversation(current_node: str | None) -> dict[str, Any]:
    def node(nid: str, parent: str | None, children: list[str], role: str, text: str) -> dict[str, Any]:
        message = {"id": nid, "author": {"role": role}, "content": {"content_type": "text", "parts": [text]}}
        return {"id": nid, "parent": parent, "children": children, "message": message}

    return {
        "title": "t",
        "current_node": current_node,
        "mapping": {
            "r": {"id": "r", "parent": None, "children": ["q"], "message": None},
            "q": node("q", "r", ["old", "new"], "user", "question"),
            "old": node("old", "q", [], "assistant", "old answer"),
            "new": node("new", "q", [], "assistant", "new answer"),
        },
    }


def test_chatgpt_without_current_node_takes_the_newest_branch(tmp_path: Path) -> None:
    data = json.dumps([_linear_conversation(None)]).encode()
    document = chatgpt.read_chatgpt(tmp_path / "c.json", data)
    assert texts(document) == ["question", "new answer"]


def test_chatgpt_current_node_picks_the_branch(tmp_path: Path) -> None:
    data = json.dumps([_linear_conversation("old")]).encode()
    assert texts(chatgpt.read_chatgpt(tmp_path / "c.json", data)) == ["question", "old answer"]


def test_chatgpt_parent_cycle_does_not_hang(tmp_path: Path) -> None:
    conversation = _linear_conversation("new")
    conversation["mapping"]["r"]["parent"] = "new"  # a broken file: new -> q -> r -> new
    document = chatgpt.read_chatgpt(tmp_path / "c.json", json.dumps([conversation]).encode())
    assert sorted(texts(document)) == ["new answer", "question"]


def test_chatgpt_single_conversation_object(tmp_path: Path) -> None:
    data = json.dumps(_linear_conversation("new")).encode()
    assert texts(chatgpt.read_chatgpt(tmp_path / "c.json", data)) == ["question", "new answer"]


def test_chatgpt_malformed_json_is_an_input_error(tmp_path: Path) -> None:
    _, data = fixture("chatgpt_conversations.json")
    with pytest.raises(InputError) as info:
        chatgpt.read_chatgpt(tmp_path / "conversations.json", data[: len(data) // 2])
    assert info.value.message.startswith("conversations.json: not valid JSON")
    assert info.value.hint
    assert info.value.exit_code == ExitCode.INPUT


def test_chatgpt_wrong_shape_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a ChatGPT export") as info:
        chatgpt.read_chatgpt(tmp_path / "conversations.json", b'[{"title": "x"}]')
    assert info.value.hint


def test_chatgpt_zip_without_conversations_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"export\.zip: no conversations\.json"):
        chatgpt.read_chatgpt(tmp_path / "export.zip", make_zip({"user.json": "{}"}))


# --- Claude ----------------------------------------------------------------------------------------------


def test_claude_messages_speakers_and_times() -> None:
    path, data = fixture("claude_conversations.json")
    document = claude.read_claude(path, data)
    assert document.format == "claude"
    assert_valid_messages(document)
    messages = by_id(document)
    assert [m.id for m in document.messages] == ["m-1", "m-2", "m-3", "m-5", "m-6"]  # m-4 is empty
    assert (messages["m-1"].speaker, messages["m-1"].from_user) == ("User", True)
    assert (messages["m-2"].speaker, messages["m-2"].from_user) == ("Claude", False)
    assert messages["m-1"].conversation == "Kanelbullar recipe"
    assert messages["m-1"].time == "2024-05-01T08:00:05+00:00"


def test_claude_text_comes_from_text_blocks_not_tool_placeholders() -> None:
    messages = by_id(claude.read_claude(*fixture("claude_conversations.json")))
    assert messages["m-2"].text == "Here is a recipe.\n\nBake at 220°C for 8 minutes."
    assert "not supported on your current device" not in messages["m-2"].text
    assert "1 dl sugar" not in messages["m-2"].text  # tool input
    assert messages["m-3"].text == "Thanks, Claude! 🙏 Zoë will love them."  # no content blocks: `text`


def test_claude_unnamed_conversation_uses_its_uuid_and_keeps_rtl_text() -> None:
    messages = by_id(claude.read_claude(*fixture("claude_conversations.json")))
    assert messages["m-5"].conversation == "c1a2b3c4-0000-4000-8000-00000000000b"
    assert messages["m-5"].text == 'مرحبا، كيف أقول "شكرا" بالآيسلندية؟'


def test_claude_zip_and_single_conversation(tmp_path: Path) -> None:
    _, data = fixture("claude_conversations.json")
    from_zip = claude.read_claude(
        tmp_path / "data-2024.zip", make_zip({"users.json": "[]", "projects.json": "[]", "conversations.json": data})
    )
    assert from_zip.messages == claude.read_claude(*fixture("claude_conversations.json")).messages
    one = json.dumps(json.loads(data)[0]).encode()
    assert len(claude.read_claude(tmp_path / "one.json", one).messages) == 3


def test_claude_wrong_shape_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a Claude export"):
        claude.read_claude(tmp_path / "c.json", b'{"hello": 1}')


# --- WhatsApp --------------------------------------------------------------------------------------------


def test_whatsapp_android_24h_day_first() -> None:
    path, data = fixture("WhatsApp Chat with Zoe.txt")
    document = whatsapp.read_whatsapp(path, data)
    assert document.format == "whatsapp"
    assert document.title == "WhatsApp: Zoe"
    assert_valid_messages(document)
    assert [(m.id, m.speaker, m.time) for m in document.messages] == [
        ("wa-2", "Zoë", "2023-12-31T21:41:00"),
        ("wa-3", "Ólafur", "2023-12-31T21:42:00"),
        ("wa-6", "Zoë", "2023-12-31T21:43:00"),
        ("wa-9", "Zoë", "2024-01-01T00:05:00"),
        ("wa-10", "Zoë", "2024-01-13T09:15:00"),
        ("wa-12", "Ólafur", "2024-01-13T09:16:00"),
    ]
    assert {m.conversation for m in document.messages} == {"WhatsApp: Zoe"}
    assert all(m.from_user is None for m in document.messages)
    assert texts(document) == [
        "Happy new year almost! 🎆",
        "Ha! Same to you 🥳\nAre you coming to the party?\nIt starts at 23:00 - bring snacks",  # multi-line
        "[media]",  # <Media omitted>
        "Gleðilegt nýtt ár!",  # "<This message was edited>" dropped
        "[photo] View from the hotel",  # an attached file with its caption on the next line
        "Meeting at 10:30: don't be late",  # a colon in the text
    ]
    joined = "\n".join(texts(document))
    assert "end-to-end encrypted" not in joined
    assert "deleted" not in joined


def test_whatsapp_android_12h_us_group_with_system_lines() -> None:
    document = whatsapp.read_whatsapp(*fixture("WhatsApp Chat with Trip Planning.txt"))
    assert_valid_messages(document)
    assert [(m.speaker, m.time, m.text) for m in document.messages] == [
        ("Anna", "2023-12-31T21:42:00", "Welcome! Flights are booked ✈️"),
        ("محمد", "2023-12-31T21:43:00", "شكرا! متى نغادر؟"),
        ("Anna", "2023-12-31T21:44:00", "Jan 5, 7:30 AM from JFK"),
        ("Ben", "2024-01-02T10:07:00", "Hi all 👋"),  # "~ Ben" (not a contact)
        ("+1 (555) 010-0199", "2024-01-02T12:30:00", "lunch at 12:30?"),  # 12 PM; bidi marks around the number
        ("Anna", "2024-01-03T00:05:00", "midnight snack 🌙"),  # 12 AM
    ]
    joined = "\n".join(texts(document))
    for notice in ("created group", "added", "changed the subject", "Iceland", "invite link", "icon"):
        assert notice not in joined


def test_whatsapp_ios_with_marks_narrow_spaces_and_crlf() -> None:
    document = whatsapp.read_whatsapp(*fixture("whatsapp_ios.txt"))
    assert document.title == "WhatsApp: whatsapp_ios"
    assert_valid_messages(document)
    assert [(m.id, m.speaker, m.time, m.text) for m in document.messages] == [
        ("wa-2", "נועה", "2024-01-05T07:02:11", "בוקר טוב! ☀️"),
        ("wa-3", "Zoë", "2024-01-05T07:03:40", "Good morning! Did you land?"),
        ("wa-4", "נועה", "2024-01-05T07:04:02", "[photo]"),  # image omitted
        ("wa-5", "נועה", "2024-01-05T07:05:13", "Yes! Look at this sky\nSecond line of the message"),
        ("wa-8", "Zoë", "2024-01-05T13:15:59", "Lunch? 🍣🍜"),
        ("wa-9", "נועה", "2024-01-05T13:16:30", "[audio]"),  # <attached: 00000007-AUDIO-...opus>
        ("wa-11", "נועה", "2024-01-13T20:00:00", "נתראה ב-13 בינואר"),
    ]
    for message in document.messages:
        assert "\r" not in message.text and LRM not in message.text and LRM not in message.speaker


def test_whatsapp_ios_zip_with_chat_txt_and_media() -> None:
    path, data = fixture("WhatsApp Chat - Noa.zip")
    document = whatsapp.read_whatsapp(path, data)
    assert document.title == "WhatsApp: Noa"  # from the archive's name: the member is "_chat.txt"
    assert [(m.speaker, m.time, m.text) for m in document.messages] == [
        ("Noa", "2023-12-31T21:41:07", "Are you watching the fireworks? 🎆"),
        ("Zoë", "2023-12-31T21:42:30", "From the balcony!"),
        ("Noa", "2023-12-31T21:45:00", "[photo]"),
        ("Zoë", "2024-01-01T00:00:05", "Godt nytt år!"),
    ]


def test_whatsapp_android_zip_names_the_chat_from_its_member(tmp_path: Path) -> None:
    _, data = fixture("WhatsApp Chat with Zoe.txt")
    archive = make_zip({"IMG-20240113-WA0003.jpg": b"\xff\xd8\xff\xd9", "WhatsApp Chat with Zoe.txt": data})
    document = whatsapp.read_whatsapp(tmp_path / "download.zip", archive)
    assert document.title == "WhatsApp: Zoe"
    assert len(document.messages) == 6


def test_whatsapp_ids_are_stable_line_numbers() -> None:
    first = whatsapp.read_whatsapp(*fixture("WhatsApp Chat with Zoe.txt"))
    again = whatsapp.read_whatsapp(*fixture("WhatsApp Chat with Zoe.txt"))
    assert [m.id for m in first.messages] == [m.id for m in again.messages]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # ambiguous (all numbers <= 12), 24-hour clock: day first
        (["03/04/2024, 10:00 - A: x", "05/04/2024, 11:00 - B: y"], "2024-04-03T10:00:00"),
        # ambiguous, 12-hour clock and 2-digit years: the US layout, month first
        (["03/04/24, 10:00 AM - A: x", "05/04/24, 11:00 AM - B: y"], "2024-03-04T10:00:00"),
        # ambiguous, 12-hour clock but 4-digit years: day first
        (["03/04/2024, 10:00 AM - A: x", "05/04/2024, 11:00 AM - B: y"], "2024-04-03T10:00:00"),
        # a later first number above 12 decides for the whole file: day first
        (["03/04/24, 10:00 AM - A: x", "13/04/24, 11:00 AM - B: y"], "2024-04-03T10:00:00"),
        # a later second number above 12 decides for the whole file: month first
        (["03/04/2024, 10:00 - A: x", "03/14/2024, 11:00 - B: y"], "2024-03-04T10:00:00"),
        # year first (e.g. Swedish), and dotted dates (e.g. German)
        (["2024-03-04 10:00 - A: x", "2024-03-05 11:00 - B: y"], "2024-03-04T10:00:00"),
        (["04.03.24, 10:00 - A: x", "05.03.24, 11:00 - B: y"], "2024-03-04T10:00:00"),
        # lower-case am/pm with dots
        (["3/4/24, 10:00 p.m. - A: x", "3/5/24, 11:00 a.m. - B: y"], "2024-03-04T22:00:00"),
    ],
)
def test_whatsapp_day_month_order_is_decided_per_file(lines: list[str], expected: str, tmp_path: Path) -> None:
    document = whatsapp.read_whatsapp(tmp_path / "chat.txt", "\n".join(lines).encode())
    assert document.messages[0].time == expected


def test_whatsapp_impossible_date_leaves_out_that_message_only_and_says_so(tmp_path: Path) -> None:
    data = b"31/12/2023, 21:41 - A: x\n31/02/2023, 10:00 - Zoe: x\nmore of it\n01/01/2024, 09:00 - B: y\n"
    document = whatsapp.read_whatsapp(tmp_path / "chat.txt", data)
    assert [(m.speaker, m.text) for m in document.messages] == [("A", "x"), ("B", "y")]
    assert document.warnings == ["chat.txt: line 2: invalid date '31/02/2023, 10:00 - Zoe: x', message left out"]


def test_whatsapp_parse_without_warnings_still_raises_on_an_impossible_date() -> None:
    with pytest.raises(InputError, match=r"line 2: invalid date") as info:
        whatsapp.parse_whatsapp("31/12/2023, 21:41 - A: x\n31/02/2024, 10:00 - B: y\n", "chat")
    assert info.value.hint


def test_whatsapp_zip_without_a_chat_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no WhatsApp chat"):
        whatsapp.read_whatsapp(tmp_path / "x.zip", make_zip({"notes.txt": "just a note\n"}))


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("WhatsApp Chat with Anna.txt", "Anna"),
        ("WhatsApp Chat with Anna (1).txt", "Anna"),
        ("WhatsApp Chat - Anna.zip", "Anna"),
        ("WhatsApp-Chat mit Ólafur.txt", "Ólafur"),
        ("WhatsApp Chat with محمد.txt", "محمد"),
        ("WhatsApp Chat with Connor.txt", "Connor"),
        ("family.txt", "family"),
    ],
)
def test_whatsapp_chat_name_from_file_name(file_name: str, expected: str) -> None:
    assert whatsapp.chat_name(file_name) == expected


def test_whatsapp_loose_chat_txt_takes_its_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "WhatsApp Chat - Noa"
    folder.mkdir()
    data = b"[31/12/2023, 21:41:07] Noa: hi\n[31/12/2023, 21:42:07] Zo\xc3\xab: hey\n"
    assert whatsapp.read_whatsapp(folder / "_chat.txt", data).title == "WhatsApp: Noa"


def test_whatsapp_media_markers(tmp_path: Path) -> None:
    lines = [
        f"[1/2/2024, 10:00:00] A: {LRM}video omitted",
        f"[1/2/2024, 10:00:01] A: {LRM}sticker omitted",
        f"[1/2/2024, 10:00:02] A: {LRM}<attached: 00000009-Lease agreement.pdf>",
        f"[1/2/2024, 10:00:03] A: {LRM}<attached: 00000010-GIF-2024-02-01-10-00-03.mp4>",
        f"[1/2/2024, 10:00:04] A: {LRM}Location: https://maps.google.com/?q=64.14,-21.94",
        f"[1/2/2024, 10:00:05] A: {LRM}Missed video call",
        "[1/2/2024, 10:00:06] A: PTT-20240201-WA0001.opus (file attached)",
        f"[1/2/2024, 10:00:07] A: {LRM}Lease.pdf • {LRM}3 pages {LRM}document omitted",
    ]
    document = whatsapp.read_whatsapp(tmp_path / "chat.txt", "\n".join(lines).encode())
    assert texts(document) == [
        "[video]",
        "[sticker]",
        "[document: 00000009-Lease agreement.pdf]",
        "[GIF]",
        "[location] https://maps.google.com/?q=64.14,-21.94",
        "[audio]",
        "[document: Lease.pdf]",
    ]


def test_whatsapp_ten_thousand_messages(tmp_path: Path) -> None:
    names = ["Zoë", "Ólafur", "محمد", "נועה"]
    lines = []
    for number in range(10_000):
        day, minute = 1 + number // 1440 % 28, number % 1440
        stamp = f"{day:02d}/03/2024, {minute // 60:02d}:{minute % 60:02d}"
        lines.append(f"{stamp} - {names[number % 4]}: message {number} 🎉")
        if number % 10 == 0:
            lines.append("a second line")
    path = tmp_path / "WhatsApp Chat with Big Group.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = path.read_bytes()
    assert sniff(path, data) is not None
    document = whatsapp.read_whatsapp(path, data)
    assert len(document.messages) == 10_000
    assert len({m.id for m in document.messages}) == 10_000
    assert document.messages[-1].text == "message 9999 🎉"
    assert document.messages[10].text == "message 10 🎉\na second line"


def test_looks_like_whatsapp() -> None:
    assert whatsapp.looks_like_whatsapp(fixture("whatsapp_ios.txt")[1])
    assert whatsapp.looks_like_whatsapp(b"12/31/23, 9:41 PM - Anna: the only message")
    assert not whatsapp.looks_like_whatsapp((EXAMPLES / "notes" / "packing-list.txt").read_bytes())
    # a diary with dated lines but no "Name:" senders
    diary = b"2024-01-05 08:30 - ran 5 km\n2024-01-06 07:45 - gym\n2024-01-07 09:00 - rest day\n"
    assert not whatsapp.looks_like_whatsapp(diary)
    # a note that merely starts with one chat-like line
    assert not whatsapp.looks_like_whatsapp(b"12/31/23, 9:41 PM - Anna: call back\n\nShopping list\n- milk\n")
    assert not whatsapp.looks_like_whatsapp(b"")


# --- Telegram --------------------------------------------------------------------------------------------


def test_telegram_single_chat() -> None:
    path, data = fixture("telegram_result.json")
    document = telegram.read_telegram(path, data)
    assert document.format == "telegram"
    assert document.title == "Telegram: Ólafur"
    assert_valid_messages(document)
    assert [(m.id, m.speaker, m.text) for m in document.messages] == [
        ("tg-4455667788-2", "Ólafur", "Hæ! Ertu kominn? 🇮🇸"),
        ("tg-4455667788-3", "Zoë", "Check https://vedur.is and bring a coat!"),  # text entities joined
        ("tg-4455667788-4", "Ólafur", "[photo] View from Hallgrímskirkja"),  # photo with caption
        ("tg-4455667788-5", "Zoë", "[sticker 😂]"),
        ("tg-4455667788-7", "Ólafur", "[voice message]"),
        ("tg-4455667788-9", "Zoë", "Line one\nLine two"),
    ]  # 1 and 8 are service messages, 6 is empty
    assert {m.conversation for m in document.messages} == {"Telegram: Ólafur"}
    assert all(m.from_user is None for m in document.messages)  # a single chat does not say who the user is


def test_telegram_times_are_local_with_their_offset() -> None:
    document = telegram.read_telegram(*fixture("telegram_result.json"))
    first = document.messages[0]
    assert first.time == "2023-05-01T10:00:00+02:00"  # `date` as written, with the offset to date_unixtime
    raw = json.loads(fixture("telegram_result.json")[1])["messages"][1]
    assert datetime.fromisoformat(first.time).timestamp() == int(raw["date_unixtime"])


def test_telegram_time_fallbacks() -> None:
    assert telegram.message_time({"date": "2023-05-01T10:00:00"}) == "2023-05-01T10:00:00"  # no instant: as is
    assert telegram.message_time({"date_unixtime": "1682928000"}) == "2023-05-01T08:00:00+00:00"
    odd = {"date": "2023-05-01T10:00:07", "date_unixtime": "1682928000"}  # not a whole-quarter-hour offset
    assert telegram.message_time(odd) == "2023-05-01T08:00:00+00:00"
    assert telegram.message_time({}) == ""


def test_telegram_full_export_reads_all_chats_and_knows_the_user() -> None:
    document = telegram.read_telegram(*fixture("telegram_full_export.json"))
    assert document.title == "Telegram export"
    assert_valid_messages(document)  # message ids repeat across chats, the document's ids do not
    conversations = [m.conversation for m in document.messages]
    assert sorted(set(conversations)) == ["Telegram: Family 👨‍👩‍👧", "Telegram: Old book club", "Telegram: Ólafur"]
    messages = by_id(document)
    assert messages["tg-9988776655-2"].text == "مرحبا بالجميع! 👋"
    assert messages["tg-9988776655-2"].time == "2024-01-20T18:01:00+01:00"
    assert messages["tg-9988776655-3"].text == "@muhammad welcome!"
    assert messages["tg-9988776655-4"].speaker == "Deleted Account"
    assert messages["tg-1122334455-1"].text == "I'm leaving the club, bye 📚"  # from left_chats
    # personal_information.user_id 222 is the user: from_id "user222"
    assert [m.from_user for m in document.messages if m.speaker == "Zoë"] == [True] * 5
    assert {m.from_user for m in document.messages if m.speaker != "Zoë"} == {False}


def test_telegram_flatten_text() -> None:
    assert telegram.flatten_text("plain") == "plain"
    assert telegram.flatten_text(["a ", {"type": "bold", "text": "b"}, {"type": "custom"}, 3]) == "a b"
    assert telegram.flatten_text(None) == ""


def test_telegram_zip_and_wrong_shape(tmp_path: Path) -> None:
    _, data = fixture("telegram_result.json")
    document = telegram.read_telegram(tmp_path / "export.zip", make_zip({"ChatExport/result.json": data}))
    assert len(document.messages) == 6
    with pytest.raises(InputError, match="not a Telegram export"):
        telegram.read_telegram(tmp_path / "result.json", b'{"messages": 3}')


# --- sniff -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chatgpt_conversations.json", "chatgpt"),
        ("chatgpt_export.zip", "chatgpt"),
        ("claude_conversations.json", "claude"),
        ("WhatsApp Chat with Zoe.txt", "whatsapp"),
        ("WhatsApp Chat with Trip Planning.txt", "whatsapp"),
        ("whatsapp_ios.txt", "whatsapp"),
        ("WhatsApp Chat - Noa.zip", "whatsapp"),
        ("telegram_result.json", "telegram"),
        ("telegram_full_export.json", "telegram"),
    ],
)
def test_sniff_recognises_every_fixture(name: str, expected: str) -> None:
    path, data = fixture(name)
    found = sniff(path, data)
    assert found is not None
    kind, reader = found
    assert kind == expected
    document = reader(path, data)
    assert document.format == expected
    assert_valid_messages(document)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chatgpt_conversations.json", "chatgpt"),
        ("claude_conversations.json", "claude"),
        ("telegram_result.json", "telegram"),
        ("whatsapp_ios.txt", "whatsapp"),
        ("chatgpt_export.zip", "chatgpt"),
        ("WhatsApp Chat - Noa.zip", "whatsapp"),
    ],
)
def test_sniff_looks_at_content_not_names(name: str, expected: str, tmp_path: Path) -> None:
    _, data = fixture(name)
    renamed = tmp_path / "download"  # no suffix at all
    found = sniff(renamed, data)
    assert found is not None and found[0] == expected
    assert found[1](renamed, data).messages


def test_sniff_reader_reuses_the_parsed_json_and_still_reads_other_bytes(tmp_path: Path) -> None:
    path, data = fixture("chatgpt_conversations.json")
    found = sniff(path, data)
    assert found is not None
    _, reader = found
    assert reader(path, data).messages == chatgpt.read_chatgpt(path, data).messages
    other = json.dumps([_linear_conversation("new")]).encode()
    assert texts(reader(tmp_path / "c.json", other)) == ["question", "new answer"]


def test_sniff_zip_reader_reuses_the_parsed_json(tmp_path: Path) -> None:
    path, data = fixture("chatgpt_export.zip")
    found = sniff(path, data)
    assert found is not None
    assert found[1](path, data).messages == chatgpt.read_chatgpt(path, data).messages


def test_whatsapp_rtl_marks_before_the_header(tmp_path: Path) -> None:
    data = "\u200f31/12/2023, 21:41 - محمد: مرحبا\n\u200f31/12/2023, 21:42 - Zoë: hi\n".encode()
    found = sniff(tmp_path / "chat.txt", data)
    assert found is not None and found[0] == "whatsapp"
    assert [(m.speaker, m.text) for m in found[1](tmp_path / "chat.txt", data).messages] == [
        ("محمد", "مرحبا"),
        ("Zoë", "hi"),
    ]


def test_sniff_leaves_other_files_alone(tmp_path: Path) -> None:
    for example in (
        "notes/packing-list.txt",
        "notes/recipes.md",
        "chats/family.jsonl",
        "documents/race-registration.pdf",
    ):
        path = EXAMPLES / example
        assert sniff(path, path.read_bytes()) is None, example


@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2, 3]",
        b'[{"title": "a list of something else", "items": []}]',
        b"[]",
        b'{"name": "package", "version": "1.0"}',
        b'{"conversations": [{"title": "no messages here"}]}',
        b'{"id": 1, "messages": []}',
        b'{"id": 1, "type": "log", "messages": [{"text": "not a Telegram message"}]}',
        b"just a note\nwith two lines\n",
        b"",
    ],
)
def test_sniff_other_content_is_none(content: bytes, tmp_path: Path) -> None:
    assert sniff(tmp_path / "data.json", content) is None
    assert sniff(tmp_path / "data.txt", content) is None


def test_sniff_zip_of_other_things_is_none(tmp_path: Path) -> None:
    archive = make_zip({"photo.jpg": b"\xff\xd8\xff\xd9", "notes.txt": "hello\n", "data.json": "[1]"})
    assert sniff(tmp_path / "stuff.zip", archive) is None


def test_sniff_corrupt_zip_is_an_input_error(tmp_path: Path) -> None:
    _, data = fixture("chatgpt_export.zip")
    with pytest.raises(InputError, match=r"^export\.zip: not a valid zip archive") as info:
        sniff(tmp_path / "export.zip", data[: len(data) // 2])
    assert info.value.hint
    with pytest.raises(InputError, match="not a valid zip archive"):
        sniff(tmp_path / "export.zip", b"this is not a zip")


def test_sniff_malformed_json_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^conversations\.json: not valid JSON") as info:
        sniff(tmp_path / "conversations.json", b'[{"mapping": {"a": ')
    assert info.value.hint
    # without the .json suffix, content that is not JSON is simply not an export
    assert sniff(tmp_path / "conversations.txt", b'[{"mapping": {"a": ') is None


def test_sniff_malformed_json_inside_the_zip_is_an_input_error(tmp_path: Path) -> None:
    archive = make_zip({"conversations.json": '[{"mapping": '})
    with pytest.raises(InputError, match=r"^export\.zip: conversations\.json: not valid JSON"):
        sniff(tmp_path / "export.zip", archive)
