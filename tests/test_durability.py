"""Faults during commits: kill -9 at each named point and at random, I/O errors, two writers.

Pass means: after recovery the index is exactly the old or exactly the new generation, it verifies,
and every file the ledger calls committed is in it.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import rag.store
from ingest.pipeline import Ingestor
from rag.config import Settings, load_settings
from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import HashingEmbedder
from rag.errors import IndexLockedError
from rag.files import sha256_file
from rag.integrity import verify_index
from rag.jobs import FileStates
from rag.store import COMMIT_POINTS, IndexReader, IndexWriter, read_current
from tests.conftest import REPO, build_index, fake_env

# Runs one ingest of the folders in argv[3:]; dies by SIGKILL at the argv[2]-th time the commit
# point argv[1] is reached ("" never). Prints "ready" once everything is imported.
_CHILD = r"""
import os, signal, sys
from pathlib import Path

import rag.store

point, nth = sys.argv[1], int(sys.argv[2])
seen = []


def crash_at(name):
    if name == point:
        seen.append(name)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)


rag.store._commit_point = crash_at

from ingest.pipeline import Ingestor
from rag.config import load_settings
from rag.embedding import create_embedder

settings = load_settings(None)
embedder = create_embedder(settings.embedder)
print("ready", flush=True)
with Ingestor(settings, embedder) as ingestor:
    report = ingestor.ingest([Path(p) for p in sys.argv[3:]], access=["public"])
