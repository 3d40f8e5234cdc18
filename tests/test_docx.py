"""The .docx reader: packages are built here part by part, the way Word lays them out."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from pllm_cli.errors import ExitCode, InputError
from pllm_cli.ingest.readers.docx import read_docx
from pllm_cli.ingest.readers.markdown import split_markdown

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
<Override PartName="/word/styles.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>
</Types>"""

PACKAGE_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
 Target="docProps/core.xml"/>
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
 Target="{main}"/>
</Relationships>"""

# the namespace declarations Word 2016+ puts on every document.xml
DOCUMENT_OPEN = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:wpc="http://schemas.microsoft.com/office/word/2010/wordprocessingCanvas"
 xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"
 xmlns:o="urn:schemas-microsoft-com:office:office"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"
 xmlns:v="urn:schemas-microsoft-com:vml"
 xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
 xmlns:w10="urn:schemas-microsoft-com:office:word"
 xmlns:w="{W}"
 xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml"
 xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"
 xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"
 mc:Ignorable="w14 wp14"><w:body>"""
DOCUMENT_CLOSE = """<w:sectPr w:rsidR="00A1"><w:pgSz w:w="11906" w:h="16838"/>
<w:pgMar w:top="1440" w:right="1440" w:bottom="1440" w:left="1440"/></w:sectPr></w:body></w:document>"""

STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="{W}">
<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/>
 <w:pPr><w:keepNext/><w:outlineLvl w:val="0"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/>
 <w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
<w:style w:type="paragraph" w:styleId="ListBullet"><w:name w:val="List Bullet"/>
 <w:pPr><w:numPr><w:numId w:val="3"/></w:numPr></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="ListParagraph"><w:name w:val="List Paragraph"/></w:style>
<w:style w:type="character" w:styleId="Hyperlink"><w:name w:val="Hyperlink"/></w:style>
</w:styles>"""


def core_xml(title: str | None) -> str:
    title_element = f"<dc:title>{title}</dc:title>" if title is not None else ""
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{title_element}<dc:creator>Elin Berg</dc:creator>
<dcterms:created xsi:type="dcterms:W3CDTF">2026-02-03T09:12:00Z</dcterms:created></cp:coreProperties>"""


