"""``python -m bench [NAME] [options]``: run one benchmark (default ``e2e``); ``python -m bench list`` names them."""

import importlib
import sys

BENCHES = {
    "e2e": "ingest of examples/docs and answer latency, against the bare embedder and bare llama.cpp",
    "retrieval": "retrieval latency per query at 100k chunks, against bare FAISS and FTS5",
    "fusion": "fusion rules and weights on the development sets, against dense and bm25s",
    "embedders": "embedders on the development sets: quality and passages/s",
    "ingest": "ingest throughput on real documents, against the bare embedder and a naive LangChain pipeline",
    "abstention": "declined unanswerable vs refused answerable questions on xquad (gold held out), against no check",
    "quotes": "quotes hauswissen extracts vs quotes the model writes inline: verified claims, answer quality",
    "answer": "time to first token on xquad-de questions, against bare llama.cpp with and without the cached prefix",
}

args = sys.argv[1:]
name = args.pop(0) if args and not args[0].startswith("-") else "e2e"
if name == "list" or name not in BENCHES:
    for bench, what in BENCHES.items():
        print(f"{bench:<10} {what}")
    raise SystemExit(0 if name == "list" else 2)
sys.argv = [f"bench {name}", *args]
raise SystemExit(importlib.import_module(f"bench.{name}").main())
