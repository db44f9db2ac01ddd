"""Why a file was not indexed, in the UI's language.

The ingestion writes each failure reason in plain English words ("file too large: 612 MB > 200 MB"),
and the ledger keeps them so (``hauswissen status --json``, logs and scripts read them). The German UI
shows them in German: each phrasing the ingestion uses has a pattern here, with its variable parts
(sizes, names, counts) carried over. A reason no pattern knows, such as a library's own message inside
"unexpected error: …", is shown as written. ``tests/test_ui_reasons.py`` checks that every reason
the ingestion can write has a pattern.
"""

from __future__ import annotations

import re

from ui.i18n import UILanguage, format_number

# What a file's first bytes looked like (ingest.validation.sniff), and the kinds expected instead.
_THINGS = {
    "a PDF": "ein PDF",
    "a ZIP archive": "ein ZIP-Archiv",
    "an HTML page": "eine HTML-Seite",
    "an ELF executable": "ein ausführbares Programm (ELF)",
    "a Mach-O executable": "ein ausführbares Programm (Mach-O)",
    "a Windows executable": "ein Windows-Programm",
    "an OLE2 file (old Office format or Outlook message)": (
        "eine OLE2-Datei (altes Office-Format oder Outlook-Nachricht)"
    ),
    "a PNG image": "ein PNG-Bild",
    "a JPEG image": "ein JPEG-Bild",
    "a TIFF image": "ein TIFF-Bild",
    "a GIF image": "ein GIF-Bild",
    "a gzip archive": "ein gzip-Archiv",
    "a bzip2 archive": "ein bzip2-Archiv",
    "an xz archive": "ein xz-Archiv",
    "a 7-Zip archive": "ein 7-Zip-Archiv",
    "a RAR archive": "ein RAR-Archiv",
    "an RTF document": "ein RTF-Dokument",
}
_NOT_KINDS = {
    "a PDF": "kein PDF",
    "an Office document": "kein Office-Dokument",
    "an Outlook message": "keine Outlook-Nachricht",
    "an image": "kein Bild",
}