def make_docx(
    body: str,
    title: str | None = None,
    styles: str | None = STYLES,
    main: str = "word/document.xml",
    document: str | None = None,
) -> bytes:
    """A .docx package: [Content_Types].xml, _rels/.rels, the main document, its styles and core properties."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES)
        package.writestr("_rels/.rels", PACKAGE_RELS.replace("{main}", main))
        package.writestr(main, document if document is not None else DOCUMENT_OPEN + body + DOCUMENT_CLOSE)
        if styles is not None:
            package.writestr(main.rsplit("/", 1)[0] + "/styles.xml", styles)
        package.writestr("docProps/core.xml", core_xml(title))
    return buffer.getvalue()


def para(text: str, style: str | None = None, extra_ppr: str = "") -> str:
    style_xml = f'<w:pStyle w:val="{style}"/>' if style else ""
    ppr = f"<w:pPr>{style_xml}{extra_ppr}</w:pPr>" if style_xml or extra_ppr else ""
    return f'<w:p w:rsidR="00B2" w:rsidRDefault="00B2">{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def item(text: str, level: int = 0, num_id: int = 1) -> str:
    numbering = f'<w:numPr><w:ilvl w:val="{level}"/><w:numId w:val="{num_id}"/></w:numPr>'
    return para(text, "ListParagraph", numbering)


def cell(text: str, extra: str = "") -> str:
    return f'<w:tc><w:tcPr><w:tcW w:w="4513" w:type="dxa"/>{extra}</w:tcPr>{para(text)}</w:tc>'


TRIP_BODY = (
    para("Resa till Göteborg 🚆", "Title")
    # runs split mid-word, proofing marks and bookmarks between them, a tab and a line break
    + '<w:p><w:r><w:rPr><w:b/></w:rPr><w:t>Vi å</w:t></w:r><w:proofErr w:type="spellStart"/>'
    '<w:bookmarkStart w:id="0" w:name="_GoBack"/><w:r><w:t xml:space="preserve">ker på fredag. </w:t></w:r>'
    '<w:bookmarkEnd w:id="0"/><w:proofErr w:type="spellEnd"/><w:r><w:t>Tid:</w:t></w:r><w:r><w:tab/>'
    "<w:t>07:40</w:t></w:r><w:r><w:br/><w:t>Spår 3</w:t></w:r></w:p>"
    + para("Packlista", "Heading1")
    + item("Tandborste")
    + item("Handduk 🏖️")
    + item("Blå handduk", level=1)
    + para("Budget", "Heading2")
    + '<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="0" w:type="auto"/></w:tblPr>'
    '<w:tblGrid><w:gridCol w:w="4513"/><w:gridCol w:w="4513"/></w:tblGrid>'
    "<w:tr>" + cell("Post") + cell("Kostnad") + "</w:tr>"
    "<w:tr>" + cell("Tåg") + cell("1 800 kr") + "</w:tr>"
    "<w:tr>" + cell("Hotell") + cell("2 400 kr") + "</w:tr>"
    "</w:tbl>"
    + para("Arabiska fraser", "Heading1")
    + "<w:p><w:pPr><w:bidi/></w:pPr><w:r><w:rPr><w:rtl/></w:rPr><w:t>مرحبا بالعالم</w:t></w:r></w:p>"
    + '<w:p><w:hyperlink r:id="rId9" w:history="1"><w:r><w:rPr><w:rStyle w:val="Hyperlink"/></w:rPr>'
    '<w:t>Västtrafik</w:t></w:r></w:hyperlink><w:r><w:t xml:space="preserve"> har tidtabellen.</w:t></w:r></w:p>'
)


def test_docx_headings_lists_tables_and_unicode(tmp_path: Path) -> None:
    document = read_docx(tmp_path / "trip.docx", make_docx(TRIP_BODY))
    assert document.format == "docx"
    assert document.source == str(tmp_path / "trip.docx")
    assert document.title == "Resa till Göteborg 🚆"  # no dc:title: the Title paragraph
    by_heading = {s.heading: s.text for s in document.sections}
    assert list(by_heading) == [
        "Resa till Göteborg 🚆",
        "Resa till Göteborg 🚆 > Packlista",
        "Resa till Göteborg 🚆 > Packlista > Budget",
        "Resa till Göteborg 🚆 > Arabiska fraser",
    ]
    assert by_heading["Resa till Göteborg 🚆"] == "Vi åker på fredag. Tid:\t07:40\nSpår 3"
    assert by_heading["Resa till Göteborg 🚆 > Packlista"] == "- Tandborste\n- Handduk 🏖️\n  - Blå handduk"
    assert by_heading["Resa till Göteborg 🚆 > Packlista > Budget"] == (
        "Post | Kostnad\nTåg | 1 800 kr\nHotell | 2 400 kr"
    )
    assert by_heading["Resa till Göteborg 🚆 > Arabiska fraser"] == "مرحبا بالعالم\n\nVästtrafik har tidtabellen."


def test_docx_title_prefers_core_properties(tmp_path: Path) -> None:
    body = para("Inledning", "Heading1") + para("Text.")
    document = read_docx(tmp_path / "rapport.docx", make_docx(body, title="Kvartalsrapport Q1"))
    assert document.title == "Kvartalsrapport Q1"
    assert [s.heading for s in document.sections] == ["Kvartalsrapport Q1 > Inledning"]


def test_docx_title_falls_back_to_first_heading_then_file_stem(tmp_path: Path) -> None:
    body = para("Före rubriken.") + para("Mötesanteckningar", "Heading1") + para("Punkt ett.")
    document = read_docx(tmp_path / "m.docx", make_docx(body, title="  "))  # a blank dc:title counts as none
    assert document.title == "Mötesanteckningar"
    assert [s.heading for s in document.sections] == ["Mötesanteckningar", "Mötesanteckningar"]
    assert [s.text for s in document.sections] == ["Före rubriken.", "Punkt ett."]

    plain = read_docx(tmp_path / "lista.docx", make_docx(para("Bara text."), styles=None))
    assert plain.title == "lista"
    assert [(s.heading, s.text) for s in plain.sections] == [("lista", "Bara text.")]


def test_docx_headings_found_by_style_name_outline_level_or_id(tmp_path: Path) -> None:
    body = (
        para("Kapitel", "berschrift1")  # German Word: the id loses the Ü, the name stays "heading 1"
        + para("Ett.")
        + para("Avsnitt", None, '<w:outlineLvl w:val="1"/>')  # a direct outline level
        + para("Två.")
        + para("Detalj", "Heading3")  # not in styles.xml: recognised by its id
        + para("Tre.")
        + para("Nivå sju", "Heading7")  # deeper than markdown goes: body text
    )
    document = read_docx(tmp_path / "h.docx", make_docx(body, title="Bok"))
    assert [(s.heading, s.text) for s in document.sections] == [
        ("Bok > Kapitel", "Ett."),
        ("Bok > Kapitel > Avsnitt", "Två."),
        ("Bok > Kapitel > Avsnitt > Detalj", "Tre.\n\nNivå sju"),
    ]


def test_docx_lists_by_style_and_numbering_off(tmp_path: Path) -> None:
    body = (
        para("Mjölk", "ListBullet")  # numbering comes from the style
        + para("Ägg", "ListBullet")
        + para("Inte en punkt", "ListParagraph")  # List Paragraph without numbering is ordinary text
        + para("Inte heller", "ListBullet", '<w:numPr><w:numId w:val="0"/></w:numPr>')  # numbering switched off
    )
    document = read_docx(tmp_path / "handla.docx", make_docx(body))
    assert document.sections[0].text == "- Mjölk\n- Ägg\n\nInte en punkt\n\nInte heller"


def test_docx_skips_deleted_text_field_codes_and_textbox_fallback(tmp_path: Path) -> None:
    textbox = (
        '<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic>'
        '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp>'
        "<wps:txbx><w:txbxContent><w:p><w:r><w:t>Ruta</w:t></w:r></w:p></w:txbxContent></wps:txbx>"
        "</wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
        "<mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent><w:p><w:r><w:t>Ruta</w:t></w:r></w:p>"
        "</w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
    )
    body = (
        '<w:p><w:r><w:t xml:space="preserve">Mötet är </w:t></w:r>'
        '<w:del w:id="1" w:author="Elin"><w:r><w:delText>tisdag</w:delText></w:r></w:del>'
        '<w:ins w:id="2" w:author="Elin"><w:r><w:t>onsdag</w:t></w:r></w:ins>'
        '<w:r><w:t xml:space="preserve">, sidan </w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>3</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t>.</w:t></w:r></w:p>'
        + textbox
        + '<w:sdt><w:sdtPr><w:alias w:val="Datum"/></w:sdtPr><w:sdtContent>'
        + para("Inne i en innehållskontroll")
        + "</w:sdtContent></w:sdt>"
    )
    document = read_docx(tmp_path / "spår.docx", make_docx(body))
    assert document.sections[0].text == "Mötet är onsdag, sidan 3.\n\nRuta\n\nInne i en innehållskontroll"


def test_docx_text_that_looks_like_markdown_stays_text(tmp_path: Path) -> None:
    body = para("Kod", "Heading1") + para("# inte en rubrik") + para("```") + para("C#", "Heading2") + para("Språket.")
    document = read_docx(tmp_path / "kod.docx", make_docx(body))
    by_heading = {s.heading: s.text for s in document.sections}
    assert by_heading["Kod"] == "# inte en rubrik\n\n\u200b```"
    assert by_heading["Kod > C#"] == "Språket."


def test_docx_nested_table_and_merged_cells(tmp_path: Path) -> None:
    inner = "<w:tbl><w:tr>" + cell("a") + cell("b") + "</w:tr></w:tbl>"
    body = (
        "<w:tbl>"
        "<w:tr>" + cell("Dag", '<w:vMerge w:val="restart"/>') + cell("Plan") + "</w:tr>"
        "<w:tr>" + cell("", "<w:vMerge/>") + f"<w:tc>{para('Lista:')}{inner}</w:tc>" + "</w:tr>"
        "<w:tr>" + cell("") + cell("") + "</w:tr>"  # an empty row is dropped
        "</w:tbl>"
        "<w:tbl><w:tr>" + cell("Andra") + cell("tabellen") + "</w:tr></w:tbl>"
    )
    document = read_docx(tmp_path / "t.docx", make_docx(body))
    assert document.sections[0].text == "Dag | Plan\n | Lista: a | b\n\nAndra | tabellen"


def test_docx_empty_document_has_no_sections(tmp_path: Path) -> None:
    document = read_docx(tmp_path / "tom.docx", make_docx(para("") + para("   ")))
    assert document.is_empty


def test_docx_strict_namespace_and_main_part_elsewhere(tmp_path: Path) -> None:
    strict = "http://purl.oclc.org/ooxml/wordprocessingml/main"
    document_xml = (
        f'<w:document xmlns:w="{strict}"><w:body>'
        '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Strikt</w:t></w:r></w:p>'
        "<w:p><w:r><w:t>Innehåll.</w:t></w:r></w:p></w:body></w:document>"
    )
    data = make_docx("", main="word/document2.xml", document=document_xml, styles=None)
    document = read_docx(tmp_path / "s.docx", data)
    assert document.title == "Strikt"
    assert [(s.heading, s.text) for s in document.sections] == [("Strikt", "Innehåll.")]


def test_docx_sections_match_split_markdown(tmp_path: Path) -> None:
    """The reader is a front end to split_markdown: the same text written as markdown gives the same sections."""
    body = para("Anteckningar", "Heading1") + para("Ett.") + para("Mer", "Heading2") + para("Två.")
    document = read_docx(tmp_path / "a.docx", make_docx(body))
    title, sections = split_markdown("# Anteckningar\n\nEtt.\n\n## Mer\n\nTvå.\n", "a")
    assert (document.title, document.sections) == (title, sections)


# --- what is not a Word document --------------------------------------------------------------------


def _zip(parts: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, text in parts.items():
            package.writestr(name, text)
    return buffer.getvalue()


OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize(
    ("data", "message", "hint"),
    [
        (b"Hello, plain text\n", "not a .docx file (not a zip archive)", "extension"),
        (b"PK\x03\x04 truncated", "damaged zip archive", "complete"),
        (_zip({"xl/workbook.xml": "<workbook/>"}), "not a Word document (no word/document.xml inside)", ".xlsx"),
        (OLE_HEADER + "EncryptionInfo".encode("utf-16-le"), "password-protected (encrypted)", "remove the password"),
        (OLE_HEADER + "WordDocument".encode("utf-16-le"), "old binary Word (.doc) file", "save it as .docx"),
        (make_docx("<w:p><w:r><w:t>oops</w:r></w:p>"), "word/document.xml is not valid XML", "complete"),
        (
            make_docx("", document='<!DOCTYPE d [<!ENTITY x "y">]><w:document xmlns:w="x"/>'),
            "has a DTD",
            ".docx",
        ),
        (make_docx("", document=f'<w:document xmlns:w="{W}"/>'), "has no document body", "complete"),
    ],
)
def test_docx_bad_input_is_an_input_error_naming_the_file(tmp_path: Path, data: bytes, message: str, hint: str) -> None:
    with pytest.raises(InputError) as caught:
        read_docx(tmp_path / "brev.docx", data)
    assert caught.value.message.startswith("brev.docx: ")
    assert message in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.hint and hint in caught.value.hint
    assert caught.value.exit_code == ExitCode.INPUT


def test_docx_broken_metadata_does_not_lose_the_document(tmp_path: Path) -> None:
    document_xml = DOCUMENT_OPEN + para("Brödtext.") + DOCUMENT_CLOSE
    data = _zip(
        {
            "word/document.xml": document_xml,
            "word/styles.xml": "<w:styles",  # broken
            "docProps/core.xml": "<cp:coreProperties",  # broken
            "_rels/.rels": "not xml",
        }
    )
    document = read_docx(tmp_path / "trasig.docx", data)
    assert [(s.heading, s.text) for s in document.sections] == [("trasig", "Brödtext.")]
