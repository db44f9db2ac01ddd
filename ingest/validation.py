"""Checks on a file before any parser sees it: size, type by content, and an Office file's ZIP directory.

They read little (the first 64 KiB, and for Office files only the ZIP central directory, never a
member), so a hostile file is refused cheaply and in this process; what they cannot catch (a parser
looping or eating memory on a file that looks fine) is bounded by :mod:`ingest.sandbox`.
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from ingest.parsing import SUPPORTED_KINDS
from rag.config import IngestSettings
from rag.errors import DocumentError

HEAD_BYTES = 64 * 1024
OFFICE_KINDS = frozenset({"docx", "pptx", "xlsx"})
TEXT_KINDS = frozenset({"txt", "md", "csv", "html", "eml"})
# Declared uncompressed totals below this never count as a zip bomb, whatever the ratio: a 5 KB
# file declaring 3 MB of XML is normal, and 20 MB cannot hurt.
RATIO_FLOOR_BYTES = 20_000_000
# Central-directory bytes one entry may take on average (46 fixed, then name and extra fields; an
# Office part name is under 100 characters). More means the directory lies about its entry count.
_CD_BYTES_PER_ENTRY = 512

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 file (old Office format or Outlook message)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
)
_EXECUTABLES = frozenset({"an ELF executable", "a Mach-O executable", "a Windows executable"})
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe")
_EXPECTED = {
    "pdf": ("a PDF", ("a PDF",)),
    "docx": ("an Office document", ("a ZIP archive",)),
    "pptx": ("an Office document", ("a ZIP archive",)),
    "xlsx": ("an Office document", ("a ZIP archive",)),
    "msg": ("an Outlook message", ("an OLE2 file (old Office format or Outlook message)",)),
    "image": ("an image", ("a PNG image", "a JPEG image", "a TIFF image")),
}
_DRIVE = re.compile(r"^[A-Za-z]:")


def validate_file(path: Path, settings: IngestSettings, size: int | None = None) -> None:
    """Refuse ``path`` before parsing when its size, content or ZIP directory is unacceptable.

    Args:
        path: A file whose extension is a key of :data:`ingest.parsing.SUPPORTED_KINDS` (others are
            left to the parser, which refuses them).
        settings: The ingest limits (``max_file_mb``, ``max_zip_*``, ``max_unzipped_mb``).
        size: The file's size if the caller has it already.

    Raises:
        DocumentError: with a plain reason; ``quarantine`` is set for files refused as dangerous
            (executables, disguised formats, zip bombs, unsafe ZIP members).
    """
    where = str(path)
    try:
        if size is None:
            size = path.stat().st_size
        _check_size(where, size, settings.max_file_mb)
        kind = SUPPORTED_KINDS.get(path.suffix.lower())
        if kind is None:
            return
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
            _check_content(where, kind, head)
            if kind in OFFICE_KINDS:
                _check_office_zip(where, fh, size, settings)
    except OSError as e:
        raise DocumentError(where, f"cannot read the file ({e.strerror or type(e).__name__})") from e


def describe_size(n: float) -> str:
    """``612 MB``, ``5.1 GB``, ``12 KB``: decimal units, as file managers show them."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.0f} MB"
    return f"{max(1, round(n / 1e3))} KB"


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file look like (``"a ZIP archive"``), or None if nothing known."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head.startswith(b"MZ") and _is_windows_executable(head):
        return "a Windows executable"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:16].lower()
    if start.startswith(_HTML_STARTS):
        return "an HTML page"
    return None


def _is_windows_executable(head: bytes) -> bool:
    # A DOS header has NUL bytes and points (at 0x3C) to the "PE" header; text starting "MZ" has neither.
    if len(head) >= 0x40:
        (offset,) = struct.unpack_from("<I", head, 0x3C)
        if head[offset:offset + 4] == b"PE\x00\x00":
            return True
    return b"\x00" in head[:64]


def _check_size(where: str, size: int, max_file_mb: float) -> None:
    if size == 0:
        raise DocumentError(where, "the file is empty")
    limit = max_file_mb * 1e6
    if size > limit:
        raise DocumentError(where, f"file too large: {describe_size(size)} > {describe_size(limit)}")


