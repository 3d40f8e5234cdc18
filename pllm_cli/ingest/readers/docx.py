"""Word documents (.docx): the main text of word/document.xml, read with the standard library only.

Paragraphs keep their runs' text (tabs and line breaks included); heading styles become markdown headings so
that `split_markdown` makes the sections; tables become one line per row, cells joined by " | "; numbered and
bulleted paragraphs become "- " items. Tracked deletions, field codes and the fallback copy of text boxes are
left out; headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

from pllm_cli.errors import InputError
from pllm_cli.ingest.document import Document
from pllm_cli.ingest.readers.markdown import split_markdown

# WordprocessingML in its transitional (what Word writes) and strict flavours
_W_NAMESPACES = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_PART_BYTES = 256 * 1024 * 1024  # an XML part larger than this uncompressed is a zip bomb, not a letter

# paragraph content that is not visible text: properties, deleted or moved-away text, field codes, and the
# fallback copy of a text box (the text is read once, from mc:Choice)
_SKIPPED = frozenset({"pPr", "rPr", "del", "moveFrom", "delText", "instrText", "delInstrText", "footnoteReference"})
# wrappers around body content (content controls, custom XML) that hold paragraphs and tables
_WRAPPERS = frozenset({"sdt", "sdtContent", "customXml", "smartTag", "ins", "moveTo"})

_HEADING_STYLE_ID = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_FENCE_LIKE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class _Style:
    heading: int = 0  # 1-6 for a heading style (Title counts as 1), else 0
    is_list: bool = False


def _local(tag: str) -> str:
    """The local name of a WordprocessingML element; "" for other namespaces (DrawingML, VML, ...)."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return name if namespace in _W_NAMESPACES else ""
    return tag


def _attr(element: ET.Element | None, name: str) -> str:
    """A w:-namespaced attribute (w:val, w:type, ...) whichever flavour of the namespace it uses."""
    if element is None:
        return ""
    for namespace in _W_NAMESPACES:
        value = element.get(f"{{{namespace}}}{name}")
        if value is not None:
            return value
    return ""


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


# --- the package ------------------------------------------------------------------------------------


def _open_package(path: Path, data: bytes) -> zipfile.ZipFile:
    if data.startswith(_OLE_MAGIC):
        if "EncryptionInfo".encode("utf-16-le") in data:
            raise InputError(
                f"{path.name}: the document is password-protected (encrypted)",
                hint="open it in Word, remove the password (File > Info > Protect Document) and save a copy",
            )
        raise InputError(
            f"{path.name}: an old binary Word (.doc) file, not .docx",
            hint="open it in Word or LibreOffice and save it as .docx",
        )
    if not data.startswith(b"PK"):
        raise InputError(f"{path.name}: not a .docx file (not a zip archive)", hint="check the file or its extension")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError(
            f"{path.name}: not a .docx file (a damaged zip archive)", hint="is the file complete? save it again"
        ) from None


