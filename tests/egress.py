"""An audit hook that records every attempt to reach a non-loopback address from this process."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_recorders: list[list[str]] = []
_installed = False


def is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths (bytes/str without host part) are handled by the caller
    if host in {"localhost", "localhost.localdomain", "", "0.0.0.0", "::"}:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # any other DNS name would leave the machine
    return ip.is_loopback or ip.is_unspecified


def audit(event: str, args: tuple[Any, ...]) -> None:
    """The hook itself (public so that tests can feed it events without touching the network)."""
    if not _recorders:
        return
    if event in {"socket.connect", "socket.sendto", "socket.sendmsg"}:
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) == socket.AF_UNIX or not isinstance(address, tuple):
            return
        host = address[0]
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host is None:
            return
    else:
        return
    if not is_local(host):
        for rec in _recorders:
            rec.append(f"{event} -> {host}")


@contextmanager
def no_egress() -> Iterator[list[str]]:
    """Record non-loopback connection attempts made inside the block; yields the list of them."""
    global _installed
    if not _installed:
        sys.addaudithook(audit)
        _installed = True
    record: list[str] = []
    _recorders.append(record)
    try:
        yield record
    finally:
        _recorders.remove(record)


@contextmanager
def no_egress_in_children(folder: Path) -> Iterator[Path]:
    """Record connection attempts of Python child processes started inside the block (the parser
    sandbox) in ``folder/egress.log``: a ``sitecustomize`` on ``PYTHONPATH`` installs :func:`audit` in
    each of them, which first writes ``watching <pid>`` so a test can tell the hook ran."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "egress.log"
    log.touch()
    (folder / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import egress\n"
        f"egress.record_to_file({str(log)!r})\n",
        encoding="utf-8",
    )
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), before]))
    try:
        yield log
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def record_to_file(path: str) -> None:
    """Install :func:`audit` in this process, appending what it notices to ``path``."""
    class Appending(list):  # type: ignore[type-arg]
        def append(self, item: str) -> None:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{item}\n")

    _recorders.append(Appending())
    sys.addaudithook(audit)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"watching {os.getpid()}\n")
