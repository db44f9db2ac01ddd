"""Accepting a user's upload: size and type checks, a safe name, an atomic write, a job for the worker.

The client's file name is never used as a path: only a cleaned base name is kept, inside a fresh folder
whose name the server chooses.
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections.abc import Sequence
from pathlib import Path

from rag.errors import InvalidInputError
from rag.jobs import JobQueue

_ZIP_KINDS = {".docx", ".pptx", ".xlsx"}
_TEXT_KINDS = {".csv", ".html", ".htm", ".md", ".txt", ".eml"}
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_filename(name: str, max_length: int = 120) -> str:
    """A display- and filesystem-safe base name: no folders, no control or markup characters."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        base = "upload"
    stem, dot, ext = base.rpartition(".")
    if not (dot and len(ext) <= 8):
        stem, ext = base, ""
    suffix = "." + ext.lower() if ext else ""
    # File systems limit names in bytes (255), not characters: cap the UTF-8 length.
    budget = max_length - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore") or "upload"
    return stem + suffix


def check_content_type(data: bytes, extension: str) -> None:
    """Refuse files whose bytes do not match their extension.

    Raises:
        InvalidInputError: the content is not what the extension claims.
    """
    head = data[:8]
    if extension == ".pdf" and not data.lstrip()[:5].startswith(b"%PDF-"):
        raise InvalidInputError("the file is named .pdf but is not a PDF", code="upload_mislabelled", ext=".pdf")
    if extension in _ZIP_KINDS and not head.startswith(b"PK\x03\x04"):
        raise InvalidInputError(
            f"the file is named {extension} but is not an Office document", code="upload_mislabelled", ext=extension
        )
    if extension == ".msg" and not head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidInputError(
            "the file is named .msg but is not an Outlook message", code="upload_mislabelled", ext=".msg"
        )
    if extension in _TEXT_KINDS:
        if b"\x00" in data[:4096]:
            raise InvalidInputError(
                f"the file is named {extension} but contains binary data", code="upload_mislabelled", ext=extension
            )
        if head.startswith((b"PK\x03\x04", b"%PDF-", b"\x7fELF", b"MZ")):
            raise InvalidInputError(
                f"the file is named {extension} but is a binary file", code="upload_mislabelled", ext=extension
            )


def accept_upload(
    data: bytes,
    filename: str,
    *,
    uploads_dir: Path,
    queue: JobQueue,
    allowed_extensions: Sequence[str],
    max_bytes: int,
    access: Sequence[str] = ("public",),
) -> int:
    """Validate and store an upload, then queue it for the worker; returns the job id.

    Raises:
        InvalidInputError: empty, too large, unsupported or mislabelled file.
    """
    name = safe_filename(filename)
    extension = Path(name).suffix.lower()
    if extension not in {e.lower() for e in allowed_extensions}:
        raise InvalidInputError(
            f"unsupported file type {extension or '(none)'}", code="upload_type", ext=extension or "–"
        )
    if not data:
        raise InvalidInputError("the file is empty", code="upload_empty")
    if len(data) > max_bytes:
        size, limit = f"{len(data) / 1e6:.1f}", f"{max_bytes / 1e6:.0f}"
        raise InvalidInputError(f"file too large: {size} MB > {limit} MB", code="upload_too_large", size=size,
                                limit=limit)
    check_content_type(data, extension)
    folder = Path(uploads_dir) / uuid.uuid4().hex[:16]
    folder.mkdir(parents=True)
    target = folder / name
    tmp = folder / f".{uuid.uuid4().hex}.part"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return queue.enqueue(target, name, access=access, source="upload")
