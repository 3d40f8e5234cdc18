"""Numbered migrations of the SQLite side of memory, applied in order when an index is opened.

Each step runs in its own transaction and records its number in meta.schema_version, so a crash leaves the
memory at the last finished step and another process opening it meanwhile does nothing twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pllm_cli.memory.records import MAIL_FORMATS, Mail, Turn
from pllm_cli.memory.timeframes import wall_clock

FTS_TABLE = "USING fts5(id UNINDEXED, text, tokenize = 'porter unicode61 remove_diacritics 2')"


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(chunks)")}


def add_time_columns(db: sqlite3.Connection) -> None:
    """1: wall-clock start_at/end_at columns, filled from each chunk's metadata (period filters)."""
    if "start_at" in _columns(db):  # made by the current schema already
        return
    for column in ("start_at", "end_at"):
        db.execute(f"ALTER TABLE chunks ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    for chunk_id, meta in db.execute("SELECT id, meta FROM chunks").fetchall():
        data = json.loads(meta)
        start = wall_clock(data.get("start_time", ""))
        end = max(start, wall_clock(data.get("end_time", "")))
        db.execute("UPDATE chunks SET start_at = ?, end_at = ? WHERE id = ?", (start, end, chunk_id))


def rebuild_fts(db: sqlite3.Connection) -> None:
    """chunks_fts again, each row under its chunk's rowid; rows of chunks that are gone are left out."""
    db.execute("DROP TABLE IF EXISTS chunks_fts_aligned")
    db.execute(f"CREATE VIRTUAL TABLE chunks_fts_aligned {FTS_TABLE}")
    db.execute(
        "INSERT OR REPLACE INTO chunks_fts_aligned (rowid, id, text)"
        " SELECT c.rowid, f.id, f.text FROM chunks_fts f JOIN chunks c ON c.id = f.id"
    )
    db.execute("DROP TABLE chunks_fts")
    db.execute("ALTER TABLE chunks_fts_aligned RENAME TO chunks_fts")


# --- 3: structured chat turns and e-mail headers ---------------------------------------------------------
# Until schema 3 a chat chunk was stored as "[time] speaker: text" lines and an e-mail's headers inside its
# heading. This is the one place that still reads that text, once, to turn it into fields. A message line
# that looks like a turn ("PS: I moved") is told apart by its speaker, who is not among the chunk's speakers.
_OLD_CHAT_LINE = re.compile(r"^(?:\[(?P<time>[^\]\n]*)\] )?(?P<speaker>[^:\n\[]{1,80}): (?P<text>.*)$")
_OLD_MAIL_HEADING = re.compile(
    r"^Email from (?P<sender>.*?) to (?P<to>.*?), (?P<date>(?:\w{3}, )?\d{1,2} \w{3} \d{4} [\d:]+(?: [+-]\d{4})?"
    r"(?: \([^)]*\))?)?: (?P<subject>.*)$",
    re.DOTALL,
)


def _iso_stamp(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).isoformat(timespec="minutes") if stamp else ""
    except ValueError:
        return ""


def old_turns(text: str, speakers: list[str], ids: list[str], own: set[str]) -> tuple[Turn, ...]:
    """The turns of a chat text written before schema 3 (also its one-turn context, with no ids)."""
    lines = text.splitlines()
    matches = [_OLD_CHAT_LINE.match(line) for line in lines]
    stamped = any(m is not None and m["time"] is not None for m in matches)
    known = {s.strip().casefold() for s in speakers}
    raw: list[list[str]] = []  # time, speaker, text
    for line, match in zip(lines, matches, strict=True):
        starts = match is not None and (match["time"] is not None) == stamped
        if starts and known and match is not None and match["speaker"].strip().casefold() not in known:
            starts = False
        if starts and match is not None:
            raw.append([match["time"] or "", match["speaker"].strip(), match["text"]])
        elif raw:
            raw[-1][2] += "\n" + line
        else:
            raw.append(["", speakers[0] if speakers else "", line])
    message_ids = ids if len(ids) == len(raw) else [""] * len(raw)
    return tuple(
        Turn(message_id, speaker, body.strip(), _iso_stamp(time), message_id in own and bool(message_id))
        for (time, speaker, body), message_id in zip(raw, message_ids, strict=True)
    )


def _old_mail(heading: str, start_time: str, ids: list[str]) -> Mail:
    match = _OLD_MAIL_HEADING.match(heading)
    if match is None:  # at least the sender, which is all forgetting needs
        sender = heading.removeprefix("Email from ").split(" to ", 1)[0]
        return Mail(sender=sender, date=start_time, subject=heading, message_id=ids[0] if ids else "")
    to = tuple(part.strip() for part in match["to"].split(",") if part.strip())
    return Mail(match["sender"], to, (), start_time, match["subject"], ids[0] if ids else "")


def _structured(text: str, data: dict[str, Any], source_format: str) -> tuple[str, dict[str, Any]]:
    """(the body column, the new meta) of one chunk written before schema 3."""
    heading = str(data.get("heading", ""))
    ids = [str(i) for i in data.get("message_ids", [])]
    meta: dict[str, Any] = {
        "kind": data.get("kind", "text"),
        "section": "",
        "mail": None,
        "conversation": data.get("conversation", ""),
        "turns": [],
        "context": [],
        "start_time": data.get("start_time", ""),
        "end_time": data.get("end_time", ""),
    }
    if meta["kind"] == "chat":
        speakers = [str(s) for s in data.get("speakers", [])]
        own = {str(i) for i in data.get("user_message_ids", [])}
        meta["turns"] = [t.to_dict() for t in old_turns(text, speakers, ids, own)]
        context = str(data.get("context", ""))
        meta["context"] = [t.to_dict() for t in old_turns(context, [], [], set())] if context else []
        return "", meta
    body = text.removeprefix(f"{heading}\n\n") if heading else text
    if source_format in MAIL_FORMATS and heading.startswith("Email from "):
        meta["mail"] = _old_mail(heading, str(data.get("start_time", "")), ids).to_dict()
    else:
        meta["section"] = heading
    return body, meta


def structure_records(db: sqlite3.Connection) -> None:
    """3: chat turns and e-mail headers as fields. The next ingest also re-reads every file (the chunking
    version changed), so what a file still holds is cut again from the file itself."""
    formats = dict(db.execute("SELECT source, format FROM sources").fetchall())
    rows = db.execute("SELECT id, source, text, meta FROM chunks").fetchall()
    for chunk_id, source, text, meta in rows:
        data = json.loads(meta)
        if "turns" in data:  # written by a newer pllm meanwhile
            continue
        body, new_meta = _structured(text, data, formats.get(source, ""))
        db.execute("UPDATE chunks SET text = ?, meta = ? WHERE id = ?", (body, json.dumps(new_meta), chunk_id))


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    add_time_columns,  # 1
    rebuild_fts,  # 2: each chunks_fts row has its chunk's rowid, so a period filter is a rowid test
    structure_records,  # 3
)
SCHEMA_VERSION = len(MIGRATIONS)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite3.Connection) -> list[int]:
    """Bring an index up to SCHEMA_VERSION (a new, empty one passes through every step in no time); a newer
    version is left as it is. Returns the steps applied."""
    applied = []
    for number, step in enumerate(MIGRATIONS, start=1):
        if _version(db) >= number:
            continue
        with _transaction(db):
            if _version(db) >= number:  # another process did it meanwhile
                continue
            step(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(number),))
        applied.append(number)
    return applied