print("done", report.generation, report.failed, flush=True)
"""

Docs = set[tuple[str, str]]


def _settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return fake_env(tmp_path, ingest__sandbox="false", **extra)


def _child_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUSWISSEN")}
    env.update(settings_env, HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", PYTHONPATH=str(REPO))
    return env


def _embedder(settings: Settings) -> HashingEmbedder:
    return HashingEmbedder(settings.embedder.dimension)


def _ingest(settings: Settings, folder: Path) -> Any:
    with Ingestor(settings, _embedder(settings)) as ingestor:
        return ingestor.ingest([folder], access=["public"])


def _indexed(settings: Settings) -> Docs:
    reader = IndexReader(settings.index_dir, _embedder(settings).identity)
    try:
        return {(d.path, d.sha256) for d in reader.documents()}
    finally:
        reader.close()


def _on_disk(folder: Path) -> Docs:
    return {(str(p.resolve()), sha256_file(p)) for p in sorted(folder.iterdir())}


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # A new version must differ in size or mtime even on a coarse clock.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _recover_and_verify(settings: Settings) -> None:
    with IndexWriter(settings.index_dir, _embedder(settings).identity):
        pass
    report = verify_index(settings.index_dir, _embedder(settings).identity)
    assert report.ok, report.problems
    assert report.warnings == []
    leftovers = [p.name for p in settings.index_dir.iterdir() if p.name.startswith(("staging-", "."))]
    assert leftovers == []


def _ledger_committed(settings: Settings) -> list[tuple[str, int, float]]:
    ledger = FileStates(settings.state_path)
    try:
        return [(f.path, f.size, f.mtime) for f in ledger.all(["committed"])]
    finally:
        ledger.close()


def _assert_acknowledged_work_is_indexed(settings: Settings) -> None:
    reader = IndexReader(settings.index_dir, _embedder(settings).identity)
    try:
        indexed = {d.path: (d.size, d.mtime) for d in reader.documents()}
    finally:
        reader.close()
    for path, size, mtime in _ledger_committed(settings):
        assert indexed.get(path) == (size, mtime), f"the ledger says {path} is committed, the index disagrees"


def _run_child(settings_env: dict[str, str], point: str, nth: int, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, point, str(nth), str(folder)],
        env=_child_env(settings_env), cwd=REPO, capture_output=True, text=True, timeout=120,
    )


_KILLS = [(point, 1) for point in COMMIT_POINTS] + [("cleanup", 2)]


@pytest.mark.parametrize(("point", "nth"), _KILLS, ids=[f"{p}-{n}" for p, n in _KILLS])
def test_kill_at_each_commit_point_leaves_the_old_or_the_new_generation(
    tmp_path: Path, point: str, nth: int
) -> None:
    settings_env = _settings_env(tmp_path)
    settings = load_settings(None, env=settings_env)
    folder = tmp_path / "sources"
    folder.mkdir()
    for name in "abcde":
        _write(folder / f"{name}.txt", f"Dokument {name}: Urlaub wird schriftlich beantragt. Kennung {name}{name}x.\n")
    _ingest(settings, folder)
    _write(folder / "a.txt", "Dokument a, zweite Fassung: Urlaub wird per Formular beantragt.\n")
    _ingest(settings, folder)  # a second generation, so the next commit prunes the first one
    old = _indexed(settings)
    assert old == _on_disk(folder)

    _write(folder / "b.txt", "Dokument b, geändert: Überstunden werden im Folgemonat ausgeglichen.\n")
    _write(folder / "f.txt", "Dokument f ist neu: Dienstreisen werden vorab genehmigt.\n")
    (folder / "c.txt").unlink()
    new = _on_disk(folder)

    child = _run_child(settings_env, point, nth, folder)
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stdout, child.stderr[-2000:])

    _recover_and_verify(settings)
    after = _indexed(settings)
    published = COMMIT_POINTS.index(point) >= COMMIT_POINTS.index("pointer-replaced")
    assert after == (new if published else old)
    _assert_acknowledged_work_is_indexed(settings)

    report = _ingest(settings, folder)
    assert report.failed == []
    assert _indexed(settings) == new
    assert verify_index(settings.index_dir, _embedder(settings).identity).ok


def test_kill_during_the_very_first_commit_leaves_an_empty_index(tmp_path: Path) -> None:
    settings_env = _settings_env(tmp_path)
    settings = load_settings(None, env=settings_env)
    folder = tmp_path / "sources"
    folder.mkdir()
    _write(folder / "a.txt", "Urlaub wird schriftlich beantragt.\n")
    child = _run_child(settings_env, "generation-renamed", 1, folder)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert [p.name for p in settings.index_dir.glob("gen-*")] == ["gen-000001"]  # renamed, not published
    _recover_and_verify(settings)
    assert _indexed(settings) == set()
    assert list(settings.index_dir.glob("gen-*")) == []
    _assert_acknowledged_work_is_indexed(settings)
    _ingest(settings, folder)
    assert _indexed(settings) == _on_disk(folder)


def _canary(i: int) -> str:
    return "kanari" + "".join("bcdfghjklm"[int(c)] for c in f"{i:03d}") + "x"


def _committed_count(state_path: Path) -> int:
    try:
        db = sqlite3.connect(f"{state_path.as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT COUNT(*) FROM files WHERE state = 'committed'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kill_during_a_long_ingest_keeps_every_committed_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    # Many small chunks per file, so the run publishes many generations.
    settings_env = _settings_env(
        tmp_path, ingest__commit_every="5", chunking__max_tokens="20", chunking__overlap_tokens="0"
    )
    settings = load_settings(None, env=settings_env)
    folder = tmp_path / "sources"
    folder.mkdir()
    files = 200
    for i in range(files):
        body = "".join(f"Absatz {j} der Notiz {i}: Urlaub wird schriftlich beantragt.\n\n" for j in range(20))
        _write(folder / f"n{i:03d}.txt", f"Notiz {i}: das Kennwort lautet {_canary(i)}.\n\n{body}")

    # Kill after a random number of files is committed, plus a random fraction of a commit's time.
    threshold, jitter = rng.randint(1, 150), rng.uniform(0.0, 0.05)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "", "0", str(folder)],
        env=_child_env(settings_env), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while _committed_count(settings.state_path) < threshold and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.01)
        time.sleep(jitter)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"

    _recover_and_verify(settings)
    _assert_acknowledged_work_is_indexed(settings)
    committed = {path for path, _, _ in _ledger_committed(settings)}
    assert len(committed) >= threshold
    reader = IndexReader(settings.index_dir, _embedder(settings).identity)
    try:
        for path in committed:
            i = int(Path(path).stem[1:])
            hits = reader.passages([c for c, _ in reader.search_keyword(_canary(i), 3, ["public"])], ["public"])
            assert path in {p.path for p in hits}, f"{path} is committed but not searchable"
    finally:
        reader.close()

    ledger = FileStates(settings.state_path)
    try:
        ledger.requeue_interrupted()  # what the restarted worker does first
    finally:
        ledger.close()
    report = _ingest(settings, folder)
    assert report.failed == []
    assert committed <= set(report.unchanged), "files committed before the kill were embedded again"
    assert len(_indexed(settings)) == files
    assert verify_index(settings.index_dir, _embedder(settings).identity).ok


# --- I/O faults -----------------------------------------------------------------------------------

_FAULTS = [
    ("faiss.write_index", 1),
    ("fsync_file", 1),
    ("fsync_file", 2),
    ("write_text_atomic", 1),  # the manifest
    ("os.rename", 1),
    ("fsync_dir", 1),
    ("write_text_atomic", 2),  # CURRENT
]
_ERRNOS = [errno.ENOSPC, errno.EIO, errno.EROFS]


def _inject(monkeypatch: pytest.MonkeyPatch, target: str, nth: int, code: int) -> list[object]:
    """Make the ``nth`` call of ``target`` (a name as rag.store uses it) raise OSError(code)."""
    owner: Any = rag.store
    if "." in target:
        module, target = target.split(".")
        owner = getattr(rag.store, module)
    real = getattr(owner, target)
    calls: list[object] = []

    def faulty(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == nth:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, target, faulty)
    return calls


def _note(embedder: HashingEmbedder, n: int) -> tuple[DocumentRecord, list[ChunkDraft], Any]:
    text = f"Notiz {n}: Dienstwagen werden über das Portal gebucht."
    chunks = [ChunkDraft(text, 0, len(text))]
    return DocumentRecord(f"note{n}", f"/docs/note{n}.md", "Notiz", f"sha-note{n}", "md"), chunks, embedder.embed(
        [text], "passage"
    )


@pytest.mark.parametrize("code", _ERRNOS, ids=[errno.errorcode[c] for c in _ERRNOS])
@pytest.mark.parametrize(("target", "nth"), _FAULTS, ids=[f"{t}-{n}" for t, n in _FAULTS])
def test_an_io_error_during_commit_leaves_the_published_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, nth: int, code: int
) -> None:
    embedder = HashingEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(index_dir, embedder)
    before = read_current(index_dir)
    assert before is not None
    reader = IndexReader(index_dir, embedder.identity)
    docs_before = {d.doc_id for d in reader.documents()}
    hits_before = reader.search_keyword("Urlaub", 5, ["public"])
    assert hits_before

    writer = IndexWriter(index_dir, embedder.identity)
    try:
        writer.upsert_document(*_note(embedder, 1))
        calls = _inject(monkeypatch, target, nth, code)
        with pytest.raises(OSError) as raised:
            writer.commit()
        monkeypatch.undo()
        assert raised.value.errno == code
        assert len(calls) == nth

        assert read_current(index_dir) == before
        report = verify_index(index_dir, embedder.identity)
        assert report.ok, report.problems
        assert report.generation == int(before[4:])
        # The failed commit cleans up after itself: no staging folder, no unpublished generation.
        assert report.warnings == []
        assert {d.doc_id for d in IndexReader(index_dir, embedder.identity).documents()} == docs_before
        assert reader.search_keyword("Urlaub", 5, ["public"]) == hits_before
        assert reader.refresh() is False
        assert reader.search_keyword("Urlaub", 5, ["public"]) == hits_before

        writer.rollback()
        writer.upsert_document(*_note(embedder, 2))
        generation = writer.commit()
    finally:
        writer.close()
    assert generation > int(before[4:])
    with IndexWriter(index_dir, embedder.identity) as again:
        assert again.recovered == []
    assert not list(index_dir.glob("staging-*"))
    assert reader.refresh() is True
    assert {d.doc_id for d in reader.documents()} == docs_before | {"note2"}
    assert reader.search_keyword("Dienstwagen", 5, ["public"])
    assert verify_index(index_dir, embedder.identity).ok
    reader.close()


def test_a_commit_after_a_failed_one_does_not_pretend_to_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(index_dir, embedder)
    with IndexWriter(index_dir, embedder.identity) as writer:
        writer.upsert_document(*_note(embedder, 1))
        _inject(monkeypatch, "faiss.write_index", 1, errno.ENOSPC)
        with pytest.raises(OSError):
            writer.commit()
        monkeypatch.undo()
        # The failed change is gone; a new one starts from the published generation.
        assert "note1" not in {d.doc_id for d in writer.documents()}
        writer.upsert_document(*_note(embedder, 2))
        assert writer.commit() == 2
    assert {d.doc_id for d in IndexReader(index_dir, embedder.identity).documents()} >= {"note2"}


def test_a_failed_faiss_write_is_reported_as_an_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = HashingEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(index_dir, embedder)

    def full_disk(*_: object) -> None:
        raise RuntimeError("Error in faiss::FileIOWriter::operator(): fwrite failed")  # how FAISS reports it

    with IndexWriter(index_dir, embedder.identity) as writer:
        writer.upsert_document(*_note(embedder, 1))
        monkeypatch.setattr(rag.store.faiss, "write_index", full_disk)
        with pytest.raises(OSError, match="fwrite failed"):
            writer.commit()
    monkeypatch.undo()
    assert verify_index(index_dir, embedder.identity).ok


# --- two writers ----------------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_index_locked(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64)
    with IndexWriter(tmp_path / "index", embedder.identity), pytest.raises(IndexLockedError, match="index locked"):
        IndexWriter(tmp_path / "index", embedder.identity)
    IndexWriter(tmp_path / "index", embedder.identity).close()  # free again once the first closed


def test_cli_ingest_while_another_process_writes_says_index_locked(tmp_path: Path) -> None:
    settings_env = _settings_env(tmp_path)
    settings = load_settings(None, env=settings_env)
    folder = tmp_path / "sources"
    folder.mkdir()
    _write(folder / "a.txt", "Urlaub wird schriftlich beantragt.\n")
    (tmp_path / "config.yaml").write_text("{}\n", encoding="utf-8")  # not the repository's config
    with IndexWriter(settings.index_dir, _embedder(settings).identity):
        result = subprocess.run(
            [sys.executable, "-m", "hauswissen", "ingest", str(folder)],
            env=_child_env(settings_env), cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    assert result.returncode != 0
    assert "index locked" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
