"""Text normalization before word error counting, one normalizer per language.

WER depends as much on normalization as on the recognizer: "Mr. Smith" against "mister smith" is two
errors or none. Every text, reference and hypothesis alike, goes through the same normalizer for its
language before alignment, so each rule applies on both sides.

- English: Whisper's English normalizer (`whisper_normalizer.english.EnglishTextNormalizer`), the
  convention most published English WERs use.
- French and German: `LatinNormalizer`, ours (see its docstring for what it does and does not do).
- Any other language, or none: Whisper's basic normalizer (lowercase, symbols and punctuation to
  spaces, bracketed annotations removed; diacritics kept).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable

Normalizer = Callable[[str], str]

_APOSTROPHES = "'\u2019\u02bc\u2018`\u00b4"
_SPACES_IN_NUMBERS = " \u00a0\u202f\u2009"


class LatinNormalizer:
    """Normalizer for French ("fr") and German ("de") transcripts.

    What it does, in this order:

    1. Unicode NFC, then lowercase (accents, umlauts and ß are kept: "Straße" stays "straße",
       "été" stays "été").
    2. Removes bracketed annotations: "[rires]", "(unverständlich)", "<noise>".
    3. Elisions and clitics: every apostrophe (', ’, ʼ, ‘, `, ´) becomes a space, so "l'homme" ->
       "l homme", "aujourd'hui" -> "aujourd hui", "geht's" -> "geht s", the same on both sides.
    4. Hyphens join spellings, not words: "peut-être" and "peut être" both become "peut être"
       (hyphens are kept only long enough for step 6 to read "quatre-vingt-dix").
    5. Digit groups: "10 000" / "10 000" (and "10.000" in German) become "10000"; a decimal "3.5" or
       "3,5" becomes "3,5"; "%" and "pour cent" become one word "pourcent" (German: "%" -> "prozent"); "€" becomes
       "euros" / "euro".
    6. Number words to digits with `text_to_num.alpha2digit` (threshold 0, so every number is
       converted, small ones included): "vingt et un" -> "21", "quatre-vingt-dix-neuf" -> "99",
       "einundzwanzig" -> "21", "deux mille vingt-quatre" -> "2024", "un" -> "1", "ein" -> "1",
       "premier" -> "1er", "trois virgule cinq" -> "3,5". So "1" and "un", "21" and "vingt et un"
       match. Because "un"/"ein" are also articles, "un chat" -> "1 chat" too; harmless, since both
       sides are treated alike.
    7. Fillers dropped: fr "euh", "heu", "hum", "hm", "bah"; de "äh", "ähm", "öh", "öhm", "hm", "hmm", "mhm".
    8. Remaining punctuation and symbols become spaces; whitespace is collapsed.

    What it does not do: digits to words (it goes the other way); feminine forms ("une", "eine",
    "einen" stay words, so "une" against "1" is still an error); ordinals other than those
    `text_to_num` knows; dates, times ("14h30" stays one token), currencies other than "€";
    spelling variants (no "ß" to "ss", no old/new orthography); abbreviations ("M." vs
    "monsieur", "z. B." vs "zum Beispiel" stay different).
    """

    _FILLERS = {
        "fr": frozenset({"euh", "heu", "hum", "hm", "bah"}),
        "de": frozenset({"äh", "ähm", "öh", "öhm", "hm", "hmm", "mhm"}),
    }
    _PERCENT = {"fr": " pourcent ", "de": " prozent "}
    _EURO = {"fr": " euros ", "de": " euro "}

    def __init__(self, language: str):
        if language not in self._FILLERS:
            raise ValueError(f"LatinNormalizer supports fr and de, not {language!r}")
        self.language = language
        thousands = _SPACES_IN_NUMBERS + ("." if language == "de" else "")
        self._thousands = re.compile(rf"(?<=\d)[{re.escape(thousands)}](?=\d{{3}}(?!\d))")
        self._decimal = re.compile(r"(?<=\d)[.,](?=\d)")

    def __call__(self, text: str) -> str:
        from text_to_num import alpha2digit

        s = unicodedata.normalize("NFC", text).lower()
        s = re.sub(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>", " ", s)
        s = re.sub(f"[{_APOSTROPHES}]", " ", s)
        # repeated so that "1 000 000" loses both spaces (the lookbehind needs the digit before)
        previous = None
        while previous != s:
            previous, s = s, self._thousands.sub("", s)
        s = self._decimal.sub(",", s)
        s = s.replace("%", self._PERCENT[self.language]).replace("€", self._EURO[self.language])
        if self.language == "fr":  # one word, so that alpha2digit cannot read "cent" as 100
            s = re.sub(r"\bpour\s+cent\b", "pourcent", s)
        # punctuation that is not part of a number or a hyphenated word goes before alpha2digit,
        # so that "vingt, trente" stays two numbers
        s = "".join(
            c if c in "-," or not unicodedata.category(c).startswith(("P", "S")) else " " for c in s
        )
        s = re.sub(r",(?!\d)|(?<!\d),", " ", s)
        s = alpha2digit(s, self.language, threshold=0)
        s = s.lower()  # alpha2digit keeps case but may emit "1er" etc.; keep the output lowercase
        s = "".join(
            c if c == "," or not unicodedata.category(c).startswith(("P", "S")) else " " for c in s
        )
        s = re.sub(r",(?!\d)|(?<!\d),", " ", s)
        words = [w for w in s.split() if w not in self._FILLERS[self.language]]
        return " ".join(words)


@lru_cache(maxsize=None)
def normalizer_for(language: str | None) -> Normalizer:
    """The normalizer for `language` (an ISO 639-1 code such as "en"; None for unknown)."""
    lang = (language or "").lower().split("-")[0].split("_")[0]
    if lang == "en":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    if lang in ("fr", "de"):
        return LatinNormalizer(lang)
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize(text: str, language: str | None) -> str:
    """`text` normalized for `language`: lowercase words separated by single spaces."""
    return " ".join(normalizer_for(language)(text).split())


def normalized_words(text: str, language: str | None) -> list[str]:
    """The words of `text` after normalization for `language`."""
    return normalizer_for(language)(text).split()
