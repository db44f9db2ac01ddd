"""An answer and its sources, as the chat shows them, each source with its original on demand.

The answer text is the sanitised Markdown of :attr:`rag.service.Answer.markdown`; file names, locations
and passages are shown literally (escaped), because documents are untrusted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import streamlit as st
from streamlit.errors import StreamlitDuplicateElementKey

from rag.documents import DocumentRecord, Passage
from rag.errors import UserError
from rag.originals import Originals, PageImageCache
from rag.prompting import location_label
from rag.sanitize import sanitize_markdown
from rag.service import Answer
from ui.escaping import escape_inline, quote_highlighted
from ui.i18n import UILanguage, error_text, translate
from ui.runtime import document_catalogue, read_settings, shared_assistant

logger = logging.getLogger(__name__)

# Pages of one PDF source shown at most (a passage may span more).
PAGES_SHOWN = 3


def source_heading(n: int, passage: Passage, cited: bool, language: UILanguage) -> str:
    """'**[1]** burlg.md · § 3 Dauer des Urlaubs' with a 'cited' badge, every value escaped."""
    parts = [f"**\\[{n}\\]** {escape_inline(passage.document)}"]
    if passage.title and passage.title not in (passage.document, passage.path):
        parts.append(f"*{escape_inline(passage.title)}*")
    location = location_label(passage, language)
    if location:
        parts.append(escape_inline(location))
    heading = " · ".join(parts)
    if cited:
        heading += f" :green-badge[{translate(language, 'cited')}]"
    return heading


@st.cache_resource(show_spinner=False)
def _page_cache() -> PageImageCache:
    # Process-wide: keyed by file content, and every caller is checked before it is asked.
    return PageImageCache()


def _originals() -> tuple[Originals, tuple[str, ...]]:
    """Originals of the current index, and the access of callers who do not say who they are."""
    settings = read_settings()
    assistant = shared_assistant(settings)

    def documents() -> Sequence[DocumentRecord]:
        stats = assistant.status()
        return document_catalogue(assistant, stats.generation, stats.created)[0]

    originals = Originals.from_settings(settings, documents, _page_cache())
    return originals, assistant.default_access()


def answer_key(answer: Answer) -> str:
    """A widget key for an answer that stays the same across reruns (answers are rebuilt from storage)."""
    content = "\x1f".join([answer.question, answer.text, *(str(p.chunk_id) for p in answer.sources)])
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _toggle(label: str, key: str) -> tuple[bool, str]:
    """A toggle under ``key``, or ``key#2``, ... when the same answer is shown twice on the page."""
    for n in range(1, 100):
        unique = key if n == 1 else f"{key}#{n}"
        try:
            return st.toggle(label, key=unique), unique
        except StreamlitDuplicateElementKey:
            continue
    raise RuntimeError(f"too many copies of {key} on one page")


def render_original(passage: Passage, language: UILanguage, access: Sequence[str] | None, key: str) -> None:
    """The original of ``passage``: for a PDF the cited page(s) as images, and a download of the file.

    Streamlit cannot link to a local file at ``#page=N`` without serving the document folders
    statically (which would bypass the access checks), so the offline way is to render the cited page
    and offer the whole file for download. Every check of :meth:`rag.originals.Originals.open` runs
    on each render; a refusal is shown as a warning, never a traceback.
    """
    try:
        originals, default_access = _originals()
        original = originals.open(passage, tuple(access) if access is not None else default_access)
    except UserError as e:
        reason = escape_inline(error_text(language, e.code, e.params, str(e)))
        st.warning(translate(language, "original_unavailable", reason=reason), icon=":material/block:")
        return
    except Exception:
        logger.exception("opening the original of %s failed", passage.doc_id)
        st.error(translate(language, "unexpected_error"), icon=":material/error:")
        return
    if original.changed:
        st.warning(translate(language, "original_changed"), icon=":material/difference:")
    if original.is_pdf and passage.page:
        last = min(passage.page_end or passage.page, passage.page + PAGES_SHOWN - 1)
        for page in range(passage.page, last + 1):
            try:
                image = originals.page_image(original, page)
            except UserError as e:
                reason = escape_inline(error_text(language, e.code, e.params, str(e)))
                st.warning(translate(language, "original_unavailable", reason=reason), icon=":material/block:")
                break
            # PNG as rendered: "auto" would re-encode every page to JPEG on every rerun.
            caption = translate(language, "original_page_caption", page=page)
            st.image(image, caption=caption, output_format="PNG")
    st.download_button(
        translate(language, "original_download", name=escape_inline(original.name)),
        data=original.data,
        file_name=original.name,
        mime=original.mime,
        key=f"{key}-download",
        on_click="ignore",
        icon=":material/download:",
    )


def render_sources(
    answer: Answer, language: UILanguage, access: Sequence[str] | None = None, key: str | None = None
) -> None:
    """An expander listing every source the model saw, cited ones marked, each with an "open
    original" toggle (see :func:`render_original`)."""
    if not answer.sources:
        st.caption(translate(language, "no_sources"))
        return
    if answer.abstained:
        label = translate(language, "closest_label", total=len(answer.sources))
    else:
        label = translate(language, "sources_label", cited=len(answer.cited), total=len(answer.sources))
    claims = answer.claims
    base = key or answer_key(answer)
    with st.expander(label, expanded=False):
        for n, passage in enumerate(answer.sources, 1):
            st.markdown(source_heading(n, passage, n in answer.cited, language))
            quotes = [c.quote for c in claims if c.verified and c.citation == n and c.quote]
            st.markdown(quote_highlighted(passage.text, quotes))
            # A toggle, not an always-rendered view: pages are read and rendered only when asked for.
            shown, toggle_key = _toggle(translate(language, "original_open"), f"original-{base}-{n}")
            if shown:
                render_original(passage, language, access, toggle_key)


def render_answer(
    answer: Answer, language: UILanguage, *, access: Sequence[str] | None = None, key: str | None = None
) -> None:
    """The final answer (sanitised), an abstention notice when there is one, then its sources.

    ``access`` is the caller's access tokens for opening originals (None: the assistant's default, as
    for the question itself); ``key`` makes the answer's widget keys unique (None: from its content).
    """
    if answer.abstained:
        st.warning(translate(language, "abstained"), icon=":material/search_off:")
    st.markdown(answer.markdown)
    if answer.draft:
        # The draft was streamed before it was withdrawn: say where it went, and keep it out of sight.
        with st.expander(translate(language, "draft_withdrawn"), icon=":material/visibility_off:"):
            st.caption(translate(language, "draft_withdrawn_why"))
            st.markdown(sanitize_markdown(answer.draft))
    for fix in answer.citation_fixes:
        # The model's own marker was streamed; say why the answer now cites other sources.
        cited, now = (", ".join(f"[{n}]" for n in numbers) for numbers in (fix.cited, fix.sources))
        note = translate(language, "citation_fixed", sentence=fix.sentence, cited=cited, sources=now)
        st.caption(f":material/swap_horiz: {escape_inline(note)}")
    if not answer.abstained:
        # Sentences no cited source supports are named, so nobody mistakes them for checked facts.
        unsupported = [c.text for c in answer.claims if not c.verified and len(c.text.split()) >= 4]
        if unsupported:
            st.caption(translate(language, "unverified_claims"))
            for text in unsupported:
                st.caption(f":orange[⚠] {escape_inline(text)}")
    render_sources(answer, language, access, key)
