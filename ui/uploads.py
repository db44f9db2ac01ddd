"""Handing uploaded files to the worker. The UI never parses or embeds: it stores and queues.

:func:`submit_upload` is the whole server-side path of one uploaded file, separate from Streamlit so
it can be tested with plain bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.config import Settings
from rag.errors import InvalidInputError
from rag.jobs import JobQueue
from rag.uploads import accept_upload, safe_filename

logger = logging.getLogger(__name__)

# Streamlit's upload limits count megabytes of 2**20 bytes; the server-side check uses the same unit.
_MB = 1024 * 1024


@dataclass(frozen=True)
class UploadOutcome:
    """What became of one uploaded file: a job id, or why it was refused."""

    name: str
    job_id: int | None = None
    reason: str | None = None
    unexpected: bool = False
    code: str | None = None
    params: dict[str, object] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.job_id is not None


def upload_limit_mb(settings: Settings) -> int:
    """The per-file limit for ``st.file_uploader``, in whole megabytes."""
    return max(1, math.ceil(settings.ui.max_upload_mb))


def upload_limit_bytes(settings: Settings) -> int:
    return int(settings.ui.max_upload_mb * _MB)


def upload_types(settings: Settings) -> list[str]:
    """Allowed extensions without the dot, as ``st.file_uploader(type=...)`` takes them."""
    return sorted({ext.lower().lstrip(".") for ext in settings.ingest.extensions})


def submit_upload(
    data: bytes,
    filename: str,
    *,
    settings: Settings,
    queue: JobQueue,
    access: Sequence[str],
) -> UploadOutcome:
    """Validate, store and queue one upload; never raises for a bad file.

    Returns:
        The outcome: ``job_id`` when queued; ``reason`` (safe to show) when refused; ``unexpected``
        when storing failed for another reason (logged).
    """
    name = safe_filename(filename)
    try:
        job_id = accept_upload(
            data,
            filename,
            uploads_dir=settings.uploads_dir,
            queue=queue,
            allowed_extensions=settings.ingest.extensions,
            max_bytes=upload_limit_bytes(settings),
            access=access,
        )
    except InvalidInputError as e:
        return UploadOutcome(name=name, reason=str(e), code=e.code, params=e.params)
    except Exception:
        logger.exception("storing an upload failed (%d bytes)", len(data))
        return UploadOutcome(name=name, unexpected=True)
    logger.info("upload queued as job %d (%d bytes)", job_id, len(data))
    return UploadOutcome(name=name, job_id=job_id)
