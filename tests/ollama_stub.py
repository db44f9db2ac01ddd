"""A small wire-compatible Ollama server for tests.

Ollama itself cannot be installed on this machine (there is no Ollama server in Debian, npm or PyPI;
the ``ollama`` packages there are only clients), so its client (``ollama`` / ``langchain-ollama``) is
tested against this wire-compatible stub instead.

It speaks Ollama's HTTP API on 127.0.0.1 as documented (https://docs.ollama.com/api):

- ``GET /api/version`` and ``GET /api/tags`` (the installed models),
- ``POST /api/chat``: NDJSON streaming over chunked transfer encoding, one object per line
  (``{"model", "created_at", "message": {"role": "assistant", "content"}, "done": false}``), then a final
  ``done: true`` line with ``done_reason`` and token counts and nanosecond durations; with
  ``"stream": false`` a single object,
- ``POST /api/embed``: deterministic unit vectors derived from a hash of each input.

Unknown models get Ollama's 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``.
Every request is recorded in ``requests`` for assertions.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received."""

    method: str
    path: str
    body: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _embedding(text: str, dimension: int) -> list[float]:
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    values = [(raw[i % len(raw)] - 127.5) / 127.5 for i in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class OllamaStub:
    """An Ollama-compatible server on a free port of 127.0.0.1; use as a context manager.

    Args:
        reply: The assistant's answer to every chat request, streamed word by word.
        models: Model names reported by ``/api/tags`` and accepted by ``/api/chat`` and ``/api/embed``.
        embedding_dimension: Length of the vectors ``/api/embed`` returns.
    """

    def __init__(
        self,
        reply: str = "Hallo!",
        models: tuple[str, ...] = ("qwen2.5:1.5b",),
        embedding_dimension: int = 8,
    ) -> None:
        self.reply = reply
        self.models = models
        self.embedding_dimension = embedding_dimension
        self.requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> OllamaStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _read_json(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw else {}

            def _send_json(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
                self.wfile.flush()

            def _unknown_model(self, name: str) -> bool:
                if name in stub.models:
                    return False
                self._send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
                return True

            def do_GET(self) -> None:
                stub.requests.append(RecordedRequest("GET", self.path, {}))
                if self.path == "/api/version":
                    self._send_json(200, {"version": "0.12.0"})
                elif self.path == "/api/tags":
                    self._send_json(200, {"models": [stub.tag(name) for name in stub.models]})
                else:
                    self._send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self._read_json()
                stub.requests.append(RecordedRequest("POST", self.path, body))
                if self.path == "/api/chat":
                    self._chat(body)
                elif self.path == "/api/embed":
                    self._embed(body)
                else:
                    self._send_json(404, {"error": "not found"})

            def _chat(self, body: dict[str, Any]) -> None:
                model = str(body.get("model", ""))
                if self._unknown_model(model):
                    return
                started = time.monotonic_ns()
                pieces = re.findall(r"\s*\S+|\s+", stub.reply)
                prompt_tokens = sum(
                    len(str(m.get("content", "")).split()) for m in body.get("messages", [])
                )
                final = {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "stop",
                    "done": True,
                    "total_duration": 0,
                    "load_duration": 1_000_000,
                    "prompt_eval_count": prompt_tokens,
                    "prompt_eval_duration": 2_000_000,
                    "eval_count": len(pieces),
                    "eval_duration": 3_000_000,
                }
                if body.get("stream", True) is False:
                    final["message"] = {"role": "assistant", "content": stub.reply}
                    final["total_duration"] = time.monotonic_ns() - started
                    self._send_json(200, final)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in pieces:
                    line = {
                        "model": model,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": piece},
                        "done": False,
                    }
                    self._send_chunk(json.dumps(line).encode("utf-8") + b"\n")
                final["total_duration"] = time.monotonic_ns() - started
                self._send_chunk(json.dumps(final).encode("utf-8") + b"\n")
                self._send_chunk(b"")

            def _embed(self, body: dict[str, Any]) -> None:
                model = str(body.get("model", ""))
                if self._unknown_model(model):
                    return
                inputs = body.get("input", [])
                texts = [inputs] if isinstance(inputs, str) else list(inputs)
                self._send_json(
                    200,
                    {
                        "model": model,
                        "embeddings": [_embedding(t, stub.embedding_dimension) for t in texts],
                        "total_duration": 4_000_000,
                        "load_duration": 1_000_000,
                        "prompt_eval_count": sum(len(t.split()) for t in texts),
                    },
                )

        return Handler

    @staticmethod
    def tag(name: str) -> dict[str, Any]:
        """The ``/api/tags`` entry Ollama reports for an installed model."""
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 986_000_000,
            "digest": hashlib.sha256(name.encode("utf-8")).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "qwen2",
                "families": ["qwen2"],
                "parameter_size": "1.5B",
                "quantization_level": "Q4_K_M",
            },
        }
