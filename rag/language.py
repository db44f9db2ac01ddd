"""A cheap German/English guess for a short question (answers use the question's language).

Words that occur in only one of the two languages vote for it: function words (articles, pronouns,
auxiliaries, prepositions, question words) and a few German endings ("-ung", "-keit", "-lich"); each
umlaut or ß counts twice. Words spelled alike in both (``was``, ``in``, ``an``, ``also``, ``so``,
``war``, ``am``, ``man``, ``will``) vote for neither: in "When was Sky Digital launched?" ``was`` is
English, in "Was ist ein Werktag?" German. English endings ("-ing", "-tion") do not vote: German office
words end so too ("Dokumentation", "Meeting", "Schulung" does not). A tie (no evidence either way, e.g.
"Mindestlohn 2024" or "VPN Passwort") gives the caller's default, the UI's language.
"""

from __future__ import annotations

import re
from typing import Literal

Language = Literal["de", "en"]

_WORD = re.compile(r"[a-zäöüß]+")
_GERMAN = frozenset(
    """
    der die das dem den des ein eine einem einen einer eines und oder aber nicht kein keine keinen nichts
    ist sind wird werden wurde wurden worden hat haben hatte hatten habe bin bist sei seid gewesen
    ich du er sie es wir ihr mich mir dich dir ihm ihn ihnen uns euch sich mein meine meinen meinem
    dein deine sein seine seinen seinem seiner ihre ihren ihrem ihrer unser unsere
    mit auf bei nach vom zum zur im ins für über unter durch gegen ohne zwischen seit bis aus
    wie wer wen wem wessen wann wo woher wohin warum weshalb wieso welche welcher welches welchem welchen
    wieviel wieviele viele vielen lange muss müssen darf dürfen kann können soll sollte sollen könnte
    gibt gab auch noch schon nur sehr dass ob wenn weil als dieser diese dieses diesem diesen jahr jahre
    jahren heute hier dort etwa eigentlich bitte
    """.split()
)
_ENGLISH = frozenset(
    """
    the a and or but not no nothing is are were been be being has have had having do does did done
    i you he she it we they me him her us them my your his its our their this that these those
    there here for from about to of by with on at after before during into onto than then
    how what who whom whose when where why which many much long must may can could would should
    shall if because while whether each every some any other such only year years
    """.split()
)
_GERMAN_ENDINGS = ("ung", "ungen", "keit", "heit", "lich", "liche", "lichen", "isch", "ische", "schaft")
_MIN_STEM = 3  # letters before an ending, so "young" is not taken for "-ung"


def _vote(word: str) -> int:
    """+1 for a German word, -1 for an English one, 0 for a word of both or neither."""
    if word in _GERMAN:
        return 1
    if word in _ENGLISH:
        return -1
    if any(word.endswith(e) and len(word) - len(e) >= _MIN_STEM for e in _GERMAN_ENDINGS):
        return 1
    return 0


def detect_language(text: str, default: Language = "de") -> Language:
    """Return "de" or "en" by counting words that belong to one language only, and German letters."""
    lowered = text.lower()
    votes = [_vote(w) for w in _WORD.findall(lowered)]
    german = sum(v > 0 for v in votes) + 2 * sum(ch in "äöüß" for ch in lowered)
    english = sum(v < 0 for v in votes)
    if german == english:
        return default
    return "de" if german > english else "en"
