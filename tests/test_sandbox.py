"""The parser sandbox: a hang, crash or memory blow-up fails one file; the child is reused otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sandbox_parsers import misbehaving, speaks_out_of_turn, two_parts, whoami

from ingest import sandbox
from ingest.parsing import parse_file
from ingest.sandbox import SandboxedParser, SandboxLimits, document_from_dict, parser_reference
from rag.errors import DocumentError

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def importable_test_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The child imports the test parsers by name; it inherits this environment.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def note(tmp_path: Path):
    def make(name: str, text: str = "Der Urlaub beträgt 24 Werktage.") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return make


@pytest.fixture
def limited():
    parser = SandboxedParser(SandboxLimits(timeout_s=10, cpu_s=2, memory_mb=1024), misbehaving)
    yield parser
    parser.close()


def test_a_good_file_parses_in_the_child_like_in_process(note) -> None:
    path = note("urlaub.txt")
    with SandboxedParser(SandboxLimits()) as parser:
        doc = parser.parse(path)
    assert doc == parse_file(path)


def test_one_child_serves_many_files(note) -> None:
    with SandboxedParser(SandboxLimits(), whoami) as parser:
        pids = {parser.parse(note(f"n{i}.txt")).elements[0].text for i in range(5)}
        assert parser.starts == 1
    assert len(pids) == 1
    assert pids != {f"pid {os.getpid()}"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("hang.txt", "parser exceeded its time limit (10 s)"),
        ("spin.txt", "parser exceeded its CPU time limit (2 s)"),
        ("segfault.txt", "parser crashed (signal 11, SIGSEGV)"),
        ("abort.txt", "parser crashed (signal 6, SIGABRT)"),
        ("exit.txt", "parser exited unexpectedly (exit code 3)"),
        ("blowup.txt", "parser ran out of memory (limit 1024 MB)"),
    ],
)
def test_a_misbehaving_parse_fails_that_file_only_and_is_quarantined(limited, note, name: str, reason: str) -> None:
    good = note("good.txt")
    assert limited.parse(good).elements

    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        limited.parse(note(name))

    assert caught.value.reason == reason
    assert caught.value.quarantine
    assert time.monotonic() - started < 20
    assert limited.parse(good).elements  # a fresh child takes over
    assert limited.starts == 2


def test_a_parse_error_is_reported_in_one_plain_line_and_the_child_stays(limited, note) -> None:
    with pytest.raises(DocumentError) as caught:
        limited.parse(note("raises.txt"))
    assert caught.value.reason == "unexpected error: RuntimeError: the parser library failed"
    assert not caught.value.quarantine
    assert limited.parse(note("good.txt")).elements
    assert limited.starts == 1


def test_the_parsers_own_document_errors_pass_through(limited, tmp_path: Path) -> None:
    empty = tmp_path / "leer.txt"
    empty.touch()
    with pytest.raises(DocumentError) as caught:
        limited.parse(empty)
    assert caught.value.reason == "the file is empty"
    assert limited.starts == 1


def test_output_a_library_prints_does_not_break_the_protocol(limited, note) -> None:
    doc = limited.parse(note("chatty.txt", "Kündigungsfrist vier Wochen."))
    assert doc.elements[0].text == "Kündigungsfrist vier Wochen."


def test_a_reply_beyond_the_text_cap_is_refused(limited, note, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_REPLY_BASE_BYTES", 100_000)
    with pytest.raises(DocumentError, match=r"parser produced too much text") as caught:
        limited.parse(note("flood.txt"))
    assert caught.value.quarantine
    assert limited.parse(note("good.txt")).elements


@pytest.mark.parametrize(
    "reply",
    [
        [],
        {"title": 1, "kind": "txt", "page_label": "page", "elements": [], "metadata": {}},
        {"title": "t", "kind": "exe", "page_label": "page", "elements": [], "metadata": {}},
        {"title": "t", "kind": "txt", "page_label": "page", "elements": [["x", "script", None, None]], "metadata": {}},
        {"title": "t", "kind": "txt", "page_label": "page", "elements": [["x", "text", "1", None]], "metadata": {}},
        {"title": "t", "kind": "txt", "page_label": "page", "elements": [], "metadata": {"a": 1}},
        {"title": "t", "kind": "txt", "page_label": "page", "elements": [["x"]], "metadata": {}},
    ],
)
def test_a_reply_that_is_not_a_document_is_rejected(reply: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        document_from_dict(reply, tmp_path / "x.txt")


def test_only_module_level_functions_can_be_sandboxed() -> None:
    assert parser_reference(parse_file) == "ingest.parsing:parse_file"
    with pytest.raises(ValueError, match="module-level"):
        parser_reference(lambda path, **_: parse_file(path))  # type: ignore[arg-type, misc]


def test_kill_ends_a_parse_in_flight_at_once(limited, note) -> None:
    import threading

    timer = threading.Timer(0.5, limited.kill)
    timer.start()
    started = time.monotonic()
    with pytest.raises(DocumentError, match="parser crashed"):
        limited.parse(note("hang.txt"))
    assert time.monotonic() - started < 2.5


def test_the_child_dies_with_its_parent(note) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, threading, time
        from pathlib import Path
        from sandbox_parsers import misbehaving
        from ingest.sandbox import SandboxedParser, SandboxLimits
        parser = SandboxedParser(SandboxLimits(timeout_s=600), misbehaving)
        threading.Thread(target=parser.parse, args=(Path({str(note("hang.txt"))!r}),), daemon=True).start()
        while parser._proc is None:
            time.sleep(0.01)
        print(json.dumps({{"child": parser._proc.pid}}), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=TESTS.parent, env=dict(os.environ)
    )
    assert parent.stdout is not None
    child = json.loads(parent.stdout.readline())["child"]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_egress_guard_sees_connection_attempts_of_the_parser_process(tmp_path: Path, note) -> None:
    from egress import no_egress_in_children

    with no_egress_in_children(tmp_path / "guard") as log, SandboxedParser(SandboxLimits(), misbehaving) as parser:
        parser.parse(note("phones-home.txt"))
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("watching ") and "socket.connect -> 192.0.2.10" in lines


@pytest.fixture
def streaming():
    parser = SandboxedParser(SandboxLimits(timeout_s=60), two_parts)
    yield parser
    parser.close()


def test_a_documents_parts_arrive_while_the_child_is_still_parsing(streaming, note) -> None:
    path = note("buch.txt")
    stream = streaming.stream(path)
    first = next(stream)  # the child is now waiting for buch.go: the part came before the parse ended
    assert [e.text for e in first.elements] == ["Seite eins: Der Urlaub beträgt 24 Werktage."]
    path.with_suffix(".go").touch()
    rest = list(stream)

    assert [e.text for p in rest for e in p.elements] == ["Seite zwei: Die Kündigungsfrist beträgt vier Wochen."]
    assert rest[-1].title == "Zwei Seiten"
    whole = note("ganz.txt")
    whole.with_suffix(".go").touch()
    doc = streaming.parse(whole)
    assert doc.title == "Zwei Seiten" and len(doc.elements) == 2
    assert streaming.starts == 1


def test_an_error_after_some_parts_fails_the_file_and_the_child_stays(streaming, note) -> None:
    path = note("fails.txt")
    stream = streaming.stream(path)
    assert next(stream).elements
    path.with_suffix(".go").touch()
    with pytest.raises(DocumentError) as caught:
        list(stream)
    assert caught.value.reason == "page 2 is damaged"
    good = note("gut.txt")
    good.with_suffix(".go").touch()
    assert len(streaming.parse(good).elements) == 2
    assert streaming.starts == 1


def test_a_stream_left_unfinished_ends_the_child_and_the_next_file_gets_its_own_reply(streaming, note) -> None:
    stream = streaming.stream(note("abgebrochen.txt"))
    assert next(stream).elements
    stream.close()
    good = note("gut.txt")
    good.with_suffix(".go").touch()
    doc = streaming.parse(good)
    assert [e.text for e in doc.elements][1].startswith("Seite zwei") and doc.path == good
    assert streaming.starts == 2


def test_the_real_parser_streams_a_pdf_in_pages_that_merge_into_the_whole(tmp_path: Path) -> None:
    from ingest.parsing import stream_file

    pdf = tmp_path / "hinweisblatt.pdf"
    pdf.write_bytes((TESTS.parent / "examples" / "docs" / "hinweisblatt-verbraucherinsolvenz.pdf").read_bytes())
    with SandboxedParser(SandboxLimits(), stream_file) as parser:
        parts = list(parser.stream(pdf))
        assert parser.parse(pdf) == parse_file(pdf)
    assert len(parts) > 1
    assert [e for p in parts for e in p.elements] == parse_file(pdf).elements


def test_what_a_child_writes_between_files_is_never_taken_for_the_next_files_text(note) -> None:
    with SandboxedParser(SandboxLimits(), speaks_out_of_turn) as parser:
        parser.parse(note("forger.txt"))
        time.sleep(1.0)  # the forged line is in the pipe now
        doc = parser.parse(note("naechste.txt", "Die Kantine schließt um 14 Uhr."))
        assert parser.starts == 2  # the child that spoke out of turn was replaced
    assert [e.text for e in doc.elements] == ["Die Kantine schließt um 14 Uhr."]
