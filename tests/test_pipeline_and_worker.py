"""Ingestion pipeline and worker with the hashing embedder: failures, skips, uploads, crash resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from ingest.worker import Worker
from rag.config import Settings
from rag.embedding import HashingEmbedder
from rag.errors import IndexLockedError
from rag.jobs import JobQueue
from rag.service import Assistant
from rag.store import IndexReader, IndexWriter
from rag.uploads import accept_upload
from tests.conftest import EXAMPLES


@pytest.fixture
def sources(settings: Settings) -> Path:
    folder = settings.paths.sources[0]
    folder.mkdir(parents=True)
    for name in ("burlg.md", "mindestlohn.csv", "hinweisblatt-verbraucherinsolvenz.pdf"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def _embedder(settings: Settings) -> HashingEmbedder:
    return HashingEmbedder(settings.embedder.dimension)


def test_a_broken_file_is_reported_and_does_not_stop_the_batch(settings: Settings, sources: Path) -> None:
    (sources / "kaputt.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    (sources / "leer.txt").write_bytes(b"")
    (sources / "bild.png").write_bytes(b"\x89PNG")  # unsupported types are ignored, not failed
    report = Ingestor(settings, _embedder(settings)).ingest([sources])
    assert sorted(Path(p).name for p in report.added) == [
        "burlg.md", "hinweisblatt-verbraucherinsolvenz.pdf", "mindestlohn.csv",
    ]
    reasons = {Path(p).name: r for p, r in report.failed}
    assert set(reasons) == {"kaputt.pdf", "leer.txt"}
    assert "PDF" in reasons["kaputt.pdf"] and "Traceback" not in reasons["kaputt.pdf"]
    assert "empty" in reasons["leer.txt"]


def test_unchanged_files_are_skipped_even_when_touched(settings: Settings, sources: Path) -> None:
    ingestor = Ingestor(settings, _embedder(settings))
    first = ingestor.ingest([sources])
    (sources / "burlg.md").touch()
    second = ingestor.ingest([sources])
    assert second.documents == 0
    assert len(second.unchanged) == len(first.added)


def test_renamed_folder_content_change_replaces_chunks(settings: Settings, sources: Path) -> None:
    ingestor = Ingestor(settings, _embedder(settings))
    ingestor.ingest([sources])
    (sources / "burlg.md").write_text("# Neu\n\nDer Urlaub beträgt jetzt 30 Werktage.\n", encoding="utf-8")
    report = ingestor.ingest([sources])
    assert [Path(p).name for p in report.updated] == ["burlg.md"]
    passages = Assistant(settings, embedder=_embedder(settings)).search("Urlaub Werktage", k=10)
    texts = " ".join(p.text for p in passages if p.document == "burlg.md")
    assert "30 Werktage" in texts and "24 Werktage" not in texts


def test_ingest_refuses_while_another_writer_holds_the_index(settings: Settings, sources: Path) -> None:
    embedder = _embedder(settings)
    with IndexWriter(settings.index_dir, embedder.identity), pytest.raises(IndexLockedError):
        Ingestor(settings, embedder).ingest([sources])


def _upload(settings: Settings, queue: JobQueue, name: str, data: bytes) -> int:
    return accept_upload(
        data, name, uploads_dir=settings.uploads_dir, queue=queue,
        allowed_extensions=settings.ingest.extensions, max_bytes=10_000_000,
    )


def test_worker_ingests_uploads_and_records_each_outcome(settings: Settings) -> None:
    worker = Worker(settings, embedder=_embedder(settings))
    queue = JobQueue(settings.state_path)
    good = _upload(settings, queue, "../../Reisekosten<script>.md",
                   b"# Reisekosten\n\nKilometergeld: 0,30 Euro je Kilometer.\n")
    bad = _upload(settings, queue, "defekt.docx", b"PK\x03\x04 not really a docx")
    assert worker.run_once(sync_every_s=3600)
    good_job, bad_job = queue.get(good), queue.get(bad)
    assert good_job is not None and good_job.state == "committed"
    assert good_job.display_name == "Reisekosten_script_.md"
    assert Path(good_job.path).resolve().is_relative_to(settings.uploads_dir.resolve())
    assert bad_job is not None and bad_job.state == "failed" and bad_job.reason
    reader = IndexReader(settings.index_dir, _embedder(settings).identity)
    assert [Path(d.path).name for d in reader.documents()] == ["Reisekosten_script_.md"]


def test_worker_resumes_jobs_a_crash_left_half_done(settings: Settings) -> None:
    queue = JobQueue(settings.state_path)
    job = _upload(settings, queue, "notiz.txt", "Die Kantine öffnet um 11:30 Uhr.".encode())
    claimed = queue.claim_next()
    assert claimed is not None and claimed.job_id == job  # a worker took it, then died
    Worker(settings, embedder=_embedder(settings)).run_once(sync_every_s=3600)
    done = queue.get(job)
    assert done is not None and done.state == "committed"


def test_worker_syncs_configured_folders(settings: Settings, sources: Path) -> None:
    worker = Worker(settings, embedder=_embedder(settings))
    worker.run_once(sync_every_s=0)
    reader = IndexReader(settings.index_dir, _embedder(settings).identity)
    assert reader.stats().documents == 3
    (sources / "mindestlohn.csv").unlink()
    worker.run_once(sync_every_s=0)
    reader.refresh()
    assert reader.stats().documents == 2


def test_changing_a_files_access_takes_effect_without_a_content_change(settings: Settings, sources: Path) -> None:
    ingestor = Ingestor(settings, _embedder(settings))
    ingestor.ingest([sources], access=["public"])
    assistant = Assistant(settings, embedder=_embedder(settings))
    assert any(p.document == "burlg.md" for p in assistant.search("Urlaub Werktage", ["public"], k=10))
    report = ingestor.ingest([sources], access=["group:hr"])
    assert len(report.updated) == 3 and report.chunks == 0  # no re-embedding
    assert assistant.search("Urlaub Werktage", ["public"], k=10) == []
    assert any(p.document == "burlg.md" for p in assistant.search("Urlaub Werktage", ["group:hr"], k=10))


def test_empty_access_is_refused_rather_than_made_public(settings: Settings, sources: Path) -> None:
    with pytest.raises(ValueError, match="access"):
        Ingestor(settings, _embedder(settings)).ingest([sources], access=[])


def test_a_sync_that_finds_nothing_new_does_not_copy_the_index(settings: Settings, sources: Path) -> None:
    ingestor = Ingestor(settings, _embedder(settings))
    first = ingestor.ingest([sources])
    again = ingestor.ingest([sources])
    assert again.generation == first.generation
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith("staging-")]
    assert len([p for p in settings.index_dir.iterdir() if p.name.startswith("gen-")]) == 1


def test_the_worker_survives_a_fault_in_one_job(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(settings, embedder=_embedder(settings))
    queue = JobQueue(settings.state_path)
    first = _upload(settings, queue, "a.txt", "Erste Notiz über die Kantine.".encode())
    second = _upload(settings, queue, "b.txt", "Zweite Notiz über den Parkplatz.".encode())
    calls = []
    real = worker.ingestor.ingest

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.ingestor, "ingest", flaky)
    worker.run_once(sync_every_s=3600)
    a, b = queue.get(first), queue.get(second)
    assert a is not None and a.state == "failed" and a.reason == "internal error: OSError"
    assert b is not None and b.state == "committed"


def test_pdfs_over_the_page_cap_are_refused(settings_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory(INGEST__MAX_PDF_PAGES="5")
    folder = tmp_path / "pdfs"
    folder.mkdir()
    shutil.copy(EXAMPLES / "hinweisblatt-verbraucherinsolvenz.pdf", folder / "lang.pdf")
    report = Ingestor(settings, _embedder(settings)).ingest([folder])
    assert report.failed == [(str((folder / "lang.pdf").resolve()), "too many pages: 12 > 5")]


def test_parse_look_ahead_is_bounded_by_file_count_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_PARSE_AHEAD", 3)
    monkeypatch.setattr(pipeline, "_PARSE_AHEAD_BYTES", 100)
    assert pipeline.parse_ahead([], [10, 10, 10, 10]) == 3
    assert pipeline.parse_ahead([10, 10], [10, 10]) == 1
    assert pipeline.parse_ahead([10, 10, 10], [10]) == 0
    assert pipeline.parse_ahead([60], [30, 30]) == 1  # 60 + 30 fits, + 30 more would not
    assert pipeline.parse_ahead([], [500, 1]) == 1  # one file is always parsed, however large
    assert pipeline.parse_ahead([], []) == 0


def test_files_waiting_to_be_parsed_stay_queued_until_their_parse_starts(
    settings_factory, tmp_path: Path
) -> None:
    """The ledger times a file from "parsing": files queued ahead must not count as being worked on."""
    import threading

    from ingest.parsing import parse_file
    from rag.jobs import FileStates

    settings = settings_factory(ingest__sandbox="false")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(5):
        (folder / f"notiz-{i}.txt").write_text(f"Notiz {i}: die Kantine schließt um {i + 12} Uhr.\n", encoding="utf-8")
    first_started, release = threading.Event(), threading.Event()

    def slow_first(path: Path, **options: object) -> object:
        if path.name == "notiz-0.txt":
            first_started.set()
            assert release.wait(30)
        return parse_file(path, **options)  # type: ignore[arg-type]

    ingestor = Ingestor(settings, _embedder(settings), parser=slow_first)  # type: ignore[arg-type]
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(ingestor.ingest([folder])))
    runner.start()
    try:
        assert first_started.wait(30)
        ledger = FileStates(settings.state_path, read_only=True)
        states = {Path(f.path).name: f.state for f in ledger.all()}
        ledger.close()
    finally:
        release.set()
        runner.join(60)
    assert states["notiz-0.txt"] == "parsing"
    assert [states[f"notiz-{i}.txt"] for i in range(1, 5)] == ["queued"] * 4
    assert len(result[0].added) == 5  # type: ignore[attr-defined]


def test_the_embedder_leaves_a_core_to_the_parser_while_a_parse_runs(settings: Settings, sources: Path) -> None:
    class Recording(HashingEmbedder):
        def __init__(self, dimension: int) -> None:
            super().__init__(dimension)
            self.reserved: list[int] = []

        def reserve_cores(self, cores: int) -> None:
            self.reserved.append(cores)

    embedder = Recording(settings.embedder.dimension)
    report = Ingestor(settings, embedder).ingest([sources])
    assert len(report.added) == 3
    assert embedder.reserved == [1, 0] * 3  # one core reserved per parse, given back after each