_GERMAN: tuple[tuple[str, str], ...] = (
    (r"the file is empty", "Die Datei ist leer"),
    (r"file too large: (?P<size>.+) > (?P<limit>.+)", "Datei zu groß: {size} > {limit}"),
    (r"cannot read the file \((?P<why>.*?)\)?", "Die Datei kann nicht gelesen werden ({why})"),
    (r"the uploaded file is gone", "Die hochgeladene Datei ist nicht mehr da"),
    (r"the file vanished or cannot be read", "Die Datei ist verschwunden oder nicht lesbar"),
    (r"unsupported file type '?(?P<kind>.*?)'?", "Dieser Dateityp wird nicht unterstützt: {kind}"),
    (r"content is not a document \(looks like (?P<seen>.+)\)", "Der Inhalt ist kein Dokument (sieht aus wie {seen})"),
    (r"binary content in a text file", "Binäre Daten in einer Textdatei"),
    (r"this looks like a binary file, not text", "Das ist eine Binärdatei, kein Text"),
    (r"content is not text \(looks like (?P<seen>.+)\)", "Der Inhalt ist kein Text (sieht aus wie {seen})"),
    (
        r"password-protected or old-format Office file \(not Office Open XML\)",
        "Kennwortgeschützte Office-Datei oder altes Office-Format (kein Office Open XML)",
    ),
    (
        r"content is not (?P<not_kind>.+?) \(unknown or damaged content\)",
        "Der Inhalt ist {not_kind} (unbekannter oder beschädigter Inhalt)",
    ),
    (
        r"content is not (?P<not_kind>.+?) \(looks like (?P<seen>.+)\)",
        "Der Inhalt ist {not_kind} (sieht aus wie {seen})",
    ),
    (
        r"Office file with (?P<count>[\d,]+) entries \(limit (?P<limit>[\d,]+)\)",
        "Office-Datei mit {count} Einträgen (höchstens {limit})",
    ),
    (
        r"damaged Office file \(its ZIP directory is inconsistent\)",
        "Beschädigte Office-Datei (ihr ZIP-Verzeichnis ist widersprüchlich)",
    ),
    (r"damaged Office file \(not a valid ZIP archive\)", "Beschädigte Office-Datei (kein gültiges ZIP-Archiv)"),
    (
        r"damaged Office file \(\[Content_Types\]\.xml is missing\)",
        "Beschädigte Office-Datei ([Content_Types].xml fehlt)",
    ),
    (
        r"zip bomb: declares (?P<big>.+) uncompressed from (?P<small>.+) \(limit (?P<limit>.+)\)",
        "ZIP-Bombe: {small} groß, entpackt angeblich {big} (höchstens {limit})",
    ),
    (
        r"zip bomb: declares (?P<big>.+) uncompressed from (?P<small>.+) \(more than (?P<ratio>.+) times its size\)",
        "ZIP-Bombe: {small} groß, entpackt angeblich {big} (mehr als das {ratio}-Fache)",
    ),
    (r"unsafe member name in Office file: (?P<name>.*)", "Unsicherer Name in der Office-Datei: {name}"),
    (r"symbolic link in Office file: (?P<name>.*)", "Symbolischer Link in der Office-Datei: {name}"),
    (r"no text found", "Kein Text gefunden"),
    (r"no text found \(not even by OCR\)", "Kein Text gefunden (auch nicht per Texterkennung)"),
    (
        r"damaged or unreadable (?P<kind>\S+) file \((?P<why>.*?)\)?",
        "Beschädigte oder unlesbare {kind}-Datei ({why})",
    ),
    (r"too many pages: (?P<pages>\d+) > (?P<limit>\d+)", "Zu viele Seiten: {pages} > {limit}"),
    (r"password-protected PDF", "Kennwortgeschütztes PDF"),
    (r"damaged PDF \(it cannot be opened\)", "Beschädigtes PDF (es lässt sich nicht öffnen)"),
    (r"the PDF has no pages", "Das PDF hat keine Seiten"),
    (
        r"scanned pages without a text layer, and OCR is disabled",
        "Gescannte Seiten ohne Textebene, und die Texterkennung (OCR) ist ausgeschaltet",
    ),
    (r"an image needs OCR, and OCR is disabled", "Ein Bild braucht Texterkennung (OCR), und sie ist ausgeschaltet"),
    (r"not an e-mail message \(no headers found\)", "Keine E-Mail-Nachricht (keine Kopfzeilen gefunden)"),
    (
        r"OCR needed, but tesseract is not installed \((?P<hint>.*)\)",
        "Texterkennung nötig, aber tesseract ist nicht installiert ({hint})",
    ),
    (r"OCR failed \((?P<why>.*?)\)?", "Texterkennung fehlgeschlagen ({why})"),
    (
        r"OCR took longer than (?P<seconds>\S+) s for one page",
        "Die Texterkennung brauchte für eine Seite länger als {seconds} s",
    ),
    (r"not a readable image \((?P<why>.*?)\)?", "Kein lesbares Bild ({why})"),
    (
        r"image too large for OCR: (?P<width>\d+) x (?P<height>\d+) pixels",
        "Bild zu groß für die Texterkennung: {width} × {height} Pixel",
    ),
    (r"parser sent an invalid reply", "Das Leseprogramm hat eine ungültige Antwort geschickt"),
    (
        r"parser ran out of memory \(limit (?P<mb>\d+) MB\)",
        "Dem Leseprogramm ging der Speicher aus (höchstens {mb} MB)",
    ),
    (
        r"parser exceeded its time limit \((?P<seconds>\S+) s\)",
        "Das Leseprogramm hat sein Zeitlimit überschritten ({seconds} s)",
    ),
    (
        r"parser exceeded its CPU time limit \((?P<seconds>\S+) s\)",
        "Das Leseprogramm hat sein Rechenzeitlimit überschritten ({seconds} s)",
    ),
    (
        r"parser produced too much text \(over (?P<mb>\d+) MB\)",
        "Das Leseprogramm hat zu viel Text geliefert (über {mb} MB)",
    ),
    (
        r"parser closed its output and stopped answering",
        "Das Leseprogramm hat seine Ausgabe geschlossen und antwortet nicht mehr",
    ),
    (
        r"parser crashed \(signal (?P<number>\d+), (?P<name>\w+)\)",
        "Das Leseprogramm ist abgestürzt (Signal {number}, {name})",
    ),
    (
        r"parser exited unexpectedly \(exit code (?P<code>-?\d+)\)",
        "Das Leseprogramm hat sich unerwartet beendet (Exit-Code {code})",
    ),
    (
        r"could not write the index \((?P<why>.*?)\)?",
        "Der Index konnte nicht geschrieben werden ({why}); beim nächsten Lauf wird es erneut versucht",
    ),
    (r"embedding failed: (?P<what>.*)", "Die Vektoren für die Suche ließen sich nicht berechnen: {what}"),
    (r"unknown parser error", "Unbekannter Fehler beim Lesen der Datei"),
    (r"unexpected error: (?P<what>.*)", "Unerwarteter Fehler: {what}"),
    (r"internal error: (?P<what>.*)", "Interner Fehler: {what}"),
)
_PATTERNS = tuple((re.compile(pattern, re.DOTALL), template) for pattern, template in _GERMAN)


def _german_value(name: str, value: str) -> str:
    if name == "seen":
        return _THINGS.get(value, value)
    if name == "not_kind":
        return _NOT_KINDS.get(value, f"nicht {value}")
    if name in ("count", "limit") and re.fullmatch(r"[\d,]+", value):
        return format_number(int(value.replace(",", "")), "de")  # 100,003 -> 100.003
    if re.fullmatch(r"\d+(\.\d+)? [KMG]B", value) or (name == "seconds" and re.fullmatch(r"\d+\.\d+", value)):
        return value.replace(".", ",")  # 5.1 GB -> 5,1 GB, 0.5 s -> 0,5 s
    return value


def reason_text(reason: str, language: UILanguage) -> str:
    """``reason`` (as the ingestion wrote it) in ``language``; as written when no pattern knows it."""
    if language == "en":
        return reason
    for pattern, template in _PATTERNS:
        match = pattern.fullmatch(reason.strip())
        if match:
            return template.format(**{k: _german_value(k, v) for k, v in match.groupdict().items()})
    return reason


def has_translation(reason: str) -> bool:
    """Whether a pattern knows ``reason`` (for tests: every reason the ingestion writes must be known)."""
    return any(pattern.fullmatch(reason.strip()) for pattern, _ in _PATTERNS)
