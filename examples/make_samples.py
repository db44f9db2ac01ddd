"""Build the demo corpus in ``examples/docs/`` from German federal law texts.

Usage::

    python examples/make_samples.py GESETZE_DIR [--out examples/docs]

``GESETZE_DIR`` holds the Markdown laws of bundestag/gesetze @ 77abca2, either flat (``kschg.md``) or in
that repository's layout (``k/kschg/index.md``), and somewhere below it ``bgbl1_2020_j0859_0010.pdf``.
The script copies three laws and the PDF, and writes a DOCX, an HTML page, an XLSX, a CSV and a fictional
e-mail.
Timestamps inside the generated files are fixed so that a rerun changes as little as possible.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import re
import shutil
import zipfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import docx
import openpyxl
from openpyxl.styles import Font

FIXED_TIME = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
LAWS = ("burlg", "nachwg", "arbzg")
PDF_SOURCE = "bgbl1_2020_j0859_0010.pdf"
PDF_NAME = "hinweisblatt-verbraucherinsolvenz.pdf"

# Statutory minimum wage per hour (gross) since its introduction, from the MiLoG and its ordinances.
MINIMUM_WAGE: list[tuple[dt.date, str, str]] = [
    (dt.date(2015, 1, 1), "8.50", "§ 1 Abs. 2 MiLoG (Fassung 2014)"),
    (dt.date(2017, 1, 1), "8.84", "Erste Mindestlohnanpassungsverordnung"),
    (dt.date(2019, 1, 1), "9.19", "Zweite Mindestlohnanpassungsverordnung"),
    (dt.date(2020, 1, 1), "9.35", "Zweite Mindestlohnanpassungsverordnung"),
    (dt.date(2021, 1, 1), "9.50", "Dritte Mindestlohnanpassungsverordnung"),
    (dt.date(2021, 7, 1), "9.60", "Dritte Mindestlohnanpassungsverordnung"),
    (dt.date(2022, 1, 1), "9.82", "Dritte Mindestlohnanpassungsverordnung"),
    (dt.date(2022, 7, 1), "10.45", "Dritte Mindestlohnanpassungsverordnung"),
    (dt.date(2022, 10, 1), "12.00", "Mindestlohnerhöhungsgesetz (§ 1 Abs. 2 MiLoG)"),
    (dt.date(2024, 1, 1), "12.41", "Vierte Mindestlohnanpassungsverordnung"),
    (dt.date(2025, 1, 1), "12.82", "Vierte Mindestlohnanpassungsverordnung"),
]
NOTES = (
    "Hinweis",
    "Jede Arbeitnehmerin und jeder Arbeitnehmer hat Anspruch auf den Mindestlohn (§ 1 Abs. 1 MiLoG).",
    "Die Mindestlohnkommission beschließt Anpassungen; die Bundesregierung macht sie durch Rechtsverordnung "
    "verbindlich (§§ 9 und 11 MiLoG).",
    "Stand der Tabelle: 1. Januar 2025.",
)
WAGE_HEADER = ("Gültig ab", "Mindestlohn je Zeitstunde (brutto, €)", "Rechtsgrundlage")

EMAIL_BODY = """\
Liebe Kolleginnen und Kollegen,

(Fiktives Beispiel: Diese E-Mail wurde für die Demo-Dokumente von hauswissen erfunden.
Personen, Firma und Adressen gibt es nicht.)

die Urlaubsplanung für 2025 beginnt. Bitte tragt eure Urlaubswünsche bis zum 31. Januar 2025 in den
Teamkalender ein. Stimmt euch innerhalb des Teams ab, damit in jeder Woche eine Vertretung erreichbar ist.

Zur Erinnerung die gesetzlichen Regeln nach dem Bundesurlaubsgesetz (BUrlG):

- Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr bei einer Sechs-Tage-Woche (§ 3 BUrlG),
  also 20 Arbeitstage bei einer Fünf-Tage-Woche. Unser Tarifvertrag gewährt darüber hinaus 30 Tage.
- Der volle Urlaubsanspruch entsteht erstmals nach sechs Monaten im Unternehmen (Wartezeit, § 4 BUrlG).
- Urlaub muss im laufenden Kalenderjahr genommen werden. Eine Übertragung ins nächste Jahr ist nur aus
  dringenden betrieblichen oder persönlichen Gründen möglich; übertragener Urlaub muss dann bis zum
  31. März genommen werden (§ 7 Abs. 3 BUrlG).
- Wer während des Urlaubs krank wird und ein ärztliches Attest vorlegt, bekommt die Krankheitstage nicht
  auf den Urlaub angerechnet (§ 9 BUrlG).

Bei Fragen meldet euch bitte bei der Personalabteilung.

Viele Grüße
Eure Personalabteilung
"""


@dataclass(frozen=True)
class Block:
    """One block of a law's Markdown: a heading (level > 0) or a paragraph (level 0)."""

    level: int
    text: str


def read_law(gesetze: Path, slug: str) -> Path:
    """Find ``slug``'s Markdown in a flat folder or in the bundestag/gesetze layout."""
    for candidate in (gesetze / f"{slug}.md", gesetze / slug[0] / slug / "index.md"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{slug}.md not found under {gesetze}")


def law_blocks(markdown: str) -> list[Block]:
    """Split a law's Markdown (after its front matter) into headings and whitespace-joined paragraphs."""
    body = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.DOTALL)
    blocks = []
    for raw in re.split(r"\n\s*\n", body):
        text = " ".join(raw.split())
        if not text:
            continue
        heading = re.match(r"(#{1,6}) (.*)", text)
        if heading:
            blocks.append(Block(len(heading.group(1)), heading.group(2)))
        else:
            blocks.append(Block(0, text.replace(" : ", ": ")))
    return blocks


