"""Parse files in a child process with memory, CPU-time and wall-time limits.

A damaged or hostile file can make a parser hang, crash or eat memory (pdfium and XML parsers have had
such bugs); in a child process that fails only the one file. The child (``python -m ingest.sandbox``)
reads one JSON request per line on stdin and writes one JSON reply per line; it is reused for many files
and replaced after any failure, so a batch of small files pays its start-up (about 0.1 s) once.

A parser may yield a document in parts (:func:`ingest.parsing.stream_file`, a large PDF page by page);
the child writes a ``part`` line for each as it comes (a whole document is one part) and then a ``done``
line, and the parent passes the parts on as they arrive (:meth:`SandboxedParser.stream`). Time and size
limits count for the whole file.

The parent never unpickles anything: the child parses hostile input and might be compromised, so its
replies are plain JSON, checked field by field (:func:`document_from_dict`), and bounded in size.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import logging
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ingest.parsing import SUPPORTED_KINDS, Element, ParsedDocument, merge_parts, parse_file
from rag.errors import DocumentError

if TYPE_CHECKING:
    from rag.config import IngestSettings

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
_ELEMENT_KINDS = frozenset({"title", "text", "list", "table", "code"})
_PAGE_LABELS = frozenset({"page", "slide", "sheet"})
# Extracted text beyond this is not a document anyone can use (hours of embedding), and it is what a
# decompression bomb that slipped past the ZIP checks would produce.
_REPLY_BASE_BYTES = 256 * 1024 * 1024
_REPLY_BYTES_PER_FILE_BYTE = 4
_OUT_OF_MEMORY_REPLY = b'{"memory": true}\n'


class Parser(Protocol):
    """The signature of :func:`ingest.parsing.parse_file` (one document) and of
    :func:`ingest.parsing.stream_file` (the document in parts); a sandboxed one must be a module-level
    function."""

    def __call__(
        self, path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
    ) -> ParsedDocument | Iterator[ParsedDocument]: ...


def parts_of(result: ParsedDocument | Iterator[ParsedDocument]) -> Iterator[ParsedDocument]:
    """What a :class:`Parser` returned, as parts (a whole document is one part)."""
    return iter([result]) if isinstance(result, ParsedDocument) else result


@dataclass(frozen=True)
class SandboxLimits:
    """Per-file limits of the parser process."""

    timeout_s: float = 300.0
    cpu_s: int = 300
    memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> SandboxLimits:
        return cls(settings.parse_timeout_s, settings.parse_cpu_s, settings.parse_memory_mb)


def document_to_dict(doc: ParsedDocument) -> dict[str, Any]:
    """A JSON-ready form of ``doc`` (the inverse of :func:`document_from_dict`)."""
    return {
        "title": doc.title,
        "kind": doc.kind,
        "page_label": doc.page_label,
        "elements": [[e.text, e.kind, e.page, e.heading] for e in doc.elements],
        "metadata": dict(doc.metadata),
    }


def document_from_dict(data: object, path: Path) -> ParsedDocument:
    """Rebuild a parsed document from untrusted JSON data, checking every field's type and value.

    ``path`` is the file the caller asked for; the reply has no say in it.

    Raises:
        ValueError: the data is not a document as :func:`document_to_dict` writes it.
    """
    if not isinstance(data, dict):
        raise ValueError("document is not an object")
    title, kind, page_label = data.get("title"), data.get("kind"), data.get("page_label")
    raw_elements, metadata = data.get("elements"), data.get("metadata")
    if not isinstance(title, str) or kind not in SUPPORTED_KINDS.values() or page_label not in _PAGE_LABELS:
        raise ValueError("bad title, kind or page label")
    if not isinstance(raw_elements, list) or not isinstance(metadata, dict):
        raise ValueError("bad elements or metadata")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("metadata must map strings to strings")
    elements = []
    for item in raw_elements:
        if not (isinstance(item, list) and len(item) == 4):
            raise ValueError("bad element")
        text, element_kind, page, heading = item
        if not isinstance(text, str) or element_kind not in _ELEMENT_KINDS:
            raise ValueError("bad element text or kind")
        if not (page is None or (isinstance(page, int) and not isinstance(page, bool))):
            raise ValueError("bad element page")
        if not (heading is None or isinstance(heading, str)):
            raise ValueError("bad element heading")
        elements.append(Element(text, element_kind, page, heading))
    return ParsedDocument(
        path=path, title=title, kind=str(kind), page_label=str(page_label), elements=elements, metadata=metadata
    )


def parser_reference(parser: Parser) -> str:
    """``module:function`` for a module-level function, the form the child process imports.

    Raises:
        ValueError: ``parser`` cannot be imported by name (a lambda, a local or ``__main__`` function).
    """
    module, name = getattr(parser, "__module__", None), getattr(parser, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        raise ValueError(f"a sandboxed parser must be a module-level function, not {parser!r}")
    if _resolve(f"{module}:{name}") is not parser:
        raise ValueError(f"{module}:{name} does not name {parser!r}")
    return f"{module}:{name}"


def _resolve(reference: str) -> Any:
    module, _, name = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


class SandboxedParser:
    """Parses files in a reused child process; any failure of the child fails only that file.

    Thread-safe (one file at a time). :meth:`close` stops the child; it is also stopped when this
    object is garbage-collected or the interpreter exits.
    """

    def __init__(self, limits: SandboxLimits, parser: Parser = parse_file) -> None:
        self.limits = limits
        self._reference = parser_reference(parser)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0

    def __enter__(self) -> SandboxedParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child process (a later :meth:`parse` starts a new one)."""
        with self._lock:
            self._discard()

    def kill(self) -> None:
        """Kill the child now, even mid-parse (from any thread; the parse in flight then fails)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def parse(
        self, path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
    ) -> ParsedDocument:
        """Parse ``path`` in the child, within the limits.

        Raises:
            DocumentError: what the parser raised, or, with ``quarantine`` set, that the parser hung,
                crashed, ran out of memory or sent an invalid reply.
        """
        return merge_parts(self.stream(path, max_pdf_pages=max_pdf_pages, ocr_languages=ocr_languages))

    def stream(
        self, path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
    ) -> Iterator[ParsedDocument]:
        """Parse ``path`` in the child, yielding each part of the document as the child sends it.

        The time and size limits are for the whole file, the caller's time between parts included (take
        them promptly). Holds this parser until the last part is taken or the iterator is closed; a
        stream left unfinished ends the child.

        Raises:
            DocumentError: as :meth:`parse`, possibly after some parts; those are then not a document.
        """
        path = Path(path)
        where = str(path)
        request = json.dumps(
            {"path": str(path), "max_pdf_pages": max_pdf_pages, "ocr_languages": ocr_languages,
             "cpu_s": self.limits.cpu_s}
        ).encode() + b"\n"
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        with self._lock:
            done = False
            try:
                proc = self._send(request)
                max_reply = _REPLY_BASE_BYTES + _REPLY_BYTES_PER_FILE_BYTE * size
                parts = 0
                for line, more in self._lines(where, proc, max_reply):
                    try:
                        reply = json.loads(line)
                    except (ValueError, RecursionError) as e:
                        raise DocumentError(where, "parser sent an invalid reply", quarantine=True) from e
                    if isinstance(reply, dict) and "part" in reply:
                        parts += 1
                        yield self._part(where, path, reply["part"])
                        continue
                    if more:  # the reply is over, yet the child wrote on
                        raise DocumentError(where, "parser sent an invalid reply", quarantine=True)
                    done = True
                    if isinstance(reply, dict) and reply.get("done") is True:
                        if not parts:
                            raise DocumentError(where, "no text found")
                        return
                    raise self._failure(where, reply)
            finally:
                if not done:
                    self._discard()  # mid-reply: what the child sends next would answer no request

    def _send(self, request: bytes) -> subprocess.Popen[bytes]:
        proc = self._child()
        if _readable(proc):
            # An idle child has nothing to say: what it wrote after its last reply would be taken for
            # this file's. (A guard against stray output only: a child that a hostile file took over
            # reads the requests too and could write into the next reply; the limits are the boundary.)
            self._discard()
            proc = self._child()
        try:
            assert proc.stdin is not None
            proc.stdin.write(request)
            proc.stdin.flush()
        except BrokenPipeError:
            # The idle child died (killed from outside); one fresh start, then it is this file's fault.
            self._discard()
            proc = self._child()
            assert proc.stdin is not None
            proc.stdin.write(request)
            proc.stdin.flush()
        return proc

    def _lines(
        self, where: str, proc: subprocess.Popen[bytes], max_reply: int
    ) -> Iterator[tuple[bytes, bool]]:
        """The reply lines to one request as they arrive, within the file's time and size limits, each with
        whether more bytes came after it already."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.limits.timeout_s
        buffer = bytearray()
        received = scanned = 0  # bytes read; bytes of ``buffer`` known to hold no line end
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                end = buffer.find(b"\n", scanned)
                if end >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    scanned = 0
                    yield line, bool(buffer)
                    continue
                scanned = len(buffer)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise DocumentError(
                        where, f"parser exceeded its time limit ({self.limits.timeout_s:g} s)", quarantine=True
                    )
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise DocumentError(where, self._death_reason(proc), quarantine=True)
                received += len(chunk)
                if received > max_reply:
                    raise DocumentError(
                        where, f"parser produced too much text (over {max_reply // 1_000_000} MB)", quarantine=True
                    )
                buffer += chunk

    def _death_reason(self, proc: subprocess.Popen[bytes]) -> str:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "parser closed its output and stopped answering"
        if code == -signal.SIGXCPU:
            return f"parser exceeded its CPU time limit ({self.limits.cpu_s} s)"
        if code < 0:
            return f"parser crashed (signal {-code}, {_signal_name(-code)})"
        return f"parser exited unexpectedly (exit code {code})"

    @staticmethod
    def _part(where: str, path: Path, data: object) -> ParsedDocument:
        """A part line's document (an invalid one ends the stream, and with it the child)."""
        try:
            return document_from_dict(data, path)
        except ValueError as e:
            raise DocumentError(where, "parser sent an invalid reply", quarantine=True) from e

    def _failure(self, where: str, reply: object) -> DocumentError:
        """What a last reply line other than ``done`` reports; ends the child where it cannot go on."""
        if isinstance(reply, dict):
            if reply.get("memory") is True:
                self._discard()  # the child exits after a MemoryError; reap it now
                return DocumentError(
                    where, f"parser ran out of memory (limit {self.limits.memory_mb} MB)", quarantine=True
                )
            if isinstance(reply.get("error"), str):
                return DocumentError(where, _plain(reply["error"]), quarantine=reply.get("quarantine") is True)
            if isinstance(reply.get("unexpected"), str):
                return DocumentError(where, f"unexpected error: {_plain(reply['unexpected'])}")
        self._discard()
        return DocumentError(where, "parser sent an invalid reply", quarantine=True)

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._discard()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        command = [
            sys.executable, "-m", "ingest.sandbox", "--parser", self._reference,
            "--memory-mb", str(self.limits.memory_mb), "--parent", str(os.getpid()),
        ]
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        self.starts += 1
        return self._proc

    def _discard(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._proc = None
        self._finalizer = None


def _readable(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child's output has bytes (or end of file) waiting right now."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
        return bool(selector.select(0))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the child: EOF asks it to exit; a child busy with a hostile file is killed."""
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=0.05 if proc.poll() is None else None)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _plain(reason: str, limit: int = 500) -> str:
    """A reason from the child, as one line of printable text."""
    text = "".join(ch if ch.isprintable() else " " for ch in reason)
    return " ".join(text.split())[:limit] or "unknown parser error"


# -- the child -----------------------------------------------------------------------------------------


def _limit_self(memory_mb: int) -> None:
    # Hard limits too: code running on hostile input must not be able to raise them again.
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when the parent dies, so a hung parse cannot outlive it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(0)


def _set_cpu_budget(seconds: int) -> None:
    # RLIMIT_CPU counts the process's whole life: move the soft limit to "used so far + this file's share".
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(usage.ru_utime + usage.ru_stime) + seconds + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _line(reply: Mapping[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode() + b"\n"


def _answer(parser: Parser, request: Mapping[str, Any], replies: IO[bytes]) -> bool:
    """Write the reply lines for one request: a ``part`` line for each part as it comes, then ``done`` or
    what went wrong. Returns whether the child must exit now."""
    reply: dict[str, Any] | None
    try:
        _set_cpu_budget(int(request["cpu_s"]))
        parts = parts_of(parser(
            Path(request["path"]), max_pdf_pages=request.get("max_pdf_pages"),
            ocr_languages=request.get("ocr_languages"),
        ))
        for part in parts:
            replies.write(_line({"part": document_to_dict(part)}))
            replies.flush()
        replies.write(_line({"done": True}))
        return False
    except MemoryError:
        # Written after the handler: the traceback keeps the parser's frames, and their memory, alive.
        reply = None
    except DocumentError as e:
        reply = {"error": e.reason, "quarantine": e.quarantine}
    except Exception as e:  # reported to the parent as this file's failure; the child stays usable
        traceback.print_exc()
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        reply = {"unexpected": f"{type(e).__name__}: {message}" if message else type(e).__name__}
    replies.write(_OUT_OF_MEMORY_REPLY if reply is None else _line(reply))
    return reply is None


def main(argv: list[str] | None = None) -> int:
    """The child: serve parse requests from stdin until it closes."""
    options = argparse.ArgumentParser(prog="python -m ingest.sandbox")
    options.add_argument("--parser", default="ingest.parsing:parse_file")
    options.add_argument("--memory-mb", type=int, required=True)
    options.add_argument("--parent", type=int, required=True)
    args = options.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it then closes stdin
    _die_with_parent(args.parent)
    _limit_self(args.memory_mb)
    # Private copies of the protocol pipes; libraries that print or read stdin get stderr and /dev/null.
    requests: IO[bytes] = os.fdopen(os.dup(0), "rb")
    replies: IO[bytes] = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    from rag.offline import enforce_offline_env

    enforce_offline_env()
    parser: Parser = _resolve(args.parser)
    for line in requests:
        try:
            request = json.loads(line)
        except ValueError:
            return 2
        fatal = _answer(parser, request, replies)
        replies.flush()
        if fatal:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
