"""Vietnamese personal names as the scheme compares and shows them: one rule for the switch,
the mock banks and any real participant, so that a name that matches at one matches at all.

Matching (`same_name`). Two names are the same person's name when, word by word and in order,
after ignoring
  - letter case ("NGUYỄN" = "Nguyễn"),
  - spacing: leading, trailing, repeated and non-breaking spaces, and invisible format
    characters such as zero-width spaces,
  - how the diacritics are encoded: composed or decomposed Unicode (NFC = NFD),
  - where the tone mark sits on a vowel pair, old style or new ("Hoà" = "Hòa",
    "Thuỷ" = "Thủy"): a syllable is its letters and its one tone, wherever it is written,
  - the apostrophe's shape and spacing in minority names ("H'Hen" = "H’ Hen"),
they are equal; and one more: a name typed without any diacritic at all (no tone, no
ă â ê ô ơ ư, no đ), as on a keyboard without Vietnamese input, matches a written name with
the same letters ("Nguyen Thi Ra" = "NGUYỄN THỊ RA", "Tran Van Duc" = "Trần Văn Đức").
When both names carry diacritics, the diacritics must agree: "Nguyễn Thị Ra" is not
"Nguyễn Thị Rà", "Lê" is not "Lệ". Word order, a missing or extra middle name, and
abbreviations do not match ("Nguyễn Ra" is not "Nguyễn Thị Ra"): a payout is matched in full.
A name typed without diacritics tells fewer people apart, which is why verification always
compares the citizen id too.

Masking (`mask_name`). Where a holder's name is shown to someone who is not the holder's
bank, it is shown as Vietnamese interbank name inquiry shows names, upper case without
diacritics, and masked: each word keeps its first letter and every other letter becomes
one "*" ("Nguyễn Thị Rà" → "N***** T** R*"). The initials let a treasury operator see a typo
against its own table; they never give a stranger the full name.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from protocol.messages import MAX_NAME_CHARS

# Combining marks after NFD: the five tones, and the vowel-quality marks of ă â ê ô ơ ư.
TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")  # huyền sắc ngã hỏi nặng
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_AROUND_APOSTROPHE = re.compile(r"\s*'\s*")
MAX_NAMES_CACHED = 32_768  # ~25 MB at most; generated and real names repeat a lot


def words(name: str) -> list[str]:
    """The name's words, folded for comparison: NFC, case folded, format characters
    dropped, apostrophes unified and joined to their word."""
    if len(name) > MAX_NAME_CHARS:
        return []
    text = "".join(c for c in unicodedata.normalize("NFC", name)
                   if unicodedata.category(c) != "Cf")
    text = _AROUND_APOSTROPHE.sub("'", text.translate(_APOSTROPHES))
    return text.casefold().split()


def _bare(word: str) -> str:
    """The word's letters without any diacritic ("đức" → "duc")."""
    return "".join(c for c in unicodedata.normalize("NFD", word.replace("đ", "d"))
                   if not unicodedata.combining(c))


def _syllable(word: str) -> tuple[str, str]:
    """(letters with their vowel marks but no tone, the tone marks): where on the vowels the
    tone was written no longer counts."""
    decomposed = unicodedata.normalize("NFD", word)
    tones = "".join(sorted(c for c in decomposed if c in TONE_MARKS))
    letters = "".join(c for c in decomposed if c not in TONE_MARKS)
    return unicodedata.normalize("NFC", letters), tones


def without_diacritics(folded: list[str]) -> bool:
    """Whether a name's folded words were typed without any Vietnamese diacritic."""
    return not any(c in "đ" or unicodedata.combining(c)
                   for word in folded for c in unicodedata.normalize("NFD", word))


@functools.lru_cache(maxsize=MAX_NAMES_CACHED)
def _forms(name: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], bool]:
    """A name folded once: its words without any diacritic, its syllables (letters, tone),
    and whether it was typed without diacritics. Cached: a payout compares the same few
    hundred thousand names again and again (table checks, the banks, the reconciliation),
    and folding costs tens of microseconds where a lookup costs one."""
    folded = words(name)
    return (tuple(_bare(w) for w in folded), tuple(_syllable(w) for w in folded),
            without_diacritics(folded))


def same_name(first: str, second: str) -> bool:
    """Whether two written names are one person's name, by the rule in this module's
    docstring. An empty name matches nothing."""
    a_bare, a_syllables, a_typed = _forms(first)
    if first == second:
        return bool(a_bare)
    b_bare, b_syllables, b_typed = _forms(second)
    if not a_bare or len(a_bare) != len(b_bare):
        return False
    if a_typed or b_typed:
        return a_bare == b_bare
    return a_syllables == b_syllables


def mask_name(name: str) -> str:
    """The name as interbank name inquiry shows it, masked: "N***** T** R*"."""
    return " ".join(word[0] + "*" * (len(word) - 1)
                    for word in (_bare(w).upper() for w in words(name)))


def mask_account(account_id: str, shown: int = 4) -> str:
    """An account or wallet number as a citizen's own payment page shows it: all but its
    last `shown` characters hidden ("*********5667"); a short number wholly hidden."""
    if len(account_id) <= shown:
        return "*" * len(account_id)
    return "*" * (len(account_id) - shown) + account_id[-shown:]
