"""An answer and its sources, as the chat shows them.

The answer text is the sanitised Markdown of :attr:`rag.service.Answer.markdown`; file names, locations
and passages are shown literally (escaped), because documents are untrusted.
"""

from __future__ import annotations

import streamlit as st

from rag.documents import Passage
from rag.prompting import location_label
from rag.service import Answer
from ui.escaping import escape_inline, quote_highlighted
from ui.i18n import UILanguage, translate


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


def render_sources(answer: Answer, language: UILanguage) -> None:
    """An expander listing every source the model saw, cited ones marked."""
    if not answer.sources:
        st.caption(translate(language, "no_sources"))
        return
    if answer.abstained:
        label = translate(language, "closest_label", total=len(answer.sources))
    else:
        label = translate(language, "sources_label", cited=len(answer.cited), total=len(answer.sources))
    claims = answer.claims
    with st.expander(label, expanded=False):
        for n, passage in enumerate(answer.sources, 1):
            st.markdown(source_heading(n, passage, n in answer.cited, language))
            quotes = [c.quote for c in claims if c.verified and c.citation == n and c.quote]
            st.markdown(quote_highlighted(passage.text, quotes))


def render_answer(answer: Answer, language: UILanguage) -> None:
    """The final answer (sanitised), an abstention notice when there is one, then its sources."""
    if answer.abstained:
        st.warning(translate(language, "abstained"), icon=":material/search_off:")
    st.markdown(answer.markdown)
    if not answer.abstained:
        # Sentences no cited source supports are named, so nobody mistakes them for checked facts.
        unsupported = [c.text for c in answer.claims if not c.verified and len(c.text.split()) >= 4]
        if unsupported:
            st.caption(translate(language, "unverified_claims"))
            for text in unsupported:
                st.caption(f":orange[⚠] {escape_inline(text)}")
    render_sources(answer, language)