def _check_content(where: str, kind: str, head: bytes) -> None:
    seen = sniff(head)
    if seen in _EXECUTABLES:
        raise DocumentError(where, f"content is not a document (looks like {seen})", quarantine=True)
    if kind in TEXT_KINDS:
        if b"\x00" in head:
            raise DocumentError(where, "binary content in a text file")
        if seen is not None and seen != "an HTML page":
            raise DocumentError(where, f"content is not text (looks like {seen})", quarantine=True)
        return
    expected = _EXPECTED.get(kind)
    if expected is None:
        return
    name, accepted = expected
    if kind == "pdf" and b"%PDF-" in head[:1024]:
        return  # the PDF header may follow some junk; pdfium accepts it within the first kilobyte
    if seen in accepted:
        return
    if kind in OFFICE_KINDS and seen is not None and seen.startswith("an OLE2 file"):
        raise DocumentError(where, "password-protected or old-format Office file (not Office Open XML)")
    if seen is None:
        raise DocumentError(where, f"content is not {name} (unknown or damaged content)")
    raise DocumentError(where, f"content is not {name} (looks like {seen})", quarantine=True)


def _check_office_zip(where: str, fh: BinaryIO, size: int, settings: IngestSettings) -> None:
    entries, cd_size = _declared_directory(where, fh, size)
    limit = settings.max_zip_entries
    if entries > limit:
        raise DocumentError(where, f"Office file with {entries:,} entries (limit {limit:,})", quarantine=True)
    if cd_size > entries * _CD_BYTES_PER_ENTRY + 4096:
        raise DocumentError(where, "damaged Office file (its ZIP directory is inconsistent)", quarantine=True)
    fh.seek(0)
    try:
        with zipfile.ZipFile(fh) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error) as e:
        raise DocumentError(where, "damaged Office file (not a valid ZIP archive)") from e
    if len(infos) != entries or sum(i.compress_size for i in infos) > size:
        raise DocumentError(where, "damaged Office file (its ZIP directory is inconsistent)", quarantine=True)
    _check_zip_sizes(where, sum(i.file_size for i in infos), size, settings)
    for info in infos:
        if _unsafe_member_name(info.filename):
            raise DocumentError(
                where, f"unsafe member name in Office file: {_printable(info.filename)}", quarantine=True
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DocumentError(
                where, f"symbolic link in Office file: {_printable(info.filename)}", quarantine=True
            )
    if not any(i.filename.lower() == "[content_types].xml" for i in infos):
        raise DocumentError(where, "damaged Office file ([Content_Types].xml is missing)")


def _declared_directory(where: str, fh: BinaryIO, size: int) -> tuple[int, int]:
    """Entry count and central-directory size from the end record, before zipfile reads any entry.

    zipfile builds an object per entry, so a directory claiming millions is refused from its count.
    """
    tail_start = max(0, size - 22 - 65535)
    fh.seek(tail_start)
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise DocumentError(where, "damaged Office file (not a valid ZIP archive)")
    _, _, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<4H2LH", tail, at + 4)
    if entries != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return entries, cd_size
    # ZIP64: a locator just before the end record points to a record with 64-bit fields.
    locator_at = tail_start + at - 20
    if locator_at < 0:
        raise DocumentError(where, "damaged Office file (not a valid ZIP archive)")
    fh.seek(locator_at)
    locator = fh.read(20)
    if len(locator) < 20 or not locator.startswith(b"PK\x06\x07"):
        raise DocumentError(where, "damaged Office file (not a valid ZIP archive)")
    (record_at,) = struct.unpack_from("<Q", locator, 8)
    fh.seek(record_at)
    record = fh.read(56)
    if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
        raise DocumentError(where, "damaged Office file (not a valid ZIP archive)")
    entries64, cd_size64 = struct.unpack_from("<QQ", record, 32)
    return entries64, cd_size64


def _check_zip_sizes(where: str, unzipped: int, size: int, settings: IngestSettings) -> None:
    declared = f"zip bomb: declares {describe_size(unzipped)} uncompressed from {describe_size(size)}"
    if unzipped > settings.max_unzipped_mb * 1e6:
        raise DocumentError(
            where, f"{declared} (limit {describe_size(settings.max_unzipped_mb * 1e6)})", quarantine=True
        )
    if unzipped > RATIO_FLOOR_BYTES and unzipped > settings.max_zip_ratio * size:
        raise DocumentError(
            where, f"{declared} (more than {settings.max_zip_ratio:g} times its size)", quarantine=True
        )


def _unsafe_member_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name)) or ".." in parts


def _printable(name: str, limit: int = 80) -> str:
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in name[:limit])
    return shown + ("..." if len(name) > limit else "")
