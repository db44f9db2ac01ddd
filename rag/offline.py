"""Keep every library on this machine: no hub downloads, no telemetry."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


def enforce_offline_env() -> None:
    """Set the variables that stop libraries from calling home. Call before importing them."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
