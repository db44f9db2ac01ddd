"""The bad-input corpus of TESTPLAN.md, generated here and synced by a real worker in one pass.

Pass means: each file ends in a specific state with a specific reason, the worker keeps running,
nothing of a refused file reaches the index, and the index is consistent afterwards. The files are made
at test time (nothing hostile is committed to the repository).
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sandbox_parsers import misbehaving

from ingest.pipeline import Ingestor, IngestReport
from ingest.worker import Worker
from rag.config import Settings, load_settings
from rag.embedding import HashingEmbedder
from rag.jobs import FileStates
from rag.store import IndexReader
from tests.conftest import fake_env

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples" / "docs"
PDF = EXAMPLES / "hinweisblatt-verbraucherinsolvenz.pdf"
DOCX = EXAMPLES / "kschg-auszug.docx"
CAP_MB = 13
TEXT = "Der Arbeitnehmer hat Anspruch auf 24 Werktage Urlaub im Kalenderjahr. "

Build = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    name: str  # the file's name below the source folder
    build: Build
    state: str  # committed, failed or quarantined
    reason: str | None = None  # a regular expression the reason must match in full


def _bytes(data: bytes) -> Build:
    return lambda path: path.write_bytes(data)


def _text(text: str, encoding: str = "utf-8") -> Build:
    return lambda path: path.write_bytes(text.encode(encoding))


def _office(members: dict[str, bytes], *, base: Path = DOCX, drop: tuple[str, ...] = ()) -> Build:
    """A copy of an Office file with members replaced, added or dropped."""

    def build(path: Path) -> None:
        with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            for info in src.infolist():
                if info.filename not in members and info.filename not in drop:
                    out.writestr(info, src.read(info))
            for name, data in members.items():
                out.writestr(name, data)

    return build


def _docx_with_body(xml_prolog: str, body: str) -> Build:
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n{xml_prolog}'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>{body}</w:t></w:r></w:p></w:body></w:document>"
    )
    return _office({"word/document.xml": document.encode()})


def _zip_bomb(path: Path) -> None:
    _office({})(path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as out, out.open("word/media/zeros.bin", "w") as member:
        block = bytes(1 << 20)
        for _ in range(300):
            member.write(block)


def _many_entries(path: Path) -> None:
    _office({})(path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as out:
        for i in range(100_000):
            out.writestr(f"customXml/e{i}.xml", b"")


def _patch_central_directory(path: Path, patch: Callable[[bytearray, int], None]) -> None:
    data = bytearray(path.read_bytes())
    patch(data, data.rfind(b"PK\x05\x06"))
    path.write_bytes(bytes(data))


def _lying_sizes(path: Path) -> None:
    """Every central-directory entry claims 2 GB uncompressed."""
    _office({})(path)

    def patch(data: bytearray, end: int) -> None:
        (offset,) = struct.unpack_from("<L", data, end + 16)
        while data[offset:offset + 4] == b"PK\x01\x02":
            struct.pack_into("<L", data, offset + 24, 2_000_000_000)
            name_len, extra_len, comment_len = struct.unpack_from("<3H", data, offset + 28)
            offset += 46 + name_len + extra_len + comment_len

    _patch_central_directory(path, patch)


def _lying_count(path: Path) -> None:
    """The end record claims fewer entries than the directory holds."""
    _office({})(path)
    _patch_central_directory(path, lambda data, end: struct.pack_into("<2H", data, end + 8, 2, 2))


def _symlink_member(path: Path) -> None:
    _office({})(path)
    with zipfile.ZipFile(path, "a") as out:
        info = zipfile.ZipInfo("word/link.xml")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(info, "/etc/passwd")


def _truncated(source: Path, share: float) -> Build:
    data = source.read_bytes()
    return _bytes(data[: int(len(data) * share)])


def _blank_pdf(pages: int) -> Build:
    def build(path: Path) -> None:
        from pypdf import PdfWriter

        writer = PdfWriter()
        for _ in range(pages):
            writer.add_blank_page(width=200, height=200)
        with path.open("wb") as fh:
            writer.write(fh)

    return build


def _encrypted_pdf(path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(PDF))
    writer.encrypt("geheim", algorithm="AES-256")
    with path.open("wb") as fh:
        writer.write(fh)


def _padded_pdf(size: int) -> Build:
    def build(path: Path) -> None:
        data = PDF.read_bytes()
        path.write_bytes(data + b"\n" * (size - len(data)))

    return build


def _sparse(size: int) -> Build:
    def build(path: Path) -> None:
        with path.open("wb") as fh:
            fh.truncate(size)

    return build


def _ole2(path: Path) -> None:
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))


def _elf() -> bytes:
    return b"\x7fELF\x02\x01\x01" + bytes(200)


def _pe() -> bytes:
    head = bytearray(b"MZ" + bytes(0x3E) + bytes(200))
    struct.pack_into("<I", head, 0x3C, 0x80)
    head[0x80:0x84] = b"PE\x00\x00"
    return bytes(head)


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(100)


_PROLOG_XXE = '<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
_PROLOG_LAUGHS = (
    '<!DOCTYPE w:document [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)

Q = "quarantined"
CASES: list[Case] = [
    # sizes
    Case("leer.txt", _bytes(b""), "failed", r"the file is empty"),
    Case("leer.pdf", _bytes(b""), "failed", r"the file is empty"),
    Case("genau-an-der-grenze.pdf", _padded_pdf(CAP_MB * 1_000_000), "committed"),
    Case("zu-gross.pdf", _sparse(15_000_000), "failed", rf"file too large: 15 MB > {CAP_MB} MB"),
    # disguised content
    Case("zip-als.pdf", _bytes(DOCX.read_bytes()), Q, r"content is not a PDF \(looks like a ZIP archive\)"),
    Case("html-als.pdf", _text("<!DOCTYPE html><html><body>x</body></html>"), Q,
         r"content is not a PDF \(looks like an HTML page\)"),
    Case("elf-als.pdf", _bytes(_elf()), Q, r"content is not a document \(looks like an ELF executable\)"),
    Case("elf-als.docx", _bytes(_elf()), Q, r"content is not a document \(looks like an ELF executable\)"),
    Case("exe-als.txt", _bytes(_pe()), Q, r"content is not a document \(looks like a Windows executable\)"),
    Case("png-als.md", _bytes(_png()), "failed", r"binary content in a text file"),
    Case("gzip-als.csv", _bytes(b"\x1f\x8b\x08\x00" + b"abc" * 50), "failed", r"binary content in a text file"),
    Case("bzip2-als.txt", _bytes(b"BZh91AY&SY" + b"\x8c\x9d" * 50), Q,
         r"content is not text \(looks like a bzip2 archive\)"),
    Case("zufall.pdf", _bytes(os.urandom(3000).replace(b"%PDF", b"xxxx")), "failed",
         r"content is not a PDF \(unknown or damaged content\)"),
    Case("text-als.msg", _text(TEXT), "failed", r"content is not an Outlook message \(unknown or damaged content\)"),
    Case("text-als.tif", _text(TEXT), "failed", r"content is not an image \(unknown or damaged content\)"),
    # PDFs
    Case("abgeschnitten.pdf", _truncated(PDF, 0.5), "failed", r"damaged PDF \(it cannot be opened\)"),
    Case("verschluesselt.pdf", _encrypted_pdf, "failed", r"password-protected PDF"),
    Case("kaputte-xref.pdf", _bytes(re.sub(rb"startxref\s+\d+", b"startxref\n999999", PDF.read_bytes())), "committed"),
    Case("muell-vor-header.pdf", _bytes(b"%junk before the header\n" + PDF.read_bytes()), "committed"),
    Case("3000-leere-seiten.pdf", _blank_pdf(3000), "failed", r"too many pages: 3000 > 2000"),
    Case("scan-ohne-text.pdf", _blank_pdf(3), "failed", r"scanned pages without a text layer, and OCR is disabled"),
    Case("bild.tif", _bytes(b"II*\x00" + bytes(200)), "failed", r"an image needs OCR, and OCR is disabled"),
    # Office files
    Case("zip-bombe.docx", _zip_bomb, Q,
         r"zip bomb: declares 3\d\d MB uncompressed from \d+ KB \(more than 200 times its size\)"),
    Case("100000-eintraege.docx", _many_entries, Q, r"Office file with 100,\d\d\d entries \(limit 10,000\)"),
    Case("luegende-groessen.docx", _lying_sizes, Q,
         r"zip bomb: declares 34\.0 GB uncompressed from \d+ KB \(limit 1\.0 GB\)"),
    Case("luegende-anzahl.docx", _lying_count, Q, r"damaged Office file \(its ZIP directory is inconsistent\)"),
    Case("pfad-ausbruch.docx", _office({"../../evil.xml": b"x"}), Q,
         r"unsafe member name in Office file: \.\./\.\./evil\.xml"),
    Case("absolut.docx", _office({"/etc/evil.xml": b"x"}), Q, r"unsafe member name in Office file: /etc/evil\.xml"),
    Case("laufwerk.docx", _office({"C:\\evil.xml": b"x"}), Q, r"unsafe member name in Office file: C:\\evil\.xml"),
    Case("symlink-mitglied.docx", _symlink_member, Q, r"symbolic link in Office file: word/link\.xml"),
    Case("ohne-content-types.docx", _office({}, drop=("[Content_Types].xml",)), "failed",
         r"damaged Office file \(\[Content_Types\]\.xml is missing\)"),
    Case("altes-format.docx", _ole2, "failed", r"password-protected or old-format Office file \(not Office Open XML\)"),
    Case("zufall.docx", _bytes(b"\x00\x01" + os.urandom(2000)), "failed",
         r"content is not an Office document \(unknown or damaged content\)"),
    Case("abgeschnitten.pptx", _truncated(DOCX, 0.6), "failed", r"damaged Office file \(not a valid ZIP archive\)"),
    Case("xxe.docx", _docx_with_body(_PROLOG_XXE, "Geheim: &xxe; Ende"), "committed"),
    Case("billion-laughs.docx", _docx_with_body(_PROLOG_LAUGHS, "Lachen: &j; Ende"), "failed",
         r"damaged or unreadable DOCX file \(XMLSyntaxError: Maximum entity amplification factor exceeded.*"),
    # text, HTML, mail
    Case("skript.html", _text(
        "<html><head><script>alert('x')</script><style>p{}</style></head><body><h1>Urlaub</h1>"
        f"<p>{TEXT}</p><a href=\"javascript:alert(1)\">Klick</a><iframe src=\"http://evil/\"></iframe>"
        "</body></html>"
    ), "committed"),
    Case("kaputtes-utf8.txt", _bytes(TEXT.encode() + b"\xff\xfe\xc3\x28 " + TEXT.encode()), "committed"),
    Case("nul-bytes.txt", _bytes(TEXT.encode() + b"\x00\x00" + TEXT.encode()), "failed",
         r"binary content in a text file"),
    Case("rtl-override.txt", _text("\u202eSICHERHEIT\u202c " + TEXT), "committed"),
    Case("eine-zeile-10mb.txt", _text(TEXT * (10_000_000 // len(TEXT))), "committed"),
    Case("keine-mail.eml", _text("Das ist keine E-Mail, nur ein Satz ohne Kopfzeilen.\n"), "failed",
         r"not an e-mail message \(no headers found\)"),
    Case("nur-leerraum.md", _text(" \n\t\n   \n"), "failed", r"no text found"),
    # names and folders
    Case("<script>alert(1)<\u2044script>.txt", _text(TEXT), "committed"),
    Case("zeilen\numbruch\u202e.txt", _text(TEXT), "committed"),
    Case("n" * 250 + ".txt", _text(TEXT), "committed"),
    Case("/".join(["tief" * 60] * 15) + "/datei.txt", _text(TEXT), "committed"),
    # parsers that break (the sandbox's limits at work on real files in a real batch)
    Case("hang.txt", _text(TEXT), Q, r"parser exceeded its time limit \(10 s\)"),
    Case("segfault.txt", _text(TEXT), Q, r"parser crashed \(signal 11, SIGSEGV\)"),
    Case("blowup.txt", _text(TEXT), Q, r"parser ran out of memory \(limit 1536 MB\)"),
    Case("exit.txt", _text(TEXT), Q, r"parser exited unexpectedly \(exit code 3\)"),
    Case("raises.txt", _text(TEXT), "failed", r"unexpected error: RuntimeError: the parser library failed"),
]
GOOD = ["burlg.md", "kschg-auszug.docx", "hinweisblatt-verbraucherinsolvenz.pdf"]


def _settings(tmp: Path) -> Settings:
    return load_settings(None, env=fake_env(
        tmp, ingest__max_file_mb=str(CAP_MB), ingest__ocr="false", ingest__parse_timeout_s="10",
        ingest__parse_memory_mb="1536", ingest__commit_every="7", ingest__watch="false",
    ))


@dataclass
class Outcome:
    settings: Settings
    worker: Worker
    report: IngestReport
    sources: Path
    states: dict[str, tuple[str, str | None, float | None]]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    tmp = tmp_path_factory.mktemp("hostile")
    sources = tmp / "sources"
    sources.mkdir()
    for case in CASES:
        path = sources / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        case.build(path)
    for name in GOOD:
        (sources / name).write_bytes((EXAMPLES / name).read_bytes())
    # Things discovery must not follow or open: links out of the folder, a link loop, a FIFO.
    (sources / "etc-link").symlink_to("/etc")
    (sources / "passwd.txt").symlink_to("/etc/passwd")
    (sources / "loop").mkdir()
    (sources / "loop" / "zurueck").symlink_to(sources / "loop")
    os.mkfifo(sources / "fifo.txt")
    settings = _settings(tmp)
    worker = Worker(settings, HashingEmbedder(64))
    worker.ingestor = Ingestor(settings, worker.embedder, parser=misbehaving)
    report = worker.sync_sources()
    assert report is not None
    ledger = FileStates(settings.state_path)
    states = {
        str(Path(f.path).relative_to(sources)): (f.state, f.reason, f.seconds) for f in ledger.all()
    }
    ledger.close()
    yield Outcome(settings, worker, report, sources, states)
    worker.close()
    os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].replace(str(TESTS) + os.pathsep, "").replace(str(TESTS), "")


def _indexed(outcome: Outcome) -> dict[str, str]:
    reader = IndexReader(outcome.settings.index_dir, outcome.worker.embedder.identity)
    try:
        return {str(Path(d.path).relative_to(outcome.sources)): d.doc_id for d in reader.documents()}
    finally:
        reader.close()


def test_the_corpus_has_at_least_forty_hostile_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name[:40].replace("\n", "\\n") for c in CASES])
def test_each_hostile_file_ends_in_its_state_with_a_specific_reason(outcome: Outcome, case: Case) -> None:
    state, reason, seconds = outcome.states[case.name]
    assert state == case.state, reason
    if case.reason is None:
        assert reason is None
    else:
        assert reason is not None and re.fullmatch(case.reason, reason), reason
    assert "Traceback" not in (reason or "")
    assert seconds is None or seconds < 60  # bounded: the time limit is 10 s per file
    indexed = _indexed(outcome)
    assert (case.name in indexed) == (state == "committed")


def test_good_files_in_the_same_batch_are_committed(outcome: Outcome) -> None:
    indexed = _indexed(outcome)
    for name in GOOD:
        assert outcome.states[name][0] == "committed"
        assert name in indexed


def test_nothing_outside_the_folder_is_followed_and_no_special_file_is_opened(outcome: Outcome) -> None:
    assert set(outcome.states) == {c.name for c in CASES} | set(GOOD)
    indexed = _indexed(outcome)
    assert all(not p.startswith(("etc-link", "loop")) and p not in ("passwd.txt", "fifo.txt") for p in indexed)


def test_entities_in_office_xml_are_never_resolved_or_expanded(outcome: Outcome) -> None:
    reader = IndexReader(outcome.settings.index_dir, outcome.worker.embedder.identity)
    try:
        texts = {
            name: " ".join(p.text for p in reader.passages(reader.chunk_ids_of([doc_id]), ["public"]))
            for name, doc_id in _indexed(outcome).items()
        }
    finally:
        reader.close()
    assert "root:" not in texts["xxe.docx"]
    assert "alert" not in texts["skript.html"] and "javascript:" not in texts["skript.html"]
    assert "Urlaub" in texts["skript.html"]


def test_the_index_is_consistent_and_the_report_names_every_refusal(outcome: Outcome) -> None:
    from rag.integrity import verify_index

    report = verify_index(outcome.settings.index_dir, outcome.worker.embedder.identity)
    assert report.ok, report.problems
    refused = {str(Path(p).relative_to(outcome.sources)) for p, _ in outcome.report.failed}
    assert refused == {c.name for c in CASES if c.state != "committed"}
    assert outcome.report.error is None


def test_the_worker_keeps_working_after_the_corpus(outcome: Outcome) -> None:
    (outcome.sources / "neu.md").write_text("# Neu\n\nDie Kündigungsfrist beträgt vier Wochen.", encoding="utf-8")
    report = outcome.worker.sync_sources()
    assert report is not None
    assert [Path(p).name for p in report.added] == ["neu.md"]
    assert len(report.still_failed) == sum(c.state != "committed" for c in CASES)


def test_a_parser_that_sees_an_unreadable_file_reports_permission_denied(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, where chmod 000 does not stop reading; the error is injected instead.
    import ingest.pipeline as pipeline

    folder = tmp_path / "sources"
    folder.mkdir()
    (folder / "gesperrt.txt").write_text(TEXT, encoding="utf-8")

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pipeline, "sha256_file", denied)
    with Ingestor(settings, HashingEmbedder(64)) as ingestor:
        report = ingestor.ingest([folder])
    assert report.failed == [(str(folder / "gesperrt.txt"), "cannot read the file (Permission denied)")]


def test_a_file_changing_while_it_is_read_is_ingested_again_by_the_next_sync(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    path = folder / "wachsend.txt"
    path.write_text(TEXT, encoding="utf-8")
    embedder = HashingEmbedder(64)

    def on_stage(changed: Path, stage: str) -> None:
        if stage == "parsing":
            with changed.open("a", encoding="utf-8") as fh:
                fh.write("Nachtrag: 30 Werktage ab 2026.")

    with Ingestor(settings, embedder) as ingestor:
        first = ingestor.ingest([folder], on_stage=on_stage)
        second = ingestor.ingest([folder])
    assert first.added == [str(path)]
    assert second.updated == [str(path)]


