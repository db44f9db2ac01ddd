"""The index: FAISS vectors beside a SQLite metadata store, published in atomic generations.

Layout of ``index_dir``::

    CURRENT                 name of the published generation, e.g. "gen-000007" (replaced atomically)
    LOCK                    the single writer's lock (fcntl)
    gen-000007/             immutable once published
        vectors.faiss       IndexIDMap2(IndexFlatIP); ids are chunk ids
        meta.sqlite         documents, chunks, access tokens, full-text index (FTS5)
        manifest.json       generation, embedder identity, counts, sha256 of both files
    staging-*/              a generation being written; removed by recovery

A writer copies the current generation into a staging folder, applies changes, writes and fsyncs every
file, renames the folder to its generation name and then replaces ``CURRENT``. A crash at any point
leaves the previous generation published and intact. No pickle: FAISS's own binary format, SQLite, JSON.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag.documents import ChunkDraft, DocumentRecord, Passage
from rag.embedding import EmbedderIdentity
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError
from rag.files import fsync_dir, fsync_file, sha256_file, write_text_atomic
from rag.text import keyword_document, keyword_query, keyword_query_terms

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
META = "meta.sqlite"
FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    page_label TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    page_end INTEGER,
    section TEXT,
    -- the first 8 bytes of the text's sha256: finds an identical text already embedded (vectors_of)
    text_hash INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS chunk_access (
    chunk_id INTEGER NOT NULL REFERENCES chunks(chunk_id) ON DELETE CASCADE,
    token TEXT NOT NULL,
    PRIMARY KEY (token, chunk_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, tokenize = 'unicode61');
CREATE TABLE IF NOT EXISTS term_chunks (
    term TEXT PRIMARY KEY,
    chunks INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Keyword terms in more than this share of all chunks (and more than _COMMON_MIN chunks) are left out of
# keyword queries: FTS5's BM25 gives such a term a small fraction of a rare term's weight (idf
# log((N - n + 0.5) / (n + 0.5)) is under 0.9 at n = 30 % of N, about 11 for a term in one chunk of 100k),
# but walking its posting list is most of a query's time in a large index. Small indexes keep every term.
_COMMON_SHARE = 0.1
_COMMON_MIN = 2000
# Values bound in one statement, well under SQLite's limit (32,766 since 3.32).
_SQL_VARIABLES = 500

# The named points of IndexWriter.commit, in order; a crash test stops the process at each of them.
COMMIT_POINTS = (
    "sqlite-committed",  # meta.sqlite committed and closed in the staging folder
    "segment-written",  # vectors.faiss written
    "fsynced",  # both files fsynced
    "manifest-written",  # manifest.json written atomically (the staging folder fsynced)
    "generation-renamed",  # staging folder renamed to gen-NNNNNN, index folder fsynced
    "pointer-replaced",  # CURRENT names the new generation: it is published
    "cleanup",  # pruning old generations: once before and after each removal
)


def _commit_point(name: str) -> None:
    """A no-op hook called at each of :data:`COMMIT_POINTS`; fault tests replace it to crash there."""


@dataclass(frozen=True)
class Manifest:
    """What a published generation is: its number, its embedder and its files' checksums."""

    generation: int
    embedder: dict[str, Any]
    documents: int
    chunks: int
    created: float
    files: dict[str, str]
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class IndexStats:
    generation: int
    documents: int
    chunks: int
    created: float | None
    embedder: dict[str, Any] | None


