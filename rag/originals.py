"""The original file behind a cited passage: found, checked and read for one caller.

A passage names its document by id and path, but passages also come back from stored chats, so
nothing in one is trusted: the document is looked up in the index again and must still be there under
the same path, the caller's access tokens must permit it, and the file must lie inside a configured
source folder or the upload folder, reached without following any symbolic link (each folder below the
root is opened with ``O_NOFOLLOW``, then the file itself, so a link swapped in between a check and the
read cannot redirect it). Files larger than ``ui.max_original_mb`` are not read.

A file whose content differs from what was indexed is still offered, marked :attr:`OriginalFile.changed`:
access belongs to the folder or upload, not to the content, so the next sync indexes the new content
for the same callers; refusing would only hide a file they can already reach. The UI says that the cited
page may no longer match.

PDF pages are rendered to PNG (:func:`render_pdf_page`) because a browser cannot be sent to a local
file's ``#page=N`` without serving the files statically; a rendered page plus a download of the whole
file is the offline way to show the original.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import math
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from rag.config import Settings
from rag.documents import DocumentRecord, Passage
from rag.errors import OriginalUnavailableError
from rag.uploads import safe_filename

# Screen resolution: an A4 page at 110 dpi is about 910 x 1290 pixels, readable and about 0.3 MB as PNG.
PAGE_DPI = 110
# Pixels of one rendered page. A PDF page can declare any size (posters, hostile files); the OCR code
# caps at 60 megapixels as a decompression-bomb guard, far more than a screen needs, so pages are
# scaled down to this instead.
PAGE_MAX_PIXELS = 4_000_000

_MB = 1024 * 1024
_READ_BLOCK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in a folder would otherwise block the open forever.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# pdfium is not thread-safe, and Streamlit runs each session's script in its own thread.
_PDFIUM_LOCK = threading.Lock()

MIME_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".eml": "message/rfc822",
    ".msg": "application/vnd.ms-outlook",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
_FALLBACK_MIME = "application/octet-stream"


def mime_type(name: str) -> str:
    """The MIME type of a file name by its extension (``application/octet-stream`` when unknown)."""
    return MIME_TYPES.get(PurePath(name).suffix.lower(), _FALLBACK_MIME)


@dataclass(frozen=True)
class OriginalFile:
    """An indexed document's file, checked for one caller, with its content as read.

    ``name`` is the file's cleaned base name, for display and as a download name only (never a path).
    ``changed`` is True when the content is not what was indexed.
    """

    document: DocumentRecord
    path: Path
    name: str
    mime: str
    data: bytes
    sha256: str
    changed: bool

    @property
    def is_pdf(self) -> bool:
        """Whether the file is a PDF (by content, not by name)."""
        return self.data[:1024].lstrip()[:5] == b"%PDF-"


class PageImageCache:
    """Rendered pages, bounded by count and bytes; the least recently used go first.

    Holds no user data: a key names file content (path, sha256, page), and callers check access
    (:meth:`Originals.open`) before they ask. Thread-safe, so one instance can serve every session.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 64 * _MB) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        """Bytes of all cached images together."""
        return self._bytes

    def get(self, key: tuple[str, str, int]) -> bytes | None:
        """The cached image for ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, int], value: bytes) -> None:
        """Keep ``value``, dropping the least recently used images beyond the bounds."""
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = value
            self._bytes += len(value)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _unavailable(message: str, code: str, **params: object) -> OriginalUnavailableError:
    return OriginalUnavailableError(message, code=f"original_{code}", **params)


def render_pdf_page(
    data: bytes, page: int, *, dpi: int = PAGE_DPI, max_pixels: int = PAGE_MAX_PIXELS
) -> bytes:
    """Page ``page`` (1-based) of the PDF ``data`` as a PNG of at most ``max_pixels`` pixels.

    Raises:
        OriginalUnavailableError: the PDF cannot be read (damaged, encrypted) or has no such page.
    """
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            raise _unavailable(f"the PDF cannot be read ({e})", "unreadable") from e
        try:
            if not 1 <= page <= len(pdf):
                raise _unavailable(f"the PDF has no page {page}", "page_missing", page=page)
            pdf_page = pdf[page - 1]
            try:
                width, height = pdf_page.get_size()
                scale = dpi / 72
                area = max(width, 1.0) * max(height, 1.0)
                if area * scale * scale > max_pixels:
                    # 0.99: pdfium rounds each side up, which must not push the product over the cap.
                    scale = math.sqrt(max_pixels / area) * 0.99
                bitmap = pdf_page.render(scale=scale)
                # The image shares the bitmap's memory: encode it while the bitmap is alive.
                image = bitmap.to_pil()
                if image.width * image.height > max_pixels:
                    image = image.copy()
                    image.thumbnail((max(1, int(math.sqrt(max_pixels))),) * 2)
                png = io.BytesIO()
                image.save(png, format="PNG")
                bitmap.close()
            finally:
                pdf_page.close()
        except pdfium.PdfiumError as e:
            raise _unavailable(f"the PDF page cannot be rendered ({e})", "unreadable") from e
        finally:
            pdf.close()
    return png.getvalue()


class _LinkFound(Exception):
    """A path component below the root is a symbolic link."""


def _open_at(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as e:
        # With O_NOFOLLOW a link fails as ELOOP (a file) or ENOTDIR (with O_DIRECTORY); tell it apart
        # from a component that is simply missing or no folder.
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise _LinkFound(name) from e
        raise


def _open_below(root: Path, relative: PurePath) -> int:
    """A read-only descriptor of ``root/relative`` reached without following a link below ``root``.

    Raises:
        _LinkFound: a folder or the file below ``root`` is a link.
        OSError: a component is missing or unreadable.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in relative.parts[:-1]:
            child = _open_at(part, _DIR_FLAGS | os.O_NOFOLLOW, fd)
            os.close(fd)
            fd = child
        return _open_at(relative.parts[-1], _FILE_FLAGS, fd)
    finally:
        os.close(fd)


