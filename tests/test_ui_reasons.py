"""Failure reasons in the German UI: every reason the ingestion can write has a German text."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.reasons import has_translation, reason_text

REPO = Path(__file__).resolve().parent.parent
# Where reasons are written: DocumentError(where, reason), Run.fail(key, reason), queue.update(id, state,
# reason) and the sandbox's description of a dead parser.
REASON_SOURCES = ("ingest/validation.py", "ingest/parsing.py", "ingest/ocr.py", "ingest/sandbox.py",
                  "ingest/pipeline.py", "ingest/worker.py")
# Written by helpers the scan does not follow.
OTHER_REASONS = ("unknown parser error", "could not write the index (1)", "embedding failed: 1")


# Expressions that pass on a reason written elsewhere (and scanned there), or a library's own message.
PASSED_ON = {"_plain(reply['error'])", "_plain(reply['unexpected'])", "self._death_reason(proc)", "e.reason",
             "reason", "str(e)", "report.failed[0][1]", "error"}


def _render(node: ast.expr, names: dict[str, ast.expr]) -> Iterator[str]:
    """The texts an expression can produce, every computed part written as "1"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _render(node.body, names)
        yield from _render(node.orelse, names)
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):  # f"..."[:300]
        yield from _render(node.value, names)
    elif ast.unparse(node) in PASSED_ON:
        return
    elif isinstance(node, ast.JoinedStr):
        texts = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                texts = [t + str(part.value) for t in texts]
                continue
            assert isinstance(part, ast.FormattedValue)
            inner = part.value
            options = (
                list(_render(names[inner.id], names)) if isinstance(inner, ast.Name) and inner.id in names else ["1"]
            )
            texts = [t + o for t in texts for o in options]
        yield from texts
    else:
        raise AssertionError(f"cannot tell which reasons {ast.unparse(node)!r} writes: add it to the scan")


def _reasons(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {  # module-level texts, such as INDEX_WRITE_FAILURE
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for t in node.targets if isinstance(t, ast.Name)
    }
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        names = dict(constants)
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.JoinedStr):
                names.update({t.id: node.value for t in node.targets if isinstance(t, ast.Name)})
        for node in ast.walk(function):
            reason: ast.expr | None = None
            if isinstance(node, ast.Call):
                callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                position = {"DocumentError": 1, "fail": 1, "update": 2}.get(callee)
                if position is not None and len(node.args) > position:
                    reason = node.args[position]
                    if callee == "update" and not (
                        isinstance(node.args[1], ast.Constant) and node.args[1].value == "failed"
                    ):
                        reason = None
            elif isinstance(node, ast.Return) and function.name == "_death_reason":
                reason = node.value
            if reason is not None:
                for text in _render(reason, names):
                    yield node.lineno, text


def test_every_reason_the_ingestion_writes_has_a_german_text() -> None:
    found = [(f"{name}:{line}", text) for name in REASON_SOURCES for line, text in _reasons(REPO / name)]
    found += [("elsewhere", text) for text in OTHER_REASONS]
    assert len(found) >= 50, found  # the scan sees the reasons (a refactoring must not blind it)
    missing = [(where, text) for where, text in found if not has_translation(text)]
    assert not missing, f"reasons without a German text in ui/reasons.py: {missing}"
    for _, text in found:
        german = reason_text(text, "de")
        assert german != text and "{" not in german, (text, german)


@pytest.mark.parametrize(
    ("reason", "german"),
    [
        ("file too large: 612 MB > 200 MB", "Datei zu groß: 612 MB > 200 MB"),
        ("zip bomb: declares 34.0 GB uncompressed from 39 KB (limit 1.0 GB)",
         "ZIP-Bombe: 39 KB groß, entpackt angeblich 34,0 GB (höchstens 1,0 GB)"),
        ("damaged or unreadable DOCX file (XMLSyntaxError: Maximum entity amplification factor exce",
         "Beschädigte oder unlesbare DOCX-Datei (XMLSyntaxError: Maximum entity amplification factor exce)"),
        ("Office file with 100,003 entries (limit 10,000)", "Office-Datei mit 100.003 Einträgen (höchstens 10.000)"),
        ("content is not a PDF (looks like a ZIP archive)", "Der Inhalt ist kein PDF (sieht aus wie ein ZIP-Archiv)"),
        ("content is not an Outlook message (unknown or damaged content)",
         "Der Inhalt ist keine Outlook-Nachricht (unbekannter oder beschädigter Inhalt)"),
        ("no text found", "Kein Text gefunden"),
        ("no text found (not even by OCR)", "Kein Text gefunden (auch nicht per Texterkennung)"),
        ("scanned pages without a text layer, and OCR is disabled",
         "Gescannte Seiten ohne Textebene, und die Texterkennung (OCR) ist ausgeschaltet"),
        ("parser crashed (signal 11, SIGSEGV)", "Das Leseprogramm ist abgestürzt (Signal 11, SIGSEGV)"),
        ("parser exceeded its time limit (0.5 s)", "Das Leseprogramm hat sein Zeitlimit überschritten (0,5 s)"),
        ("could not write the index (No space left on device)",
         "Der Index konnte nicht geschrieben werden (No space left on device); "
         "beim nächsten Lauf wird es erneut versucht"),
    ],
)
def test_reasons_read_in_german_with_their_numbers_and_names(reason: str, german: str) -> None:
    assert reason_text(reason, "de") == german
    assert reason_text(reason, "en") == reason


def test_an_unknown_reason_is_shown_as_written_and_never_interpreted() -> None:
    hostile = "**fett** [klick](javascript:alert(1)) {reason} <img src=x>"
    assert reason_text(hostile, "de") == hostile
    # Variable parts are carried over literally; escaping them is the caller's job, as for any text.
    assert reason_text("unsafe member name in Office file: ../{x}<b>", "de") == (
        "Unsicherer Name in der Office-Datei: ../{x}<b>"
    )


def test_every_kind_of_content_the_validation_names_has_a_german_name() -> None:
    from ingest import validation
    from ui import reasons

    seen = {what for _, what in validation._SIGNATURES} | {"a Windows executable", "an HTML page"}
    assert seen <= set(reasons._THINGS), seen - set(reasons._THINGS)
    expected = {name for name, _ in validation._EXPECTED.values()}
    assert expected <= set(reasons._NOT_KINDS), expected - set(reasons._NOT_KINDS)