def _new_vector_index(dimension: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def read_current(index_dir: Path) -> str | None:
    """The published generation's folder name, or None for an empty index.

    Raises:
        IndexCorruptError: ``CURRENT`` exists but does not name a generation folder.
    """
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not name.startswith("gen-") or "/" in name or not (index_dir / name).is_dir():
        raise IndexCorruptError(f"{pointer} does not name a generation: {name[:40]!r}")
    return name


def _load_manifest(gen_dir: Path) -> Manifest:
    try:
        return Manifest.from_json((gen_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise IndexCorruptError(f"{gen_dir.name}: unreadable manifest: {e}") from e


def _check_embedder(manifest: Manifest, identity: EmbedderIdentity, where: str) -> None:
    if manifest.embedder != identity.as_dict():
        raise IndexMismatchError(
            f"the index in {where} was built with embedder {manifest.embedder.get('name')} "
            f"({manifest.embedder.get('dimension')}-d, {manifest.embedder.get('fingerprint')}), "
            f"but {identity.name} ({identity.dimension}-d, {identity.fingerprint}) is configured; "
            "re-ingest into a new data_dir or configure the original embedder"
        )


class IndexReader:
    """Read access to the published generation; switches to a newer one on :meth:`refresh`.

    Thread-safe: searches from several threads share one reader.
    """

    def __init__(self, index_dir: Path, identity: EmbedderIdentity, *, verify: bool = True) -> None:
        self.index_dir = Path(index_dir)
        self.identity = identity
        self._verify = verify
        self._lock = threading.RLock()
        self._generation_name: str | None = None
        self._manifest: Manifest | None = None
        self._has_term_table = False
        self._vectors: Any = _new_vector_index(identity.dimension)
        self._db: sqlite3.Connection | None = None
        self._access_cache: dict[frozenset[str], np.ndarray] = {}
        self.refresh()

    @property
    def generation(self) -> int:
        return self._manifest.generation if self._manifest else 0

    def refresh(self) -> bool:
        """Open the published generation if it changed; returns True when it switched.

        The new generation is loaded outside the lock, so searches go on meanwhile; if a writer published
        again and pruned it while loading, the newer one is taken instead.
        """
        for attempt in range(3):
            name = read_current(self.index_dir)
            if name == self._generation_name:
                return False
            if name is None:
                with self._lock:
                    self._swap(None, None, _new_vector_index(self.identity.dimension), None)
                return True
            try:
                manifest, vectors, db = self._load(name)
            except (OSError, sqlite3.Error, IndexCorruptError):
                if attempt < 2 and read_current(self.index_dir) != name:
                    continue
                raise
            with self._lock:
                self._swap(name, manifest, vectors, db)
            return True
        return False

    def _load(self, name: str) -> tuple[Manifest, Any, sqlite3.Connection]:
        gen_dir = self.index_dir / name
        manifest = _load_manifest(gen_dir)
        _check_embedder(manifest, self.identity, str(self.index_dir))
        if self._verify:
            for fname, digest in manifest.files.items():
                if sha256_file(gen_dir / fname) != digest:
                    raise IndexCorruptError(f"{name}/{fname}: checksum mismatch")
        try:
            vectors = faiss.read_index(str(gen_dir / VECTORS))
        except RuntimeError as e:
            raise IndexCorruptError(f"{name}/{VECTORS}: {e}") from e
        uri = f"file:{gen_dir / META}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        # Generations written before term_chunks existed answer term counts from the FTS index (slower).
        db.execute("CREATE VIRTUAL TABLE temp.chunks_vocab USING fts5vocab(main, chunks_fts, 'row')")
        return manifest, vectors, db

    def _swap(
        self,
        name: str | None,
        manifest: Manifest | None,
        vectors: Any,
        db: sqlite3.Connection | None,
    ) -> None:
        old = self._db
        self._generation_name, self._manifest, self._vectors, self._db = name, manifest, vectors, db
        self._access_cache = {}
        self._has_term_table = db is not None and bool(
            db.execute("SELECT 1 FROM sqlite_master WHERE name = 'term_chunks'").fetchone()
        )
        if old is not None:
            old.close()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def stats(self) -> IndexStats:
        m = self._manifest
        if m is None:
            return IndexStats(0, 0, 0, None, None)
        return IndexStats(m.generation, m.documents, m.chunks, m.created, m.embedder)

    def _allowed_ids(self, tokens: frozenset[str]) -> np.ndarray:
        cached = self._access_cache.get(tokens)
        if cached is not None:
            return cached
        assert self._db is not None
        marks = ",".join("?" * len(tokens))
        rows = self._db.execute(
            f"SELECT DISTINCT chunk_id FROM chunk_access WHERE token IN ({marks})",  # noqa: S608
            sorted(tokens),
        ).fetchall()
        ids = np.array(sorted(r[0] for r in rows), dtype=np.int64)
        self._access_cache[tokens] = ids
        return ids

    def search_dense(self, query: np.ndarray, k: int, access: Iterable[str]) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks the caller may see, filtered during the search."""
        tokens = frozenset(access)
        with self._lock:
            if self._db is None or not tokens or self._vectors.ntotal == 0:
                return []
            allowed = self._allowed_ids(tokens)
            if allowed.size == 0:
                return []
            k = min(k, int(allowed.size))
            q = np.asarray(query, dtype=np.float32).reshape(1, -1)
            # Always a selector, IDSelectorAll when every chunk is allowed: with a selector FAISS scans
            # the flat index for one query in one pass on one thread, without it splits the scan over
            # its OpenMP threads, which on 2 cores (beside PyTorch's threads) took 17 ms instead of
            # 6.4 ms at 100k chunks (bench/retrieval.py).
            selector = faiss.IDSelectorBatch(allowed) if allowed.size < self._vectors.ntotal else faiss.IDSelectorAll()
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
            scores, ids = self._vectors.search(q, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def search_keyword(self, query: str, k: int, access: Iterable[str]) -> list[tuple[int, float]]:
        """BM25 over normalised, stemmed terms, restricted to chunks the caller may see."""
        tokens = sorted(set(access))
        with self._lock:
            if self._db is None or not tokens:
                return []
            german, english = keyword_query_terms(query)
            chunks = self._manifest.chunks if self._manifest else 0
            limit = max(_COMMON_SHARE * chunks, _COMMON_MIN)
            common = {t for t, n in self._term_chunks(german + english).items() if n > limit}
            fts_query = keyword_query(query, skip=common)
            if fts_query is None:
                return []
            marks = ",".join("?" * len(tokens))
            rows = self._db.execute(
                # A correlated EXISTS, not "rowid IN (...)": SQLite hands an IN list on rowid to FTS5 as
                # a constraint and re-runs the MATCH once per allowed chunk (seconds at 100k chunks).
                "SELECT f.rowid, bm25(chunks_fts) FROM chunks_fts f WHERE chunks_fts MATCH ? "  # noqa: S608
                f"AND EXISTS (SELECT 1 FROM chunk_access a WHERE a.chunk_id = f.rowid AND a.token IN ({marks})) "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                [fts_query, *tokens, k],
            ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _term_chunks(self, terms: Iterable[str]) -> dict[str, int]:
        """How many chunks hold each term (terms the index does not know are left out). Caller holds the lock."""
        assert self._db is not None
        wanted = sorted(set(terms))
        if not wanted:
            return {}
        source = "term_chunks" if self._has_term_table else "temp.chunks_vocab"
        count = "chunks" if self._has_term_table else "doc"
        rows = self._db.execute(
            f"SELECT term, {count} FROM {source} WHERE term IN ({','.join('?' * len(wanted))})",  # noqa: S608
            wanted,
        )
        return {str(t): int(n) for t, n in rows}

    def term_frequencies(self, terms: Iterable[str]) -> tuple[dict[str, int], int]:
        """How many chunks hold each keyword term (unknown terms left out), and how many chunks there are."""
        with self._lock:
            if self._db is None:
                return {}, 0
            return self._term_chunks(terms), self._manifest.chunks if self._manifest else 0

    def keyword_coverage(self, query: str) -> float:
        """The share of the query's keyword terms that occur anywhere in the index (0..1).

        Taken for the query's German and its English stemming, whichever the index knows better: a
        question in the documents' language scores near 1, one in another language low (only names and
        numbers match), which is when keyword hits are noise.
        """
        forms = [set(f) for f in keyword_query_terms(query)]
        forms = [f for f in forms if f]
        if not forms:
            return 0.0
        with self._lock:
            if self._db is None:
                return 0.0
            known = self._term_chunks(set().union(*forms))
        return max(len(f & known.keys()) / len(f) for f in forms)

    def passages(self, chunk_ids: Sequence[int], access: Iterable[str]) -> list[Passage]:
        """Load chunks by id, in the given order, dropping any the caller may not see."""
        tokens = sorted(set(access))
        if not chunk_ids or not tokens:
            return []
        with self._lock:
            if self._db is None:
                return []
            id_marks = ",".join("?" * len(chunk_ids))
            tok_marks = ",".join("?" * len(tokens))
            rows = self._db.execute(
                "SELECT c.chunk_id, c.doc_id, d.path, d.title, c.text, c.start, c.end, c.page, "  # noqa: S608
                "c.page_end, c.section, d.page_label FROM chunks c JOIN documents d USING (doc_id) "
                f"WHERE c.chunk_id IN ({id_marks}) AND EXISTS (SELECT 1 FROM chunk_access a "
                f"WHERE a.chunk_id = c.chunk_id AND a.token IN ({tok_marks}))",
                [*chunk_ids, *tokens],
            ).fetchall()
        by_id = {
            r[0]: Passage(
                chunk_id=r[0], doc_id=r[1], path=r[2], title=r[3], text=r[4], start=r[5], end=r[6],
                page=r[7], page_end=r[8], section=r[9], page_label=r[10],
            )
            for r in rows
        }
        return [by_id[i] for i in chunk_ids if i in by_id]

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> list[int]:
        """Chunk ids of the given documents, in document then chunk order."""
        if not doc_ids:
            return []
        with self._lock:
            if self._db is None:
                return []
            marks = ",".join("?" * len(doc_ids))
            rows = self._db.execute(
                f"SELECT doc_id, chunk_id FROM chunks WHERE doc_id IN ({marks}) ORDER BY ordinal",  # noqa: S608
                list(doc_ids),
            ).fetchall()
        order = {d: i for i, d in enumerate(doc_ids)}
        return [r[1] for r in sorted(rows, key=lambda r: order[r[0]])]

    def document_metadata(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        with self._lock:
            if self._db is None:
                return {}
            marks = ",".join("?" * len(ids))
            rows = self._db.execute(
                f"SELECT doc_id, metadata FROM documents WHERE doc_id IN ({marks})", ids  # noqa: S608
            ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def documents(self) -> list[DocumentRecord]:
        """Every document in the published generation (for status pages; not access-filtered)."""
        with self._lock:
            if self._db is None:
                return []
            return _read_documents(self._db)

    def chunk_count_by_document(self) -> dict[str, int]:
        with self._lock:
            if self._db is None:
                return {}
            rows = self._db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall()
        return {r[0]: int(r[1]) for r in rows}


def _read_documents(db: sqlite3.Connection) -> list[DocumentRecord]:
    docs = db.execute(
        "SELECT doc_id, path, title, sha256, kind, size, mtime, page_label, metadata FROM documents "
        "ORDER BY path"
    ).fetchall()
    access: dict[str, set[str]] = {}
    for doc_id, token in db.execute(
        "SELECT DISTINCT c.doc_id, a.token FROM chunk_access a JOIN chunks c USING (chunk_id)"
    ):
        access.setdefault(doc_id, set()).add(token)
    return [
        DocumentRecord(
            doc_id=r[0], path=r[1], title=r[2], sha256=r[3], kind=r[4], size=r[5], mtime=r[6],
            page_label=r[7], access=tuple(sorted(access.get(r[0], ()))), metadata=json.loads(r[8]),
        )
        for r in docs
    ]


def text_hash(text: str) -> int:
    """The first 8 bytes of ``text``'s sha256 as a signed 64-bit integer (SQLite's INTEGER)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big", signed=True)


def _backfill_text_hashes(db: sqlite3.Connection) -> None:
    """Give an index written before ``chunks.text_hash`` existed the column, its values and its index."""
    if "text_hash" not in {row[1] for row in db.execute("PRAGMA table_info(chunks)")}:
        db.execute("ALTER TABLE chunks ADD COLUMN text_hash INTEGER")
        last = -1
        while rows := db.execute(
            "SELECT chunk_id, text FROM chunks WHERE chunk_id > ? ORDER BY chunk_id LIMIT 1000", (last,)
        ).fetchall():
            db.executemany("UPDATE chunks SET text_hash = ? WHERE chunk_id = ?", [(text_hash(t), i) for i, t in rows])
            last = rows[-1][0]
    db.execute("CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks(text_hash)")


def _backfill_term_chunks(db: sqlite3.Connection) -> None:
    """Fill ``term_chunks`` for an index written before the table existed."""
    if db.execute("SELECT 1 FROM term_chunks LIMIT 1").fetchone() or not db.execute(
        "SELECT 1 FROM chunks LIMIT 1"
    ).fetchone():
        return
    db.execute("CREATE VIRTUAL TABLE temp.fts_rows USING fts5vocab(main, chunks_fts, 'row')")
    db.execute("INSERT INTO term_chunks (term, chunks) SELECT term, doc FROM temp.fts_rows")
    db.execute("DROP TABLE temp.fts_rows")


class IndexWriter:
    """The single writer. Use as a context manager; changes become visible on :meth:`commit`.

    Opening it runs :meth:`recover`; ``recovered`` lists what that removed.

    Raises:
        IndexLockedError: another process holds the writer lock.
        IndexMismatchError: the published index was built with another embedder.
    """

    def __init__(self, index_dir: Path, identity: EmbedderIdentity) -> None:
        self.index_dir = Path(index_dir)
        self.identity = identity
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = (self.index_dir / "LOCK").open("a+")
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            self._lock_fh.close()
            raise IndexLockedError(
                f"index locked: another hauswissen process is writing {self.index_dir}"
            ) from e
        try:
            self.recovered: list[str] = self.recover()
            current = read_current(self.index_dir)
            self._base_generation = _load_manifest(self.index_dir / current).generation if current else 0
        except BaseException:
            self._lock_fh.close()
            raise
        self._staging: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._vectors: Any | None = None
        self._dirty = False
        # A generation folder renamed during the commit in progress, not yet named by CURRENT.
        self._renamed: str | None = None

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recover(self) -> list[str]:
        """Remove staging folders, unpublished generations and temporary files a crash left behind;
        returns their names."""
        removed = []
        current = read_current(self.index_dir)
        for entry in self.index_dir.iterdir():
            stale_gen = entry.name.startswith("gen-") and current is not None and entry.name > current
            stale_gen = stale_gen or (entry.name.startswith("gen-") and current is None)
            if entry.is_dir() and (entry.name.startswith("staging-") or stale_gen):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed

    def _begin(self) -> tuple[sqlite3.Connection, Any]:
        if self._db is not None and self._vectors is not None:
            return self._db, self._vectors
        staging = self.index_dir / f"staging-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        current = read_current(self.index_dir)
        db = sqlite3.connect(staging / META)
        if current is not None:
            gen_dir = self.index_dir / current
            manifest = _load_manifest(gen_dir)
            _check_embedder(manifest, self.identity, str(self.index_dir))
            self._base_generation = manifest.generation
            src = sqlite3.connect(f"file:{gen_dir / META}?mode=ro", uri=True)
            try:
                src.backup(db)
            finally:
                src.close()
            vectors = faiss.read_index(str(gen_dir / VECTORS))
        else:
            vectors = _new_vector_index(self.identity.dimension)
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(_SCHEMA)
        _backfill_text_hashes(db)
        _backfill_term_chunks(db)
        self._staging, self._db, self._vectors = staging, db, vectors
        return db, vectors

    def documents(self) -> list[DocumentRecord]:
        """Documents including pending changes; reads the published generation until a change starts,
        so a sync that finds nothing to do never copies the index."""
        if self._db is not None:
            return _read_documents(self._db)
        current = read_current(self.index_dir)
        if current is None:
            return []
        gen_dir = self.index_dir / current
        _check_embedder(_load_manifest(gen_dir), self.identity, str(self.index_dir))
        db = sqlite3.connect(f"file:{gen_dir / META}?mode=ro&immutable=1", uri=True)
        try:
            return _read_documents(db)
        finally:
            db.close()

    def upsert_document(
        self, record: DocumentRecord, chunks: Sequence[ChunkDraft], vectors: np.ndarray
    ) -> list[int]:
        """Replace ``record``'s chunks (by doc_id or path) with ``chunks``; returns the new chunk ids."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.identity.dimension):
            raise ValueError(f"vectors shape {vectors.shape} does not match {len(chunks)} chunks")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain non-finite values")
        db, index = self._begin()
        for (old_id,) in db.execute(
            "SELECT doc_id FROM documents WHERE doc_id = ? OR path = ?", (record.doc_id, record.path)
        ).fetchall():
            self._delete(db, index, old_id)
        db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.doc_id, record.path, record.title, record.sha256, record.kind, record.size,
                record.mtime, record.page_label, time.time(), json.dumps(record.metadata, ensure_ascii=False),
            ),
        )
        ids = []
        access = record.access
        if not access:
            raise ValueError(f"{record.path}: no access tokens; unknown access must not default to public")
        for ordinal, chunk in enumerate(chunks):
            cur = db.execute(
                "INSERT INTO chunks (doc_id, ordinal, text, start, end, page, page_end, section, text_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.doc_id, ordinal, chunk.text, chunk.start, chunk.end, chunk.page,
                    chunk.page_end, chunk.section, text_hash(chunk.text),
                ),
            )
            chunk_id = int(cur.lastrowid or 0)
            ids.append(chunk_id)
            heading = f"{record.title} {chunk.section or ''} "
            terms = keyword_document(heading + chunk.text)
            db.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (chunk_id, terms))
            db.executemany(
                "INSERT INTO term_chunks (term, chunks) VALUES (?, 1) "
                "ON CONFLICT (term) DO UPDATE SET chunks = chunks + 1",
                [(t,) for t in set(terms.split())],
            )
            db.executemany(
                "INSERT INTO chunk_access (chunk_id, token) VALUES (?, ?)", [(chunk_id, t) for t in access]
            )
        if ids:
            index.add_with_ids(vectors, np.array(ids, dtype=np.int64))
        self._dirty = True
        return ids

    def vectors_of(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of chunks (published or pending) whose text is exactly one of ``texts``.

        A chunk's vector depends only on its text and the embedder, which is the same for the whole
        index, so a text already indexed need not be embedded again: the unchanged sections of an edited
        file, a copied file, a disclaimer repeated in every document. Call it before
        :meth:`upsert_document` replaces a document's chunks, or their vectors are gone.
        """
        by_hash = {text_hash(t): t for t in dict.fromkeys(texts)}
        if not by_hash:
            return {}
        db, vectors = self._begin()
        found: dict[str, np.ndarray] = {}
        hashes = list(by_hash)
        for start in range(0, len(hashes), _SQL_VARIABLES):
            part = hashes[start:start + _SQL_VARIABLES]
            # One row per distinct text: a disclaimer in 10,000 chunks needs one vector, not 10,000 rows.
            rows = db.execute(
                "SELECT MIN(chunk_id), text_hash, text FROM chunks "  # noqa: S608
                f"WHERE text_hash IN ({','.join('?' * len(part))}) GROUP BY text_hash, text",
                part,
            ).fetchall()
            for chunk_id, digest, text in rows:
                if text == by_hash[digest] and text not in found:
                    found[text] = np.asarray(vectors.reconstruct(int(chunk_id)), dtype=np.float32)
        return found

    def set_access(self, doc_id: str, access: Sequence[str]) -> None:
        """Replace the access tokens of every chunk of a document (no re-embedding)."""
        if not access:
            raise ValueError(f"{doc_id}: no access tokens")
        db, _ = self._begin()
        ids = [r[0] for r in db.execute("SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,))]
        db.executemany("DELETE FROM chunk_access WHERE chunk_id = ?", [(i,) for i in ids])
        db.executemany(
            "INSERT INTO chunk_access (chunk_id, token) VALUES (?, ?)", [(i, t) for i in ids for t in access]
        )
        self._dirty = True

    def move_document(
        self, doc_id: str, *, new_doc_id: str, path: str, size: int, mtime: float, title: str
    ) -> bool:
        """Give an indexed document a new id and path: a renamed or moved file with the same content.

        Its chunks, vectors and access tokens are kept (nothing is re-embedded); only a changed
        ``title`` re-indexes the chunks' keyword terms, which include it. Returns False when
        ``doc_id`` is not indexed.
        """
        db, _ = self._begin()
        old = db.execute("SELECT title FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if old is None:
            return False
        db.execute(
            "INSERT INTO documents SELECT ?, ?, ?, sha256, kind, ?, ?, page_label, ingested_at, metadata "
            "FROM documents WHERE doc_id = ?",
            (new_doc_id, path, title, size, mtime, doc_id),
        )
        db.execute("UPDATE chunks SET doc_id = ? WHERE doc_id = ?", (new_doc_id, doc_id))
        db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        if title != old[0]:
            rows = db.execute(
                "SELECT c.chunk_id, c.section, c.text, f.terms FROM chunks c "
                "JOIN chunks_fts f ON f.rowid = c.chunk_id WHERE c.doc_id = ?",
                (new_doc_id,),
            ).fetchall()
            for chunk_id, section, text, old_terms in rows:
                terms = keyword_document(f"{title} {section or ''} " + text)
                self._count_terms(db, set(old_terms.split()), -1)
                self._count_terms(db, set(terms.split()), +1)
                db.execute("UPDATE chunks_fts SET terms = ? WHERE rowid = ?", (terms, chunk_id))
            db.execute("DELETE FROM term_chunks WHERE chunks <= 0")
        self._dirty = True
        return True

    @staticmethod
    def _count_terms(db: sqlite3.Connection, terms: set[str], delta: int) -> None:
        db.executemany(
            "INSERT INTO term_chunks (term, chunks) VALUES (?, ?) "
            "ON CONFLICT (term) DO UPDATE SET chunks = chunks + excluded.chunks",
            [(t, delta) for t in terms],
        )

    def delete_document(self, doc_id: str) -> bool:
        """Remove a document and its chunks; returns False if it was not indexed."""
        db, index = self._begin()
        found = self._delete(db, index, doc_id)
        self._dirty = self._dirty or found
        return found

    def delete_path(self, path: str) -> bool:
        db, _ = self._begin()
        row = db.execute("SELECT doc_id FROM documents WHERE path = ?", (path,)).fetchone()
        if row is None:
            return False
        return self.delete_document(row[0])

    @staticmethod
    def _delete(db: sqlite3.Connection, index: Any, doc_id: str) -> bool:
        ids = [r[0] for r in db.execute("SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,))]
        if ids:
            index.remove_ids(np.array(ids, dtype=np.int64))
            for (terms,) in db.execute(
                f"SELECT terms FROM chunks_fts WHERE rowid IN ({','.join('?' * len(ids))})", ids  # noqa: S608
            ).fetchall():
                db.executemany(
                    "UPDATE term_chunks SET chunks = chunks - 1 WHERE term = ?", [(t,) for t in set(terms.split())]
                )
            db.execute("DELETE FROM term_chunks WHERE chunks <= 0")
            db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        cur = db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return cur.rowcount > 0

    def commit(self) -> int:
        """Publish pending changes as a new generation; returns its number (the old one if unchanged).

        Raises:
            OSError: a write, fsync or rename failed (disk full, I/O error, read-only folder). The
                published generation is unchanged and the pending changes are dropped, as by
                :meth:`rollback`; the writer can take new changes.
        """
        if not self._dirty or self._db is None or self._vectors is None or self._staging is None:
            return self._base_generation
        try:
            generation, gen_name = self._publish(self._db, self._vectors, self._staging)
        except BaseException:
            self._abandon()
            raise
        finally:
            self._renamed = None
        self._staging, self._vectors, self._dirty = None, None, False
        self._base_generation = generation
        self._prune(keep=gen_name)
        return generation

    def _publish(self, db: sqlite3.Connection, vectors: Any, staging: Path) -> tuple[int, str]:
        db.commit()
        n_docs = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        n_chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        if n_chunks != vectors.ntotal:
            raise IndexCorruptError(f"{n_chunks} chunk rows but {vectors.ntotal} vectors; not committed")
        db.execute("PRAGMA journal_mode = DELETE")
        db.close()
        self._db = None
        _commit_point("sqlite-committed")
        try:
            faiss.write_index(vectors, str(staging / VECTORS))
        except RuntimeError as e:  # FAISS reports a failed fwrite (disk full, I/O error) this way
            raise OSError(errno.EIO, f"cannot write {staging / VECTORS}: {e}") from e
        _commit_point("segment-written")
        for name in (META, VECTORS):
            fsync_file(staging / name)
        _commit_point("fsynced")
        generation = max(self._base_generation, self._latest_generation()) + 1
        manifest = Manifest(
            generation=generation,
            embedder=self.identity.as_dict(),
            documents=int(n_docs),
            chunks=int(n_chunks),
            created=time.time(),
            files={name: sha256_file(staging / name) for name in (META, VECTORS)},
        )
        # Also fsyncs the staging folder, which makes its other entries durable too.
        write_text_atomic(staging / MANIFEST, manifest.to_json())
        _commit_point("manifest-written")
        gen_name = f"gen-{generation:06d}"
        os.rename(staging, self.index_dir / gen_name)
        self._staging, self._renamed = None, gen_name
        fsync_dir(self.index_dir)
        _commit_point("generation-renamed")
        write_text_atomic(self.index_dir / CURRENT, gen_name + "\n")
        _commit_point("pointer-replaced")
        return generation, gen_name

    def _abandon(self) -> None:
        """After a failed commit: drop the pending changes and a renamed but unpublished generation."""
        self.rollback()
        gen_name = self._renamed
        if gen_name is None:
            return
        # CURRENT may already name it when only the fsync after replacing the pointer failed: keep it then.
        with contextlib.suppress(OSError, IndexCorruptError):
            if read_current(self.index_dir) != gen_name:
                shutil.rmtree(self.index_dir / gen_name, ignore_errors=True)

    def _latest_generation(self) -> int:
        numbers = [
            int(p.name[4:]) for p in self.index_dir.glob("gen-*") if p.is_dir() and p.name[4:].isdigit()
        ]
        return max(numbers, default=0)

    def _prune(self, keep: str) -> None:
        # Keep the previous generation too: a reader may still be switching away from it.
        gens = sorted(p for p in self.index_dir.glob("gen-*") if p.is_dir())
        _commit_point("cleanup")
        for old in gens[:-2]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
                _commit_point("cleanup")

    def rollback(self) -> None:
        """Drop pending changes."""
        if self._db is not None:
            self._db.close()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._staging, self._db, self._vectors, self._dirty = None, None, None, False

    def close(self) -> None:
        """Drop uncommitted changes and release the lock."""
        self.rollback()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
        self._lock_fh.close()

