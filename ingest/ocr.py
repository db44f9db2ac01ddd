"""Optical character recognition with the tesseract command (Debian ``tesseract-ocr``, ``-deu``, ``-eng``).

Used for PDF pages without a text layer (scans) and for image files. Pages are recognised one at a time,
so memory stays bounded by one rendered page whatever the document's length.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import DocumentError

if TYPE_CHECKING:
    from PIL.Image import Image

# 300 dpi is what tesseract is trained for; lower loses small print, higher only costs time.
RENDER_DPI = 300
# Seconds one page may take; a scan that needs longer is damaged or absurdly large.
PAGE_TIMEOUT_S = 120
# Pixels of one page after scaling; beyond this an image is a decompression bomb, not a scan.
MAX_PIXELS = 60_000_000


def tesseract_path() -> str | None:
    """The tesseract executable, or None when it is not installed."""
    return shutil.which("tesseract")


def recognise(image: Image, languages: str, where: str) -> str:
    """The text tesseract reads in ``image`` (languages such as ``"deu+eng"``).

    Raises:
        DocumentError: tesseract is missing, fails or takes longer than :data:`PAGE_TIMEOUT_S`.
    """
    exe = tesseract_path()
    if exe is None:
        raise DocumentError(where, "OCR needed, but tesseract is not installed (apt-get install tesseract-ocr)")
    png = io.BytesIO()
    image.save(png, format="PNG")
    # One OpenMP thread per tesseract: its threads busy-wait and would slow the embedder beside it.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            [exe, "stdin", "stdout", "-l", languages, "--psm", "3"],
            input=png.getvalue(),
            capture_output=True,
            timeout=PAGE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise DocumentError(where, f"OCR took longer than {PAGE_TIMEOUT_S} s for one page") from e
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1][:200] if message else f"exit code {done.returncode}"
        raise DocumentError(where, f"OCR failed ({detail})")
    return done.stdout.decode("utf-8", "replace")


def image_pages(path: Path) -> Iterator[Image]:
    """The frames of an image file (several for a multi-page TIFF), converted for OCR.

    Raises:
        DocumentError: the file is no image Pillow can read, or a frame is implausibly large.
    """
    from PIL import Image as PILImage
    from PIL import ImageSequence, UnidentifiedImageError

    try:
        with PILImage.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                if frame.width * frame.height > MAX_PIXELS:
                    raise DocumentError(str(path), f"image too large for OCR: {frame.width} x {frame.height} pixels")
                yield frame.convert("L")
    except (UnidentifiedImageError, PILImage.DecompressionBombError) as e:
        raise DocumentError(str(path), f"not a readable image ({type(e).__name__})") from e
