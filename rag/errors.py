"""The error tree. Catch only at the edges (CLI, UI, worker) and show ``str(error)``.

``HauswissenError``
    ``UserError``: caused by input or setup; the message is safe to show a user as it is.
        ``ConfigError``: a setting is missing, unknown or of the wrong type.
        ``InvalidInputError``: a question or file the system refuses (empty, too long, wrong type).
        ``DocumentError``: one file could not be ingested; carries the reason in plain words.
        ``IndexMismatchError``: the index was built with another embedder.
        ``IndexLockedError``: another process is writing the index.
        ``ModelNotFoundError``: a model file or package is missing.
        ``BusyError``: too many questions at once; refused, or waited too long in the queue.
    ``BackendError``: a model server or library failed at run time (connection refused, bad reply).
    ``IndexCorruptError``: the stored index does not pass its checks.
"""

from __future__ import annotations


class HauswissenError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(HauswissenError):
    """An error whose message is safe and useful to show a user.

    ``code`` and ``params`` let a front end show the message in the user's language
    (``ui.i18n`` has a text ``err_<code>`` for each code a UI user can meet; others, such as the
    command-line-only ``eval_*`` codes, show the message as it is).
    """

    def __init__(self, message: str, *, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class ConfigError(UserError):
    """A setting is missing, unknown or invalid."""


class InvalidInputError(UserError):
    """A question or upload that is refused before any work is done."""


class DocumentError(UserError):
    """One document could not be ingested. ``reason`` is plain words, no traceback.

    ``quarantine`` marks a file refused as dangerous or one that broke its parser (crash, hang, memory):
    the file ledger keeps it apart from ordinary failures such as a password-protected PDF.
    """

    def __init__(self, path: str, reason: str, *, quarantine: bool = False) -> None:
        super().__init__(f"{path}: {reason}", code=None)
        self.path = path
        self.reason = reason
        self.quarantine = quarantine


class IndexMismatchError(UserError):
    """The index on disk was built with another embedder than the configured one."""


class IndexLockedError(UserError):
    """Another process holds the index's writer lock."""


class ModelNotFoundError(UserError):
    """A model file or the package that ships it is missing."""


class OriginalUnavailableError(UserError):
    """The original file of a cited document cannot be offered: not indexed (any more), not permitted,
    outside the document folders or a link, gone, unreadable, too large, or without the cited page."""


class BusyError(UserError):
    """The chat model is busy: the queue in front of it is full (code ``busy``; params ``waiting``,
    ``limit``) or the request waited its time without its turn (code ``busy_timeout``; params
    ``place``, ``waited_s``). Nothing is broken; trying again later helps."""


class BackendError(HauswissenError):
    """A model backend (server or library) failed while answering."""


class IndexCorruptError(HauswissenError):
    """The stored index failed an integrity check."""
