"""Numbers as documents and answers write them, compared by value.

"1.500 €", "1500 Euro", "1 500 Euro" and "1.500,00 €" are one amount; "01.03.2024", "1.3.2024",
"2024-03-01", "1. März 2024" and "March 1, 2024" one date; "9:00" and "9 Uhr" one time; "vier" and "4",
"vierzehn" and "14", "1,5 Mio." and "1.500.000" one number. Each written number gets its *readings*
(canonical strings for what it may mean: "1.234" is 1234 or 1.234, "1.500" only 1500), and a number is
found in a text when one of its readings is among the text's. Parts are never matched alone: "2.000" is
not found in a text that says "2", nor "14:30" in one that says "14 Uhr ... 30 Minuten".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from rag.text import folded_words

_MONTH_NAMES = (
    ("januar", "january", "jan"), ("februar", "february", "feb"), ("märz", "maerz", "march", "mär", "mar"),
    ("april", "apr"), ("mai", "may"), ("juni", "june", "jun"), ("juli", "july", "jul"), ("august", "aug"),
    ("september", "sep", "sept"), ("oktober", "october", "okt", "oct"), ("november", "nov"),
    ("dezember", "december", "dez", "dec"),
)
_MONTHS = {name: i for i, names in enumerate(_MONTH_NAMES, 1) for name in names}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
# Up to 30 digits a group (int() has a length limit, and no longer run is a number anyone reads);
# groups joined by ".", ",", ":" or a space before exactly three digits ("1 500", DIN 5008).
_DIGITS = r"\d{1,30}(?:(?:[.,:]|[ \u00a0\u202f](?=\d{3}(?!\d)))\d{1,30})*"
_TOKEN = re.compile(
    rf"(?<!\d)(?<!\d[.,:])({_DIGITS})"
    r"(?:\.?\s*(Mio|Millionen|Million|Mrd|Milliarden|Billionen|Billion|Tsd|tausend|thousand|million|billion)\b)?"
    rf"(?:\.?\s*({_MONTH})\b\.?(?:\s+(\d{{4}})(?!\d))?)?",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_MONTH_FIRST = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})(?!\d)", re.IGNORECASE)
_GROUPED = re.compile(r"[1-9]\d{0,2}([.,])\d{3}(?:\1\d{3})*(?:([.,])(\d+))?")
_PERCENT = re.compile(r"\s*(?:%|Prozent|percent)", re.IGNORECASE)
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})?")
_MULTIPLIER = {
    "mio": 10**6, "millionen": 10**6, "million": 10**6, "mrd": 10**9, "milliarden": 10**9,
    "billion": 10**9, "tsd": 10**3, "tausend": 10**3, "thousand": 10**3,
}
_GERMAN_BILLION = 10**12  # "Billion" capitalised is German: a million millions

_UNITS = (
    ("null", "zero"), ("eins", "ein", "eine", "einen", "einem", "einer", "one"), ("zwei", "two"),
    ("drei", "three"), ("vier", "four"), ("funf", "five"), ("sechs", "six"), ("sieben", "seven"),
    ("acht", "eight"), ("neun", "nine"), ("zehn", "ten"), ("elf", "eleven"), ("zwolf", "twelve"),
    ("dreizehn", "thirteen"), ("vierzehn", "fourteen"), ("funfzehn", "fifteen"), ("sechzehn", "sixteen"),
    ("siebzehn", "seventeen"), ("achtzehn", "eighteen"), ("neunzehn", "nineteen"), ("zwanzig", "twenty"),
)
_TENS = {
    "zwanzig": 20, "dreissig": 30, "vierzig": 40, "funfzig": 50, "sechzig": 60, "siebzig": 70, "achtzig": 80,
    "neunzig": 90, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundert": 100, "hundred": 100,
}
# Small numbers spelled out ("acht Stunden"), folded like keyword terms (ü -> u, ß -> ss).
_SPELLED = {word: str(n) for n, words in enumerate(_UNITS) for word in words} | {
    word: str(n) for word, n in _TENS.items()
}
_COMPOUND_TENS = re.compile(
    r"(ein|zwei|drei|vier|funf|sechs|sieben|acht|neun)und(zwanzig|dreissig|vierzig|funfzig|sechzig|siebzig"
    r"|achtzig|neunzig)"
)
# In an answer an article is not a number ("ein Tag" states nothing to check, "vier Tage" does).
_SPELLED_STATED = {word: n for word, n in _SPELLED.items() if n != "1" or word == "eins"}
# A number leading a compound: "sechsmonatig", "achtstündig", "zweiwöchig"; not "dreizehn", "dreißig".
_COMPOUND_LEADS = {w: n for w, n in _SPELLED.items() if n not in ("0", "1", "11") and 4 <= len(w) <= 6}
_NOT_A_COMPOUND_LEAD = re.compile(r"(?:zehn|zig|ssig|tel|und|teen|ty)")
_IDIOMS = re.compile(r"\b(?:(?:außer|ausser|in)\s+acht|null\s+und\s+nichtig)\b", re.IGNORECASE)


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _date(day: int, month: int, year: str | None) -> set[str]:
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return set()
    out = {f"{day}.{month}."}
    if year:
        out |= {f"{day}.{month}.{int(year)}", str(int(year))}
    return out


def _readings(token: str, multiplier: str | None = None, *, after: str = "") -> set[str]:
    """What the written number ``token`` may stand for, as canonical strings.

    ``multiplier`` ("Mio.") scales it; ``after`` is the text that follows it ("." makes "1.5." a date,
    "Uhr" makes "14.30" a time).
    """
    token = re.sub(r"[ \u00a0\u202f]", "", token)
    parts = re.split(r"[.,:]", token)
    out = {".".join(str(int(p)) for p in parts)} if len(parts) > 2 else set()  # "2.3.1", "4.2.1"
    values: set[Decimal] = set()
    grouped = _GROUPED.fullmatch(token)
    if grouped and (grouped.group(2) is None or grouped.group(2) != grouped.group(1)):
        whole = re.sub(r"[.,]", "", token[: grouped.start(2)] if grouped.group(2) else token)
        values.add(Decimal(f"{whole}.{grouped.group(3) or '0'}"))  # "1.500", "2.000,00", "1,234.56"
    time = ":" in token or bool(re.match(r"\s*Uhr\b", after))
    if len(parts) == 1:
        values.add(Decimal(parts[0]))
    elif len(parts) == 2 and not time and not (grouped and parts[1].endswith("0") and not _PERCENT.match(after)):
        values.add(Decimal(f"{parts[0]}.{parts[1]}"))  # "0,30", "12.41"; not "2.000" as 2
    if multiplier:
        scale = _GERMAN_BILLION if multiplier.startswith("Billion") else _MULTIPLIER.get(multiplier.lower(), 1)
        values = {v * scale for v in values}
    out |= {_canonical(v) for v in values}
    if len(parts) == 2 and len(parts[1]) == 2 and ("." in token or ":" in token) and int(parts[1]) < 60:
        out.add(f"{int(parts[0])}:{parts[1]}")  # "14:30", "14.30 Uhr"
        if parts[1] == "00":
            out.add(str(int(parts[0])))  # "9:00" is 9 o'clock
    if len(parts) == 3 and "," not in token and ":" not in token and (date := _DATE.fullmatch(token)):
        out |= _date(int(date.group(1)), int(date.group(2)), date.group(3))
    elif len(parts) == 2 and "." in token and after.startswith("."):
        out |= _date(int(parts[0]), int(parts[1]), None)  # "am 3.5."
    return out


def _spelled(word: str, stated: bool) -> str | None:
    table = _SPELLED_STATED if stated else _SPELLED
    if word in table:
        return table[word]
    compound = _COMPOUND_TENS.fullmatch(word)
    if compound:
        unit = "eins" if compound.group(1) == "ein" else compound.group(1)  # "einundzwanzig"
        return str(int(_SPELLED[unit]) + _TENS[compound.group(2)])
    return None


def numbers_in(text: str, *, spelled: bool = True) -> dict[str, set[str]]:
    """Each number ``text`` states (as written) with its readings; with ``spelled``, numbers written as
    words count too ("vier" -> "4", "einundzwanzig" -> "21"), articles and "außer Acht" not."""
    found: dict[str, set[str]] = {}
    for match in _ISO_DATE.finditer(text):
        found.setdefault(match.group(0), set()).update(_date(int(match[3]), int(match[2]), match[1]))
    for match in _MONTH_FIRST.finditer(text):
        found.setdefault(match.group(0), set()).update(_date(int(match[2]), _MONTHS[match[1].lower()], match[3]))
    rest = _MONTH_FIRST.sub(" ", _ISO_DATE.sub(" ", text))
    for match in _TOKEN.finditer(rest):
        token, multiplier, month, year = match.groups()
        values = _readings(token, multiplier, after=rest[match.end(1) : match.end(1) + 9])
        if month and re.fullmatch(r"\d{1,2}", token):
            values |= _date(int(token), _MONTHS[month.lower()], year)
        elif year:
            values.add(str(int(year)))
        written = rest[match.start(1) : match.end(2)] if multiplier else token
        found.setdefault(written, set()).update(values)
    if spelled:
        for word in folded_words(_IDIOMS.sub(" ", text)):
            value = _spelled(word, stated=True)
            if value is not None:
                found.setdefault(word, set()).add(value)
    return found


def known_readings(texts: Iterable[str]) -> set[str]:
    """Every reading of every number in ``texts``, spelled ones included (an article as 1 too)."""
    known: set[str] = set()
    for text in texts:
        for values in numbers_in(text, spelled=False).values():
            known |= values
        for word in folded_words(_IDIOMS.sub(" ", text)):
            value = _spelled(word, stated=False)
            if value is not None:
                known.add(value)
                continue
            for lead, n in _COMPOUND_LEADS.items():
                if word.startswith(lead) and not _NOT_A_COMPOUND_LEAD.match(word, len(lead)):
                    known.add(n)
    return known


def missing_numbers(text: str, sources: Iterable[str]) -> list[str]:
    """The numbers ``text`` states that none of ``sources`` holds (as written in ``text``)."""
    known = known_readings(sources)
    return [written for written, values in numbers_in(text).items() if not values & known]
