"""Numbers compared by value, as documents and answers write them."""

from __future__ import annotations

import pytest

from rag.numbers import missing_numbers, numbers_in


@pytest.mark.parametrize(
    ("stated", "source"),
    [
        ("1500 Euro", "Der Zuschuss beträgt 1.500 Euro."),
        ("1.500 Euro", "Der Zuschuss beträgt 1500 Euro."),
        ("2.000 €", "Es kostet 2.000,00 €."),
        ("1.234,56 €", "Summe 1234,56 €"),
        ("1,234.56 USD", "total 1234.56 USD"),
        ("12.41 EUR", "Der Mindestlohn beträgt 12,41 €."),
        ("am 1.3.2024", "Die Regel gilt ab 01.03.2024."),
        ("am 1.3.2024", "seit dem 1. März 2024"),
        ("im Jahr 2024", "ab dem 1. März 2024"),
        ("um 9:00 Uhr", "Die Kernzeit beginnt um 9 Uhr."),
        ("um 14.30 Uhr", "Treffpunkt 14:30"),
        ("1,5 Mio. Euro", "Das Budget beträgt 1.500.000 Euro."),
        ("vier Wochen", "Die Frist beträgt 4 Wochen."),
        ("8 Stunden", "darf acht Stunden nicht überschreiten"),
        ("1 Tag", "Die Einarbeitung dauert einen Tag."),
        ("6 Monate", "nach sechsmonatigem Bestehen"),
        ("0 Tage", "Es gibt 0 Tage Sonderurlaub."),
        ("14 Tage", "Die Frist beträgt vierzehn Tage."),
        ("21 Jahre", "mindestens einundzwanzig Jahre"),
        ("30 Tage", "dreißig Tage"),
        ("am 1.3.2024", "Stichtag: 2024-03-01"),
        ("from 1 March 2024", "Gilt ab 01.03.2024."),
        ("March 1, 2024", "Gilt ab 01.03.2024."),
        ("1.500 Euro", "Der Zuschuss beträgt 1 500 Euro."),
        ("3,25 %", "Der Zinssatz beträgt 3,250 %."),
        ("Version 2.3.1", "Version 2.3.1 ist aktuell."),
        ("Abs. 2", "gemäß §3 Abs.2"),
        ("5 Tage", "ca.5 Tage"),
        ("seit 2023", "Im Jahr 2022 waren es 120. Seit 2023 gilt die Pauschale."),
        ("1500 Euro", "Kosten gesamt: 250. Davon 1500 Euro für Reisen."),
        ("1 Billion Euro", "1.000 Milliarden Euro"),
    ],
)
def test_the_same_number_written_another_way_is_found(stated: str, source: str) -> None:
    assert missing_numbers(stated, [source]) == []


@pytest.mark.parametrize(
    ("stated", "source"),
    [
        ("2.000 Euro", "Es waren 2 Personen."),
        ("14:30 Uhr", "Beginn 14 Uhr, Ende 30 Minuten später."),
        ("0,30 Euro", "Es werden 0,25 € binnen 30 Tagen erstattet."),
        ("0 Euro", "Es kostet 50 Euro."),
        ("30 Tage", "Es gibt 24 Werktage."),
        ("neun Bälle", "Er fing acht Bälle."),
        ("3 Tage", "dreißig Tage"),
        ("1.5 Stunden", "am 1. Mai"),
        ("um 14.30 Uhr", "eine Quote von 14,3 %"),
    ],
)
def test_a_number_the_text_lacks_is_missing_even_when_its_parts_occur(stated: str, source: str) -> None:
    assert missing_numbers(stated, [source]) != []


def test_articles_and_idioms_are_not_numbers_stated() -> None:
    assert numbers_in("Ein Tag, eine Woche, einen Monat; das nicht außer Acht lassen, sonst null und nichtig.") == {}


def test_an_overlong_digit_run_does_not_crash() -> None:
    assert missing_numbers("1" * 5000, ["nichts"])
