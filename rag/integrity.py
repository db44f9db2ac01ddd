"""Checks that a stored index keeps every invariant the writer promises (``hauswissen verify``).

:func:`verify_index` reads the published generation without changing anything and never raises on a
damaged index: each broken invariant becomes a problem in plain words. Files it finds but does not need
(a stray ``*.pkl``) are reported and never opened.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag.embedding import EmbedderIdentity
from rag.files import sha256_file
from rag.store import CURRENT, FORMAT_VERSION, MANIFEST, META, VECTORS, Manifest

_GENERATION = re.compile(r"gen-(\d{6,})")
_PICKLES = (".pkl", ".pickle")


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_index`.

    ``ok`` is True when there are no ``problems``; ``warnings`` are harmless leftovers (recovery or the
    next writer removes them). ``checks`` maps each check that was run to whether it passed; a check
    that could not run because an earlier one failed is False.
    """

    index_dir: str
    generation: int | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, name: str, passed: bool, problem: str | None = None) -> bool:
        """Record a check (``problem`` is added when it failed); returns ``passed``."""
        self.checks[name] = self.checks.get(name, True) and passed
        if not passed and problem:
            self.problems.append(problem)
        return passed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ok, index_dir, generation, problems, warnings, checks."""
        return {
            "ok": self.ok,
            "index_dir": self.index_dir,
            "generation": self.generation,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "checks": dict(self.checks),
        }


def verify_index(index_dir: Path, identity: EmbedderIdentity | None = None) -> VerifyReport:
    """Check the published generation in ``index_dir`` and report every broken invariant.

    Checked: ``CURRENT`` names an existing generation (no ``CURRENT`` and no generation is an empty,
    valid index); the manifest is readable, of a known format and names its generation; every file's
    sha256 matches the manifest; the FAISS file loads, its vector count equals the chunk rows and the
    manifest, and its ids are exactly the chunk ids; every chunk has a document and at least one access
    token; full-text rows and term counts match the chunks; the document count matches the manifest;
    the embedder recorded in the manifest equals ``identity`` (when given) and its dimension the FAISS
    dimension; SQLite's ``PRAGMA integrity_check`` says ``ok``. Leftover staging folders, unpublished
    generations, temporary files and any ``*.pkl``/``*.pickle`` file are warnings.

    Never raises on a damaged index; an unexpected error becomes a problem too. It takes no lock, so it
    can run beside the worker: when a writer publishes meanwhile (and prunes the generation being read),
    the problems that caused are not reported; the new generation is verified instead (up to
    ``_ATTEMPTS`` times).
    """
    index_dir = Path(index_dir)
    for _ in range(_ATTEMPTS):
        report = VerifyReport(index_dir=str(index_dir))
        try:
            _verify(index_dir, identity, report)
        except Exception as e:  # the report is the answer, whatever the files look like
            report.problems.append(f"verification stopped: {type(e).__name__}: {e}")
        if report.ok or _published(index_dir) == report.generation:
            break
    return report


_ATTEMPTS = 3


def _published(index_dir: Path) -> int | None:
    """The generation number ``CURRENT`` names now (None when it names none), read as the check reads it."""
    probe = VerifyReport(index_dir=str(index_dir))
    _check_current(index_dir, probe)
    return probe.generation


def _verify(index_dir: Path, identity: EmbedderIdentity | None, report: VerifyReport) -> None:
    if not index_dir.is_dir():  # nothing ingested yet: an empty index
        report.check("current", True)
        return
    name = _check_current(index_dir, report)
    _check_leftovers(index_dir, name, report)
    if name is None:
        return
    gen_dir = index_dir / name
    manifest = _check_manifest(gen_dir, report)
    files_ok = _check_checksums(gen_dir, manifest, report)
    vectors = _load_vectors(gen_dir, manifest, files_ok, report)
    db = _open_meta(gen_dir, files_ok, report)
    if db is None:
        return
    try:
        _check_meta(db, vectors, manifest, report)
    finally:
        db.close()
    if manifest is not None:
        _check_embedder(manifest, vectors, identity, report)


def _check_current(index_dir: Path, report: VerifyReport) -> str | None:
    """The generation CURRENT names when it exists; None for an empty or unreadable pointer."""
    pointer = index_dir / CURRENT
    try:
        raw = pointer.read_bytes()
    except FileNotFoundError:
        report.check("current", True)
        return None
    except OSError as e:
        report.check("current", False, f"{CURRENT} cannot be read: {e.strerror or e}")
        return None
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        report.check("current", False, f"{CURRENT} is empty: it names no generation")
        return None
    if not _GENERATION.fullmatch(text):
        report.check("current", False, f"{CURRENT} does not name a generation: {text[:40]!r}")
        return None
    if not (index_dir / text).is_dir():
        report.check("current", False, f"{CURRENT} names {text}, which does not exist")
        return None
    report.check("current", True)
    report.generation = int(text[4:])
    return text


def _check_leftovers(index_dir: Path, current: str | None, report: VerifyReport) -> None:
    published = int(current[4:]) if current else None
    for entry in sorted(index_dir.iterdir()):
        match = _GENERATION.fullmatch(entry.name)
        if entry.name.startswith("staging-") and entry.is_dir():
            report.warnings.append(f"leftover staging folder {entry.name} (recover removes it)")
        elif match and entry.is_dir() and (published is None or int(match.group(1)) > published):
            report.warnings.append(f"unpublished generation {entry.name} (recover removes it)")
        elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
            report.warnings.append(f"leftover temporary file {entry.name} (recover removes it)")
    for path in sorted(index_dir.rglob("*")):
        if path.suffix.lower() in _PICKLES:
            report.warnings.append(f"stray pickle file {path.relative_to(index_dir)} (never loaded; remove it)")


def _check_manifest(gen_dir: Path, report: VerifyReport) -> Manifest | None:
    path = gen_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.check("manifest", False, f"{gen_dir.name}/{MANIFEST} is missing")
        return None
    except (OSError, ValueError) as e:
        report.check("manifest", False, f"{gen_dir.name}/{MANIFEST} is unreadable: {e}")
        return None
    fields = Manifest.__dataclass_fields__
    required = [k for k, f in fields.items() if k != "format"]
    if not isinstance(data, dict) or any(k not in data for k in required):
        missing = [k for k in required if not isinstance(data, dict) or k not in data]
        report.check("manifest", False, f"{gen_dir.name}/{MANIFEST} lacks {', '.join(missing)}")
        return None
    manifest = Manifest(**{k: data[k] for k in fields if k in data})
    ok = report.check(
        "manifest",
        manifest.format == FORMAT_VERSION,
        f"{gen_dir.name}/{MANIFEST} has format {manifest.format!r}; this version reads format {FORMAT_VERSION}",
    )
    types_ok = (
        isinstance(manifest.generation, int) and isinstance(manifest.documents, int)
        and isinstance(manifest.chunks, int) and isinstance(manifest.files, dict)
        and isinstance(manifest.embedder, dict)
    )
    if not report.check("manifest", types_ok, f"{gen_dir.name}/{MANIFEST} has fields of the wrong type"):
        return None
    report.check(
        "manifest",
        f"gen-{manifest.generation:06d}" == gen_dir.name,
        f"{gen_dir.name}/{MANIFEST} says generation {manifest.generation}",
    )
    return manifest if ok else None


def _check_checksums(gen_dir: Path, manifest: Manifest | None, report: VerifyReport) -> dict[str, bool]:
    """Per file (meta, vectors): True when its checksum matched, False when it did not; files without a
    manifest to compare against are left out."""
    if manifest is None:
        report.check("checksums", False)
        return {}
    results: dict[str, bool] = {}
    for name in (META, VECTORS):
        if name not in manifest.files:
            report.check("checksums", False, f"{gen_dir.name}/{MANIFEST} lists no checksum for {name}")
    for name, digest in sorted(manifest.files.items()):
        if "/" in name or name.startswith("."):
            report.check("checksums", False, f"{gen_dir.name}/{MANIFEST} names a file outside it: {name!r}")
            continue
        try:
            actual = sha256_file(gen_dir / name)
        except FileNotFoundError:
            results[name] = report.check("checksums", False, f"{gen_dir.name}/{name} is missing")
            continue
        except OSError as e:
            results[name] = report.check("checksums", False, f"{gen_dir.name}/{name} cannot be read: {e}")
            continue
        results[name] = report.check(
            "checksums", actual == digest, f"{gen_dir.name}/{name}: checksum mismatch (the file changed or is damaged)"
        )
    return results


def _load_vectors(
    gen_dir: Path, manifest: Manifest | None, files_ok: dict[str, bool], report: VerifyReport
) -> Any | None:
    path = gen_dir / VECTORS
    if files_ok.get(VECTORS) is False:
        # Known to be damaged: reading a corrupt FAISS file is pointless and can ask for huge allocations.
        report.check("vectors", False)
        return None
    if not path.is_file():
        report.check("vectors", False, f"{gen_dir.name}/{VECTORS} is missing")
        return None
    try:
        vectors = faiss.read_index(str(path))
    except Exception as e:  # FAISS raises RuntimeError (or MemoryError) on a damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        report.check("vectors", False, f"{gen_dir.name}/{VECTORS} does not load: {first[:200]}")
        return None
    if not report.check(
        "vectors", hasattr(vectors, "id_map"), f"{gen_dir.name}/{VECTORS} is not an id-mapped FAISS index"
    ):
        return None
    return vectors


def _open_meta(gen_dir: Path, files_ok: dict[str, bool], report: VerifyReport) -> sqlite3.Connection | None:
    path = gen_dir / META
    if not path.is_file():
        report.check("sqlite", False, f"{gen_dir.name}/{META} is missing")
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as e:
        report.check("sqlite", False, f"{gen_dir.name}/{META} does not open: {e}")
        return None
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as e:
        db.close()
        report.check("sqlite", False, f"{gen_dir.name}/{META} is not a readable SQLite database: {e}")
        return None
    result = "; ".join(str(r[0]) for r in rows[:5])
    if not report.check("sqlite", result == "ok", f"{gen_dir.name}/{META} fails its integrity check: {result}"):
        db.close()
        return None
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    missing = {"documents", "chunks", "chunk_access", "chunks_fts"} - tables
    if not report.check("sqlite", not missing, f"{gen_dir.name}/{META} lacks tables: {', '.join(sorted(missing))}"):
        db.close()
        return None
    return db


def _ids(rows: list[tuple[Any, ...]]) -> set[int]:
    return {int(r[0]) for r in rows}


def _difference(missing: set[int], missing_what: str, extra: set[int], extra_what: str) -> str:
    """E.g. "2 chunks without a vector (ids 4, 7)"; the parts that are empty are left out."""
    parts = []
    for ids, what in ((missing, missing_what), (extra, extra_what)):
        if ids:
            shown = ", ".join(map(str, sorted(ids)[:5])) + (" ..." if len(ids) > 5 else "")
            parts.append(f"{len(ids)} {what} (ids {shown})")
    return "; ".join(parts)


def _check_meta(db: sqlite3.Connection, vectors: Any | None, manifest: Manifest | None, report: VerifyReport) -> None:
    try:
        chunk_ids = _ids(db.execute("SELECT chunk_id FROM chunks").fetchall())
        n_docs = int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        orphans = int(
            db.execute(
                "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d USING (doc_id) WHERE d.doc_id IS NULL"
            ).fetchone()[0]
        )
        no_access = int(
            db.execute(
                "SELECT COUNT(*) FROM chunks c "
                "WHERE NOT EXISTS (SELECT 1 FROM chunk_access a WHERE a.chunk_id = c.chunk_id)"
            ).fetchone()[0]
        )
        stray_access = int(
            db.execute(
                "SELECT COUNT(*) FROM chunk_access a "
                "WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.chunk_id = a.chunk_id)"
            ).fetchone()[0]
        )
        empty_docs = int(
            db.execute(
                "SELECT COUNT(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.doc_id)"
            ).fetchone()[0]
        )
        fts_ids = _ids(db.execute("SELECT rowid FROM chunks_fts").fetchall())
    except sqlite3.Error as e:
        report.check("sqlite", False, f"{META} cannot be queried: {e}")
        return
    report.check("documents", orphans == 0, f"{orphans} chunks belong to no document")
    if empty_docs:
        report.warnings.append(f"{empty_docs} documents have no chunks")
    report.check("access", no_access == 0, f"{no_access} chunks have no access token (nobody could find them)")
    report.check("access", stray_access == 0, f"{stray_access} access tokens belong to no chunk")
    report.check(
        "fts",
        fts_ids == chunk_ids,
        "full-text rows do not match the chunks: "
        + _difference(
            chunk_ids - fts_ids, "chunks not in the full-text index", fts_ids - chunk_ids, "rows without a chunk"
        ),
    )
    _check_terms(db, report)
    if manifest is not None:
        report.check(
            "counts", n_docs == manifest.documents,
            f"{n_docs} documents in {META}, but the manifest says {manifest.documents}",
        )
        report.check(
            "counts", len(chunk_ids) == manifest.chunks,
            f"{len(chunk_ids)} chunks in {META}, but the manifest says {manifest.chunks}",
        )
    if vectors is None:
        report.check("ids", False)
        return
    ntotal = int(vectors.ntotal)
    report.check("ids", ntotal == len(chunk_ids), f"{ntotal} vectors but {len(chunk_ids)} chunk rows")
    if manifest is not None:
        report.check(
            "ids", ntotal == manifest.chunks, f"{ntotal} vectors, but the manifest says {manifest.chunks} chunks"
        )
    vector_ids = faiss.vector_to_array(vectors.id_map).astype(np.int64)
    id_set = {int(i) for i in vector_ids}
    report.check("ids", len(id_set) == vector_ids.size, f"{vector_ids.size - len(id_set)} duplicate vector ids")
    report.check(
        "ids",
        id_set == chunk_ids,
        "vector ids do not match the chunk ids: "
        + _difference(chunk_ids - id_set, "chunks without a vector", id_set - chunk_ids, "vectors without a chunk"),
    )


def _check_terms(db: sqlite3.Connection, report: VerifyReport) -> None:
    """``term_chunks`` (when present) holds, per term, the number of chunks whose keyword terms have it.

    Counted from the terms the writer stored, split as the writer splits them: FTS5's own tokenizer
    folds a few characters differently (``ã`` to ``a``), which is harmless for search but not the
    bookkeeping this checks.
    """
    has_table = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'term_chunks'").fetchone()
    if not has_table:
        return
    try:
        expected: Counter[str] = Counter()
        for (terms,) in db.execute("SELECT terms FROM chunks_fts"):
            expected.update(set(str(terms).split()))
        stored = {str(t): int(n) for t, n in db.execute("SELECT term, chunks FROM term_chunks WHERE chunks > 0")}
    except sqlite3.Error as e:
        report.check("terms", False, f"term counts cannot be checked: {e}")
        return
    differ = sum(1 for t in expected.keys() | stored.keys() if expected.get(t, 0) != stored.get(t, 0))
    report.check("terms", differ == 0, f"{differ} term counts do not match the full-text index")


def _check_embedder(
    manifest: Manifest, vectors: Any | None, identity: EmbedderIdentity | None, report: VerifyReport
) -> None:
    recorded = manifest.embedder
    if identity is not None:
        report.check(
            "embedder",
            recorded == identity.as_dict(),
            f"the index was built with embedder {recorded.get('name')} ({recorded.get('dimension')}-d, "
            f"{recorded.get('fingerprint')}), but {identity.name} ({identity.dimension}-d, "
            f"{identity.fingerprint}) is configured",
        )
    if vectors is not None:
        report.check(
            "dimension",
            recorded.get("dimension") == int(vectors.d),
            f"the manifest says {recorded.get('dimension')}-d vectors, but {VECTORS} holds {int(vectors.d)}-d",
        )