def _read_part(path: Path, package: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = package.getinfo(name)
    except KeyError:
        return None
    if info.file_size > _MAX_PART_BYTES:
        raise InputError(f"{path.name}: {name} is implausibly large", hint="is it really a Word document?")
    try:
        return package.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(
            f"{path.name}: cannot unpack {name} ({exc})", hint="is the file complete? save it again"
        ) from None


def _parse_xml(path: Path, name: str, data: bytes) -> ET.Element:
    if b"<!DOCTYPE" in data[:4096]:  # OOXML forbids DTDs; refusing them rules out entity expansion attacks
        raise InputError(f"{path.name}: {name} has a DTD, which Word never writes", hint="is it really a .docx?")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{path.name}: {name} is not valid XML ({exc})", hint="is the file complete?") from None


def _main_part_name(package: zipfile.ZipFile, path: Path) -> str:
    """word/document.xml, or wherever the package relationships say the main document is."""
    rels = _read_part(path, package, "_rels/.rels")
    if rels:
        try:
            root = ET.fromstring(rels) if b"<!DOCTYPE" not in rels[:4096] else None
        except ET.ParseError:
            root = None
        for rel in root.iter(_REL) if root is not None else ():
            if rel.get("Type", "").endswith("/officeDocument") and rel.get("TargetMode") != "External":
                target = rel.get("Target", "").lstrip("/")
                if target and target in package.namelist():
                    return str(PurePosixPath(target))
    return "word/document.xml"


def _core_title(path: Path, package: zipfile.ZipFile) -> str:
    data = _read_part(path, package, "docProps/core.xml")
    if not data or b"<!DOCTYPE" in data[:4096]:
        return ""
    try:
        element = ET.fromstring(data).find(_DC_TITLE)
    except ET.ParseError:  # metadata is optional: a broken core.xml must not lose the document
        return ""
    return _one_line(element.text or "") if element is not None else ""


def _styles(path: Path, package: zipfile.ZipFile, main: str) -> dict[str, _Style]:
    """Paragraph styles by id. Built-in names are English in styles.xml whatever the language of Word
    ("heading 1" for the German "Überschrift1"), so headings are found by name as well as by id."""
    name = str(PurePosixPath(main).parent / "styles.xml")
    data = _read_part(path, package, name)
    if not data or b"<!DOCTYPE" in data[:4096]:
        return {}
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}
    styles: dict[str, _Style] = {}
    for style in root:
        if _local(style.tag) != "style" or _attr(style, "type") not in ("paragraph", ""):
            continue
        style_id = _attr(style, "styleId")
        style_name = _attr(_child(style, "name"), "val")
        properties = _child(style, "pPr")
        heading = _heading_level(style_id) or _heading_level(style_name) or _outline_level(properties)
        styles[style_id] = _Style(heading=heading, is_list=_child(properties, "numPr") is not None)
    return styles


def _heading_level(style: str) -> int:
    if style.lower() == "title":
        return 1
    match = _HEADING_STYLE_ID.match(style)
    level = int(match.group(1)) if match else 0
    return level if level <= 6 else 0


def _outline_level(properties: ET.Element | None) -> int:
    value = _attr(_child(properties, "outlineLvl"), "val")
    return int(value) + 1 if value.isdigit() and int(value) < 6 else 0


# --- the body ---------------------------------------------------------------------------------------


def _run_text(element: ET.Element, out: list[str]) -> None:
    """Append the visible text under `element` (a paragraph or anything inside one) to `out`."""
    for child in element:
        tag = child.tag
        if tag.startswith(_MC):
            if tag == _MC + "AlternateContent":
                choice = next((c for c in child if c.tag == _MC + "Choice"), None)
                if choice is not None:
                    _run_text(choice, out)
            continue
        name = _local(tag)
        if name == "t":
            out.append(child.text or "")
        elif name in ("tab", "ptab"):
            out.append("\t")
        elif name in ("br", "cr"):
            out.append("\n")
        elif name == "noBreakHyphen":
            out.append("-")
        elif name == "p":  # a paragraph of a text box inside this paragraph
            out.append("\n")
            _run_text(child, out)
            out.append("\n")
        elif name not in _SKIPPED:
            _run_text(child, out)


def _paragraph_text(paragraph: ET.Element) -> str:
    out: list[str] = []
    _run_text(paragraph, out)
    return "".join(out).replace("\xa0", " ")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _children(element: ET.Element, wanted: tuple[str, ...]) -> Iterator[ET.Element]:
    """The children named `wanted`, looking through content controls and other wrappers."""
    for child in element:
        name = _local(child.tag)
        if name in wanted:
            yield child
        elif name in _WRAPPERS:
            yield from _children(child, wanted)


def _body_items(element: ET.Element) -> Iterator[ET.Element]:
    """The paragraphs and tables of a body or table cell."""
    return _children(element, ("p", "tbl"))


def _cells(row: ET.Element) -> Iterator[ET.Element]:
    return _children(row, ("tc",))


