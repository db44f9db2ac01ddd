"""A cheap German/English guess for a short question (answers use the question's language)."""

from __future__ import annotations

import re
from typing import Literal

Language = Literal["de", "en"]

_WORD = re.compile(r"[a-zäöüß]+")
_GERMAN = frozenset(
    "der die das und ist nicht ein eine wie was wer wann wo warum welche welcher welches wieviel wieviele "
    "viele lange muss darf kann ich sie mein meine für über zum zur im den dem des sind hat haben gibt "
    "es mit auf bei nach oder auch noch wird werden werde soll sollte dürfen müssen".split()
)
_ENGLISH = frozenset(
    "the and is are not a an how what who when where why which many much long must may can i my for "
    "about to in of do does did has have there it with on at after or also will would should".split()
)


def detect_language(text: str, default: Language = "de") -> Language:
    """Return "de" or "en" by counting function words and German letters."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    german = sum(w in _GERMAN for w in words) + 2 * sum(ch in "äöüß" for ch in lowered)
    english = sum(w in _ENGLISH for w in words)
    if german == english:
        return default
    return "de" if german > english else "en"
