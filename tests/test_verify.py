"""``verify_index`` and ``hauswissen verify/recover/sync``: a healthy index passes, each damage is named."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hauswissen.cli import main
from rag.config import Settings, load_settings
from rag.embedding import EmbedderIdentity, HashingEmbedder
from rag.files import sha256_file
from rag.integrity import verify_index
from rag.jobs import FileStates
from rag.store import CURRENT, MANIFEST, META, VECTORS, IndexReader, read_current
from tests.conftest import build_index


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


@pytest.fixture
def index_dir(tmp_path: Path, embedder: HashingEmbedder) -> Path:
    d = tmp_path / "index"
    build_index(d, embedder)
    return d


def _gen(index_dir: Path) -> Path:
    return index_dir / str(read_current(index_dir))


def _rewrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def _reseal(index_dir: Path, name: str) -> None:
    """Record the file's current checksum in the manifest, so the deeper checks see the damage."""
    gen = _gen(index_dir)
    manifest = json.loads((gen / MANIFEST).read_text())
    manifest["files"][name] = sha256_file(gen / name)
    _rewrite(gen / MANIFEST, json.dumps(manifest).encode())


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    _rewrite(path, bytes(data))


def _truncate(path: Path) -> None:
    _rewrite(path, path.read_bytes()[: path.stat().st_size // 2])


def _sql(index_dir: Path, statement: str) -> None:
    path = _gen(index_dir) / META
    os.chmod(path, 0o644)
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()
    _reseal(index_dir, META)


def test_a_fresh_index_verifies(index_dir: Path, embedder: HashingEmbedder) -> None:
    report = verify_index(index_dir, embedder.identity)
    assert report.ok
    assert report.problems == [] and report.warnings == []
    assert report.generation == 1
    assert set(report.checks) >= {
        "current", "manifest", "checksums", "vectors", "sqlite", "ids", "documents", "access", "fts",
        "counts", "embedder", "dimension",
    }
    assert all(report.checks.values())


def test_an_index_that_was_never_written_is_empty_and_fine(tmp_path: Path, embedder: HashingEmbedder) -> None:
    assert verify_index(tmp_path / "nothing", embedder.identity).ok
    (tmp_path / "empty").mkdir()
    report = verify_index(tmp_path / "empty", embedder.identity)
    assert report.ok and report.generation is None


Damage = Callable[[Path], object]


def _truncate_resealed(index_dir: Path) -> None:
    _truncate(_gen(index_dir) / VECTORS)
    _reseal(index_dir, VECTORS)


def _flip_ids_resealed(index_dir: Path) -> None:
    _flip(_gen(index_dir) / VECTORS, (_gen(index_dir) / VECTORS).stat().st_size - 2)
    _reseal(index_dir, VECTORS)


def _garbage_sqlite_resealed(index_dir: Path) -> None:
    _rewrite(_gen(index_dir) / META, b"SQLite format 3\x00" + os.urandom(8192))
    _reseal(index_dir, META)


_DAMAGE: dict[str, tuple[Damage, str]] = {
    "empty CURRENT": (lambda d: (d / CURRENT).write_text(""), "CURRENT is empty"),
    "garbage CURRENT": (lambda d: (d / CURRENT).write_bytes(b"\xff\x00garbage\n"), "does not name a generation"),
    "CURRENT escapes": (lambda d: (d / CURRENT).write_text("../../etc"), "does not name a generation"),
    "CURRENT names nothing": (lambda d: (d / CURRENT).write_text("gen-999999\n"), "gen-999999, which does not exist"),
    "missing manifest": (lambda d: (_gen(d) / MANIFEST).unlink(), "manifest.json is missing"),
    "garbage manifest": (lambda d: _rewrite(_gen(d) / MANIFEST, b"{not json"), "manifest.json is unreadable"),
    "unknown format": (
        lambda d: _rewrite(
            _gen(d) / MANIFEST, json.dumps({**json.loads((_gen(d) / MANIFEST).read_text()), "format": 99}).encode()
        ),
        "format 99",
    ),
    "bad checksum": (
        lambda d: _rewrite(
            _gen(d) / MANIFEST,
            json.dumps({**json.loads((_gen(d) / MANIFEST).read_text()), "files": {META: "0" * 64, VECTORS: "0" * 64}})
            .encode(),
        ),
        "meta.sqlite: checksum mismatch",
    ),
    "missing vectors": (lambda d: (_gen(d) / VECTORS).unlink(), "vectors.faiss is missing"),
    "truncated FAISS": (lambda d: _truncate(_gen(d) / VECTORS), "vectors.faiss: checksum mismatch"),
    "truncated FAISS, resealed": (_truncate_resealed, "vectors.faiss does not load"),
    "bit-flipped FAISS": (
        lambda d: _flip(_gen(d) / VECTORS, (_gen(d) / VECTORS).stat().st_size // 2), "vectors.faiss: checksum mismatch"
    ),
    # The last bytes of an IndexIDMap2 file are its ids: a flip there loads but names a chunk that is not there.
    "bit-flipped FAISS ids, resealed": (_flip_ids_resealed, "vector ids do not match the chunk ids"),
    "garbage SQLite": (lambda d: _rewrite(_gen(d) / META, os.urandom(8192)), "meta.sqlite: checksum mismatch"),
    "garbage SQLite, resealed": (_garbage_sqlite_resealed, "meta.sqlite is not a readable SQLite database"),
    "chunk without access": (
        lambda d: _sql(d, "DELETE FROM chunk_access WHERE chunk_id = 1"), "1 chunks have no access token"
    ),
    "chunk without document": (
        lambda d: _sql(d, "UPDATE chunks SET doc_id = 'gone' WHERE chunk_id = 1"), "1 chunks belong to no document"
    ),
    "chunk missing from full text": (
        lambda d: _sql(d, "DELETE FROM chunks_fts WHERE rowid = 2"), "full-text rows do not match the chunks"
    ),
    "document count": (lambda d: _sql(d, "DELETE FROM documents WHERE doc_id = 'doc1'"), "the manifest says 3"),
}


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_each_kind_of_damage_is_reported_as_a_problem(
    index_dir: Path, embedder: HashingEmbedder, damage: str
) -> None:
    apply, expected = _DAMAGE[damage]
    apply(index_dir)
    report = verify_index(index_dir, embedder.identity)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems
    assert not all(report.checks.values())
    json.dumps(report.to_dict())  # always serialisable


def test_another_embedder_is_a_problem(index_dir: Path) -> None:
    report = verify_index(index_dir, EmbedderIdentity("other-model", 64, "abc"))
    assert not report.ok
    assert report.checks["embedder"] is False
    assert any("built with embedder hashing" in p and "other-model" in p for p in report.problems)
    assert verify_index(index_dir, None).ok  # without a configured embedder, only the rest is checked


def test_a_dimension_that_disagrees_with_the_vectors_is_a_problem(index_dir: Path) -> None:
    gen = _gen(index_dir)
    manifest = json.loads((gen / MANIFEST).read_text())
    manifest["embedder"]["dimension"] = 32
    _rewrite(gen / MANIFEST, json.dumps(manifest).encode())
    report = verify_index(index_dir)
    assert report.checks["dimension"] is False
    assert any("64-d" in p for p in report.problems)


class _Payload:
    """Unpickling this creates ``marker``: proof that something loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def test_a_stray_pickle_is_a_warning_and_never_unpickled(
    index_dir: Path, embedder: HashingEmbedder, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(marker))
    (index_dir / "index.pkl").write_bytes(payload)
    (_gen(index_dir) / "vectors.pickle").write_bytes(payload)
    report = verify_index(index_dir, embedder.identity)
    assert report.ok
    assert sum("stray pickle" in w for w in report.warnings) == 2
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.search_keyword("Urlaub", 3, ["public"])
    reader.close()
    assert not marker.exists()
    # The payload is live: loading it really would have left the marker.
    check = tmp_path / "payload-works"
    pickle.loads(pickle.dumps(_Payload(check))).close()
    assert check.exists()


def test_crash_leftovers_are_warnings(index_dir: Path, embedder: HashingEmbedder) -> None:
    (index_dir / "staging-0123456789ab").mkdir()
    (index_dir / "gen-000009").mkdir()
    (index_dir / ".CURRENT.abc.tmp").write_text("gen-000009")
    report = verify_index(index_dir, embedder.identity)
    assert report.ok
    assert len(report.warnings) == 3
    assert all("recover removes it" in w for w in report.warnings)


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    config = {
        "paths": {"data_dir": str(tmp_path / "data"), "sources": [str(tmp_path / "sources"), str(tmp_path / "share")]},
        "embedder": {"backend": "hashing", "dimension": 64},
        "llm": {"backend": "scripted"},
        "ingest": {"sandbox": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def cli_settings(config_file: Path, embedder: HashingEmbedder) -> Settings:
    settings = load_settings(config_file)
    build_index(settings.index_dir, embedder)
    return settings


def _cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_exits_0_on_a_healthy_index(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings
) -> None:
    code, out, _ = _cli(capsys, config_file, "verify")
    assert code == 0
    assert out.startswith("index ok: generation 1")
    code, out, _ = _cli(capsys, config_file, "verify", "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"ok", "index_dir", "generation", "problems", "warnings", "checks"}
    assert data["ok"] is True and data["generation"] == 1


def test_cli_verify_exits_1_and_lists_the_problems(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings
) -> None:
    _truncate(_gen(cli_settings.index_dir) / VECTORS)
    code, out, _ = _cli(capsys, config_file, "verify")
    assert code == 1
    assert "index damaged: 1 problem" in out
    assert "  problem: gen-000001/vectors.faiss: checksum mismatch" in out
    code, out, _ = _cli(capsys, config_file, "verify", "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False


def test_cli_recover_removes_leftovers_and_requeues_interrupted_files(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings
) -> None:
    index_dir = cli_settings.index_dir
    (index_dir / "staging-0123456789ab").mkdir()
    (index_dir / "gen-000005").mkdir()
    ledger = FileStates(cli_settings.state_path)
    ledger.set("/srv/a.pdf", "parsing")
    ledger.set("/srv/b.pdf", "committed")
    code, out, _ = _cli(capsys, config_file, "recover", "--json")
    data = json.loads(out)
    assert code == 0
    assert sorted(data["removed"]) == ["gen-000005", "staging-0123456789ab"]
    assert data["requeued_files"] == 1
    assert data["verify"]["ok"] is True and data["verify"]["warnings"] == []
    assert {f.path: f.state for f in ledger.all()} == {"/srv/a.pdf": "queued", "/srv/b.pdf": "committed"}
    ledger.close()
    code, out, _ = _cli(capsys, config_file, "recover")
    assert code == 0
    assert "removed: nothing" in out and "index ok" in out


def test_cli_recover_on_a_garbage_pointer_reports_and_exits_1(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings
) -> None:
    (cli_settings.index_dir / CURRENT).write_text("garbage")
    code, out, err = _cli(capsys, config_file, "recover")
    assert code == 1
    assert "recovery refused" in out and "CURRENT does not name a generation" in out
    assert "Traceback" not in out + err


def test_cli_sync_ingests_available_sources_and_keeps_a_missing_share(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings, embedder: HashingEmbedder
) -> None:
    sources = cli_settings.paths.sources[0]
    sources.mkdir()
    (sources / "reise.txt").write_text("Dienstreisen werden vorab genehmigt.\n", encoding="utf-8")
    code, out, err = _cli(capsys, config_file, "sync", "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == [str((sources / "reise.txt").resolve())]
    share = cli_settings.paths.sources[1]
    assert err.count("missing or empty") == 1 and f"{share} is missing or empty" in err
    reader = IndexReader(cli_settings.index_dir, embedder.identity)
    assert reader.stats().documents == 4  # the three sample documents stay
    reader.close()
    code, out, _ = _cli(capsys, config_file, "sync")
    assert code == 0
    assert "0 documents ingested" in out and "1 unchanged" in out


def test_cli_sync_with_no_source_available_does_nothing(
    capsys: pytest.CaptureFixture[str], config_file: Path, cli_settings: Settings
) -> None:
    code, _, err = _cli(capsys, config_file, "sync")
    assert code == 1
    assert "nothing synced" in err
    assert verify_index(cli_settings.index_dir).generation == 1


def test_a_generation_published_and_pruned_during_verification_is_not_reported_as_damage(
    index_dir: Path, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.integrity as integrity
    from rag.documents import ChunkDraft, DocumentRecord
    from rag.store import IndexWriter

    first = read_current(index_dir)
    checked: list[str] = []
    check_checksums = integrity._check_checksums

    def writer_publishes_meanwhile(gen_dir: Path, *args: object) -> bool:
        checked.append(gen_dir.name)
        if len(checked) == 1:  # two commits by the worker: the generation being read is pruned
            with IndexWriter(index_dir, embedder.identity) as writer:
                for n in range(2):
                    text = f"Neue Notiz {n}"
                    record = DocumentRecord(f"neu{n}", f"/docs/neu{n}.md", "Neu", f"s{n}", "md", access=("public",))
                    writer.upsert_document(record, [ChunkDraft(text, 0, len(text))], embedder.embed([text], "passage"))
                    writer.commit()
            assert not (index_dir / str(first)).exists()
        return check_checksums(gen_dir, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(integrity, "_check_checksums", writer_publishes_meanwhile)
    report = verify_index(index_dir, embedder.identity)

    assert report.ok, report.problems
    assert checked == [first, read_current(index_dir)] and report.generation == int(checked[-1][4:])