def _rows(table: ET.Element) -> Iterator[ET.Element]:
    return _children(table, ("tr",))


def _cell_text(cell: ET.Element) -> str:
    parts: list[str] = []
    for item in _body_items(cell):
        if _local(item.tag) == "p":
            parts.append(_one_line(_paragraph_text(item)))
        else:  # a nested table, flattened into the cell
            parts.extend(_one_line(row) for row in _table_rows(item))
    return " ".join(part for part in parts if part)


def _table_rows(table: ET.Element) -> list[str]:
    rows = []
    for row in _rows(table):
        cells = [_cell_text(cell) for cell in _cells(row)]
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


def _protect(text: str) -> str:
    """Keep body text from reading as markdown structure: a "# " line is not a heading, a ``` line no fence."""
    lines = []
    for line in text.split("\n"):
        if line.startswith("#"):
            line = " " + line
        elif _FENCE_LIKE.match(line):
            line = "\u200b" + line  # a zero-width space: the line looks the same but opens no code block
        lines.append(line)
    return "\n".join(lines)


def _heading_line(level: int, text: str) -> str:
    # split_markdown drops a closing run of "#": "C#" would lose its "#" without one more to drop
    return "#" * level + " " + text + (" #" if text.endswith("#") else "")


@dataclass
class _Block:
    kind: str  # "heading", "text", "item" or "row"
    text: str
    level: int = 0


def _blocks(body: ET.Element, styles: dict[str, _Style]) -> Iterator[_Block]:
    for item in _body_items(body):
        if _local(item.tag) == "tbl":
            for row in _table_rows(item):
                yield _Block("row", _protect(row))
            yield _Block("text", "")  # a table ends like a paragraph
            continue
        properties = _child(item, "pPr")
        style_id = _attr(_child(properties, "pStyle"), "val")
        style = styles.get(style_id)
        text = _paragraph_text(item)
        if not text.strip():
            continue
        level = _outline_level(properties) or (style.heading if style else _heading_level(style_id))
        if level:
            yield _Block("heading", _one_line(text), level)
            continue
        numbering = _child(properties, "numPr")
        numbered = numbering is not None and _attr(_child(numbering, "numId"), "val") != "0"
        if numbered or (numbering is None and style is not None and style.is_list):
            depth = _attr(_child(numbering, "ilvl"), "val")
            indent = "  " * min(int(depth), 8) if depth.isdigit() else ""
            yield _Block("item", indent + "- " + _protect(text.strip()).replace("\n", "\n" + indent + "  "))
        else:
            yield _Block("text", _protect(text.strip("\n")))


def _markdown(blocks: list[_Block], title: str) -> str:
    out = [_heading_line(1, title)]
    previous = "heading"
    for block in blocks:
        if not block.text:
            previous = "text"
            continue
        joined = block.kind == previous and block.kind in ("item", "row")  # list items and rows stay together
        out.append(
            ("\n" if joined else "\n\n") + (_heading_line(block.level, block.text) if block.level else block.text)
        )
        previous = block.kind
    return "".join(out) + "\n"


def read_docx(path: Path, data: bytes) -> Document:
    with _open_package(path, data) as package:
        main = _main_part_name(package, path)
        document_xml = _read_part(path, package, main)
        if document_xml is None:
            raise InputError(
                f"{path.name}: not a Word document (no {main} inside)",
                hint="is it another format (.xlsx, .pptx, .odt) with a .docx name?",
            )
        root = _parse_xml(path, main, document_xml)
        body = _child(root, "body")
        if body is None:
            raise InputError(f"{path.name}: {main} has no document body", hint="is the file complete?")
        styles = _styles(path, package, main)
        core_title = _core_title(path, package)
    blocks = list(_blocks(body, styles))
    first_heading = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), "")
    title = core_title or first_heading or path.stem
    _, sections = split_markdown(_markdown(blocks, title), title)
    return Document(source=str(path), format="docx", title=title, sections=sections)
