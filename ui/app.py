"""Entry point of the web UI: ``streamlit run ui/app.py`` (from the repository root).

Configuration: ``$HAUSWISSEN_CONFIG`` names the YAML file (default: ``config.yaml`` in the repository root
if present), and ``HAUSWISSEN__SECTION__KEY`` variables override single settings. Streamlit's own
options (address, usage statistics, error details, upload cap) are in ``.streamlit/config.toml``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ on sys.path, not the repository root that holds the packages.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ui.page import main  # noqa: E402

# A no-op when a launcher (or pytest) has configured logging already.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
main()