def section_range(blocks: list[Block], first: str, stop: str) -> list[Block]:
    """The blocks from the heading starting with ``first`` up to (not including) the one with ``stop``."""
    start = next(i for i, b in enumerate(blocks) if b.level and b.text.startswith(first))
    end = next(i for i, b in enumerate(blocks) if i > start and b.level and b.text.startswith(stop))
    return blocks[start:end]


def freeze_zip(path: Path) -> None:
    """Give an Office file fixed entry times and modification date, so that reruns give the same bytes."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    stamp = FIXED_TIME.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            frozen = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            frozen.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(frozen, data)


def write_docx(blocks: list[Block], out: Path) -> None:
    """The first sections of the KSchG as a Word document with real heading styles."""
    document = docx.Document()
    props = document.core_properties
    props.title = "Kündigungsschutzgesetz (KSchG) – Auszug"
    props.author = "hauswissen Beispieldaten"
    props.created = props.modified = FIXED_TIME.astimezone(dt.UTC).replace(tzinfo=None)
    document.add_heading("Kündigungsschutzgesetz (KSchG) – Auszug", level=0)
    document.add_paragraph(
        "Auszug: Erster Abschnitt, §§ 1 bis 4. Quelle: bundestag/gesetze, amtliches Werk (§ 5 UrhG)."
    )
    for block in blocks:
        if block.level:
            document.add_heading(block.text, level=min(block.level - 1, 3))
        else:
            document.add_paragraph(block.text)
    document.save(str(out))
    freeze_zip(out)


def write_html(blocks: list[Block], out: Path) -> None:
    """An excerpt of the TzBfG as a plain, self-contained HTML page."""
    title = "Gesetz über Teilzeitarbeit und befristete Arbeitsverträge (TzBfG) – Auszug"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="de">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Auszug: Dritter Abschnitt, §§ 14 bis 17. Quelle: bundestag/gesetze, "
        "amtliches Werk (§ 5 UrhG).</p>",
    ]
    for block in blocks:
        if block.level:
            level = min(block.level, 6)
            lines.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
        else:
            lines.append(f"<p>{html.escape(block.text)}</p>")
    lines += ["</body>", "</html>", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def write_xlsx(out: Path) -> None:
    """The minimum wage table on a sheet "Mindestlohn", with a second sheet of notes."""
    workbook = openpyxl.Workbook()
    props = workbook.properties
    props.title = "Gesetzlicher Mindestlohn in Deutschland seit 2015"
    props.creator = "hauswissen Beispieldaten"
    props.created = props.modified = FIXED_TIME.astimezone(dt.UTC).replace(tzinfo=None)
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Mindestlohn"
    sheet.append(list(WAGE_HEADER))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for valid_from, euros, basis in MINIMUM_WAGE:
        sheet.append([valid_from, float(euros), basis])
        sheet.cell(sheet.max_row, 1).number_format = "DD.MM.YYYY"
        sheet.cell(sheet.max_row, 2).number_format = '#,##0.00 "€"'
    for column, width in zip("ABC", (12, 38, 48), strict=True):
        sheet.column_dimensions[column].width = width
    notes = workbook.create_sheet("Hinweise")
    for line in NOTES:
        notes.append([line])
    notes.column_dimensions["A"].width = 100
    workbook.save(str(out))
    freeze_zip(out)


def write_csv(out: Path) -> None:
    """The same table as a German-style CSV (semicolons, decimal commas)."""
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(WAGE_HEADER)
        for valid_from, euros, basis in MINIMUM_WAGE:
            writer.writerow([valid_from.strftime("%d.%m.%Y"), euros.replace(".", ","), basis])


def write_eml(out: Path) -> None:
    """A short, clearly fictional internal announcement about holiday planning."""
    message = EmailMessage()
    message["From"] = "Personalabteilung <personal@beispiel-firma.example>"
    message["To"] = "Alle Mitarbeitenden <alle@beispiel-firma.example>"
    message["Subject"] = "Urlaubsplanung 2025: Bitte Urlaubswünsche bis 31. Januar eintragen"
    message["Date"] = format_datetime(FIXED_TIME)
    message["Message-ID"] = "<urlaubsplanung-2025@beispiel-firma.example>"
    message.set_content(EMAIL_BODY, charset="utf-8")
    out.write_bytes(message.as_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("gesetze", type=Path, help="folder with the Markdown laws of bundestag/gesetze")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "docs")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    for slug in LAWS:
        shutil.copyfile(read_law(args.gesetze, slug), out / f"{slug}.md")
    pdf = next(args.gesetze.rglob(PDF_SOURCE), None)
    if pdf is None:
        raise SystemExit(f"{PDF_SOURCE} not found under {args.gesetze}")
    shutil.copyfile(pdf, out / PDF_NAME)

    kschg = law_blocks(read_law(args.gesetze, "kschg").read_text(encoding="utf-8"))
    write_docx(section_range(kschg, "Erster Abschnitt", "§ 5 "), out / "kschg-auszug.docx")
    tzbfg = law_blocks(read_law(args.gesetze, "tzbfg").read_text(encoding="utf-8"))
    write_html(section_range(tzbfg, "Dritter Abschnitt", "§ 18 "), out / "tzbfg-befristung.html")
    write_xlsx(out / "mindestlohn.xlsx")
    write_csv(out / "mindestlohn.csv")
    write_eml(out / "rundmail-urlaubsplanung-2025.eml")
    for path in sorted(out.iterdir()):
        print(f"{path.stat().st_size:>8}  {path.name}")


if __name__ == "__main__":
    main()