class Originals:
    """Opens the original files of cited passages for callers, after every check (see the module).

    ``documents`` returns the index's current documents (the UI passes its per-generation catalogue);
    ``roots`` are the folders originals may live in.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        documents: Callable[[], Iterable[DocumentRecord]],
        *,
        max_bytes: int,
        cache: PageImageCache | None = None,
    ) -> None:
        # Indexed paths are stored resolved, so the roots are compared resolved too.
        self.roots = [Path(r).resolve() for r in roots]
        self._documents = documents
        self.max_bytes = max_bytes
        self.cache = cache if cache is not None else PageImageCache()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        documents: Callable[[], Iterable[DocumentRecord]],
        cache: PageImageCache | None = None,
    ) -> Originals:
        """Originals from the configured source folders and the upload folder, capped at
        ``ui.max_original_mb``."""
        return cls(
            [*settings.paths.sources, settings.uploads_dir],
            documents,
            max_bytes=int(settings.ui.max_original_mb * _MB),
            cache=cache,
        )

    def document(self, passage: Passage, access: Sequence[str]) -> DocumentRecord:
        """The index's record of the passage's document, if ``access`` may see it.

        Raises:
            OriginalUnavailableError: not (or no longer) indexed under that path, or not permitted.
        """
        record = next((d for d in self._documents() if d.doc_id == passage.doc_id), None)
        if record is None or record.path != passage.path:
            raise _unavailable("the document is no longer in the index", "not_indexed")
        if not set(access).intersection(record.access):
            raise _unavailable("you may not open this document", "denied")
        return record

    def _locate(self, path: str) -> tuple[Path, PurePath]:
        candidate = PurePath(path)
        if candidate.is_absolute() and not {".", ".."}.intersection(candidate.parts):
            for root in self.roots:
                if candidate.is_relative_to(root) and candidate != root:
                    return root, candidate.relative_to(root)
        raise _unavailable("the file is not inside the document folders", "outside")

    def _read(self, root: Path, relative: PurePath) -> bytes:
        try:
            fd = _open_below(root, relative)
        except _LinkFound as e:
            raise _unavailable("the file is reached through a link; links are not opened", "outside") from e
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise _unavailable("the file no longer exists", "missing") from e
            raise _unavailable("the file cannot be read", "unreadable") from e
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _unavailable("the file is not a regular file", "outside")
            if info.st_size > self.max_bytes:
                raise self._too_large(info.st_size)
            chunks, total = [], 0
            while block := fh.read(_READ_BLOCK):
                chunks.append(block)
                total += len(block)
                if total > self.max_bytes:  # it grew after the size check
                    raise self._too_large(total)
        return b"".join(chunks)

    def _too_large(self, size: int) -> OriginalUnavailableError:
        shown, limit = f"{size / _MB:.1f}", f"{self.max_bytes / _MB:.0f}"
        return _unavailable(f"the file is too large to open here ({shown} MB > {limit} MB)", "too_large",
                            size=shown, limit=limit)

    def open(self, passage: Passage, access: Sequence[str]) -> OriginalFile:
        """The original file of ``passage`` for a caller holding ``access``, read and checked.

        Raises:
            OriginalUnavailableError: not indexed, not permitted, outside the folders or a link, gone,
                unreadable or too large.
        """
        record = self.document(passage, access)
        root, relative = self._locate(record.path)
        try:
            data = self._read(root, relative)
        except OSError as e:
            raise _unavailable("the file cannot be read", "unreadable") from e
        digest = hashlib.sha256(data).hexdigest()
        name = safe_filename(relative.name)
        return OriginalFile(
            document=record,
            path=root / relative,
            name=name,
            mime=mime_type(name),
            data=data,
            sha256=digest,
            changed=digest != record.sha256,
        )

    def page_image(self, original: OriginalFile, page: int) -> bytes:
        """Page ``page`` of an opened PDF original as a PNG, rendered once per file content and page.

        Raises:
            OriginalUnavailableError: not a PDF, unreadable, or no such page.
        """
        if not original.is_pdf:
            raise _unavailable("the file is not a PDF", "unreadable")
        key = (str(original.path), original.sha256, page)
        cached = self.cache.get(key)
        if cached is None:
            cached = render_pdf_page(original.data, page)
            self.cache.put(key, cached)
        return cached
