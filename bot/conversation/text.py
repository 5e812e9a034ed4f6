"""Text handling: tidying input, folding it for matching, SMS letters and cost, Telegram message pieces.

Everything here is a pure function of its arguments.

Folding decisions, for the people who write keywords:
- Tajik letters and the plain letters typed for them meet (ҳ/х, ҷ/ч, қ/к, ғ/г, ӣ/и/й/ы, ӯ/у), so do old-font
  letters (ќ љ њ ї ў ѓ) and Latin spellings (h kh x; j ch dj dzh; q k; gh g; sh; zh).
- е, э, ё and Latin e, ye, yo are all "e": ёрӣ, ери and yori meet, so do ребёнок and ребенок. The price:
  йо is "e" too, so район and rayon meet but Latin "raion" does not.
- я/ya/ia, ю/yu/iu meet: y and й are always "i".
- Latin c is "ts" before e, i, y (centr = центр) and "k" elsewhere; "ch" is ҷ/ч.
- Doubled letters are single (Аллоҳ = Aloh, Ҷумҳурии = Jumhuriyi), so are long runs (помогииии).
- In a word that mixes scripts, look-alike letters from the keyboard's other layout are read as the script
  the rest of the word is in (ЗAГC with Latin A and C is ЗАГС).
- Letters of other scripts (Arabic, CJK...) are kept as they are; emoji and punctuation become spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal, TypeVar

from bot.conversation.letters import (
    APOSTROPHES,
    CYRILLIC_LOOKALIKES,
    CYRILLIC_TO_LATIN,
    CYRILLIC_TO_SKELETON,
    GSM_BASIC_SET,
    GSM_EXTENSION_SET,
    GSM_SUBSTITUTES,
    LATIN_EXTRA,
    LATIN_LOOKALIKES,
    OLD_FONT,
    SKELETON_DIGRAPHS,
    SKELETON_SINGLES,
)

T = TypeVar("T")

# Invisible characters that split words or flip their display, and lone surrogates left by bad decoding.
_INVISIBLE: Final = re.compile(
    "[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]"
)
# Control characters that are not whitespace (whitespace ones become spaces through str.split).
_CONTROL: Final = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_WORD: Final = re.compile(r"[^\W\d_]+")
_HAS_LATIN: Final = re.compile("[A-Za-z]")
_HAS_CYRILLIC: Final = re.compile("[\u0400-\u04ff]")
_DOUBLED: Final = re.compile(r"([a-z])\1+")
_TO_CYRILLIC: Final = str.maketrans(LATIN_LOOKALIKES, CYRILLIC_LOOKALIKES)
_TO_LATIN: Final = str.maketrans(CYRILLIC_LOOKALIKES, LATIN_LOOKALIKES)
_PLAIN: Final = str.maketrans("ҲҳҶҷҚқҒғӢӣӮӯ", "ХхЧчКкГгИиУу")

# Only the first words of a message are matched: what she asks for comes first, and a pasted wall of text
# must not cost more than a short message.
MAX_WORDS: Final = 30
EXACT: Final = 300
PREFIX: Final = 200
ONE_EDIT: Final = 100

GSM_SINGLE: Final = 160
GSM_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67


def clean(text: str) -> str:
    """Make raw input safe and tidy: NFC, no control or invisible characters, single spaces, stripped.

    Newlines, tabs and other whitespace become single spaces; zero-width characters (including the joiner
    inside emoji sequences), soft hyphens and bidi marks are dropped; emoji and all other text are kept.
    """
    text = _CONTROL.sub("", _INVISIBLE.sub("", text))
    return " ".join(unicodedata.normalize("NFC", text).split())


def fold(text: str) -> str:
    """The matching key of a text: a lossy ASCII skeleton where all usual spellings of a word meet.

    Cyrillic (Tajik, Russian, old fonts) and Latin input gives only ASCII letters a-z (never c, q, w, x, y),
    digits and single spaces; see the module docstring for the choices. Never raises.
    """
    spelled = _spell(_unmix(clean(text)).casefold())
    while True:
        # A second pass only matters when a replacement formed a new digraph ("qh" -> "kh" -> "h"); it keeps
        # fold(fold(x)) == fold(x), so already-folded ids can be folded again safely.
        folded = _DOUBLED.sub(r"\1", _skeleton(spelled))
        if folded == spelled:
            return " ".join(folded.split())
        spelled = folded


QUESTION_MARKS = "?？؟¿"


def fold_message(text: str) -> str:
    """`fold`, except that a message of only question marks stays "?": it asks for help, and folding
    would turn it into nothing."""
    folded = fold(text)
    if folded or not text.strip() or text.strip().strip(QUESTION_MARKS + " "):
        return folded
    return "?"


def keyword_score(folded_text: str, folded_keyword: str) -> int:
    """How well a folded keyword (one or more words) matches folded input: 0 for no match, higher is better.

    Each keyword word must match one input word, in order and consecutively, among the first MAX_WORDS words:
    exactly (EXACT points); by prefix (PREFIX points) when the input word is the start of the keyword word and
    has 5+ letters ("alimen") or the keyword word (4+ letters) starts the input word ("alimenti", "zagsa");
    or, for keyword words of 5+ letters, by one insertion, deletion, substitution or transposition (ONE_EDIT).
    Keyword words under 4 letters match only exactly. Each matched word adds its length too, so a longer,
    more specific keyword beats a shorter one; the best position in the input counts.
    """
    wanted = folded_keyword.split()
    if not wanted:
        return 0
    words = folded_text.split(maxsplit=MAX_WORDS)[:MAX_WORDS]
    best = 0
    for start in range(len(words) - len(wanted) + 1):
        total = 0
        for word, key in zip(words[start : start + len(wanted)], wanted, strict=True):
            points = _word_score(word, key)
            if not points:
                break
            total += points
        else:
            best = max(best, total)
    return best


def best_keyword(folded_text: str, keywords: Sequence[tuple[str, T]]) -> T | None:
    """What the best-scoring keyword stands for (`keyword_score`; the first of equals), None if none matches.

    The same scores as `keyword_score` for each, found faster: every keyword word is scored against the
    input's words once, not once for every keyword that has it and every place it is tried (a message of a
    few words is scored against some 200 keywords on every turn).
    """
    words = folded_text.split(maxsplit=MAX_WORDS)[:MAX_WORDS]
    if not words:
        return None
    scored: dict[str, list[int]] = {}

    def scores(key: str) -> list[int]:
        found = scored.get(key)
        if found is None:
            found = scored[key] = [_word_score(word, key) for word in words]
        return found

    best, chosen = 0, None
    for keyword, meaning in keywords:
        wanted = _split_keyword(keyword)
        if not wanted or len(wanted) > len(words):
            continue
        first = scores(wanted[0])
        for start in range(len(words) - len(wanted) + 1):
            total = first[start]
            if not total:
                continue
            for offset in range(1, len(wanted)):
                points = scores(wanted[offset])[start + offset]
                if not points:
                    break
                total += points
            else:
                if total > best:
                    best, chosen = total, meaning
    return chosen


@cache
def _split_keyword(folded_keyword: str) -> tuple[str, ...]:
    return tuple(folded_keyword.split())


def is_exactly(folded_text: str, folded_word: str) -> bool:
    """Whether the whole folded input is this folded word (stop words, global words).

    An empty word never matches, so a message of only emoji (which folds to "") is no command.
    """
    return bool(folded_word) and folded_text == folded_word


def to_plain_cyrillic(text: str) -> str:
    """Tajik letters replaced by plain Cyrillic old phones can show: ҳ->х, ҷ->ч, қ->к, ғ->г, ӣ->и, ӯ->у.

    The text is NFC-composed first so that ӣ and ӯ typed as и/у plus a combining macron are replaced too;
    everything else is unchanged.
    """
    return unicodedata.normalize("NFC", text).translate(_PLAIN)


def to_latin(text: str) -> str:
    """Tajik and Russian text in Tajik-style Latin letters, made pure GSM-7 for cheap SMS.

    Case is kept: Ш -> Sh, but a whole upper-case word stays upper case (ШИ -> SHI). Typographic quotes,
    dashes, ellipsis and odd spaces get their ASCII forms, letters with marks lose them where GSM-7 lacks
    them, emoji are removed (with the spaces they leave), anything else outside GSM-7 becomes "?".
    """
    latin = _WORD.sub(_latin_word, unicodedata.normalize("NFC", text))
    safe = "".join(_gsm(ch) for ch in latin)
    lines = (" ".join(line.split(" ")).strip(" ") for line in safe.split("\n"))
    return re.sub(" {2,}", " ", "\n".join(lines)).strip(" ")


@dataclass(frozen=True)
class SmsCount:
    """What an SMS text costs: its encoding, the number of segments billed and its length in characters."""

    encoding: Literal["gsm7", "ucs2"]
    segments: int
    chars: int


def sms_segments(text: str) -> SmsCount:
    """Encoding and segment count of an SMS per GSM 03.38 (characters are code points).

    GSM-7 when every character is in the default alphabet or its extension table (extension characters take
    two septets), else UCS-2 (characters beyond the BMP take two 16-bit units). One segment holds 160 septets
    or 70 units; a longer message holds 153 or 67 per segment, and an escape or surrogate pair is never split
    across segments. An empty text is billed like a message: 1 segment, gsm7, 0 characters.
    """
    if all(ch in GSM_BASIC_SET or ch in GSM_EXTENSION_SET for ch in text):
        units = [2 if ch in GSM_EXTENSION_SET else 1 for ch in text]
        encoding: Literal["gsm7", "ucs2"] = "gsm7"
        single, part = GSM_SINGLE, GSM_PART
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding = "ucs2"
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(units) <= single:
        return SmsCount(encoding, 1, len(text))
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return SmsCount(encoding, segments, len(text))


def split_for_telegram(text: str, limit: int = 4096) -> list[str]:
    """Split text into non-empty pieces of at most `limit` UTF-16 units (Telegram's measure).

    Cuts go at a paragraph break, else a line break (either only in the second half of a piece, so pieces
    are not tiny), else a space; a word longer than a piece is cut between characters, never inside a
    surrogate pair or before a combining mark. The whitespace at a cut and around the text is dropped
    (Telegram strips it anyway); all other text is kept, in order. Blank text gives no pieces. `limit` must
    be 2 or more.
    """
    if limit < 2:
        raise ValueError(f"limit must be at least 2, not {limit}")
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        end = _fit(rest, limit)
        if end == len(rest):
            pieces.append(rest)
            break
        cut = _cut(rest, end)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return pieces


# --- folding -----------------------------------------------------------------------------------------------


def _unmix(text: str) -> str:
    """Look-alike letters typed in the wrong keyboard layout, put back in the script of their word."""
    if not (_HAS_LATIN.search(text) and _HAS_CYRILLIC.search(text)):
        return text
    return _WORD.sub(_unmix_word, text)


def _unmix_word(match: re.Match[str]) -> str:
    word = match.group()
    latin = [ch for ch in word if ch.isascii()]
    cyrillic = [ch for ch in word if "\u0400" <= ch <= "\u04ff"]
    if not latin or not cyrillic:
        return word
    latin_only_lookalikes = all(ch in LATIN_LOOKALIKES for ch in latin)
    cyrillic_only_lookalikes = all(ch in CYRILLIC_LOOKALIKES for ch in cyrillic)
    if latin_only_lookalikes and not cyrillic_only_lookalikes:
        return word.translate(_TO_CYRILLIC)
    if cyrillic_only_lookalikes and not latin_only_lookalikes:
        return word.translate(_TO_LATIN)
    return word


def _spell(text: str) -> str:
    """Casefolded text as ASCII letters and digits (other scripts kept), ready for the skeleton parser."""
    out: list[str] = []
    for ch in text:
        ch = OLD_FONT.get(ch, ch)
        if ch.isascii():
            out.append(ch if ch.isalnum() else "" if ch in APOSTROPHES else " ")
        elif ch in CYRILLIC_TO_SKELETON:
            out.append(CYRILLIC_TO_SKELETON[ch])
        elif ch in APOSTROPHES:
            continue
        elif ch in LATIN_EXTRA:
            out.append(LATIN_EXTRA[ch])
        else:
            out.extend(_spell_part(part) for part in unicodedata.normalize("NFKD", ch))
    return "".join(out)


def _spell_part(ch: str) -> str:
    if unicodedata.category(ch).startswith("M"):
        return ""
    if ch.isascii():
        return ch.lower() if ch.isalnum() else "" if ch in APOSTROPHES else " "
    if ch in CYRILLIC_TO_SKELETON:
        return CYRILLIC_TO_SKELETON[ch]
    if ch in LATIN_EXTRA:
        return LATIN_EXTRA[ch]
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    name = unicodedata.name(ch, "")
    if name.startswith("CYRILLIC"):
        return ""
    base = _latin_base(name)
    if base is not None:
        return base
    return ch if ch.isalnum() else " "


def _latin_base(name: str) -> str | None:
    """The ASCII letter a Latin letter is built on, from its Unicode name ("... LETTER D WITH STROKE")."""
    if not name.startswith("LATIN ") or " LETTER " not in name:
        return None
    words = name.split(" LETTER ", 1)[1].split()
    return next((word.lower() for word in words if len(word) == 1), "")


# One pass of a regular expression finds the digraphs (longest first, as people spell them) and the "c"s;
# the letters between them are mapped with str.translate. Ten times faster than a loop over characters,
# which matters: every message she sends is folded, and triage reads the folded text.
_SKELETON_TOKENS: Final = re.compile(
    "|".join(
        [
            *(re.escape(k) for k in sorted(SKELETON_DIGRAPHS, key=len, reverse=True) if 2 <= len(k) <= 4),
            "c(?=[eiy])",
            "c",
        ]
    )
)
_SKELETON_SINGLES: Final = str.maketrans(dict(SKELETON_SINGLES))


def _skeleton(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _SKELETON_TOKENS.finditer(text):
        out.append(text[last : match.start()].translate(_SKELETON_SINGLES))
        token = match.group()
        digraph = SKELETON_DIGRAPHS.get(token)
        if digraph is not None:
            out.append(digraph)
        else:  # a "c": soft before e, i, y (as in Latin spellings of Russian names), hard elsewhere
            out.append("ts" if text[match.end() : match.end() + 1] in ("e", "i", "y") else "k")
        last = match.end()
    out.append(text[last:].translate(_SKELETON_SINGLES))
    return "".join(out)


def _word_score(word: str, key: str) -> int:
    if word == key:
        return EXACT + len(key)
    if len(key) < 4:
        return 0
    if len(word) > len(key) and word.startswith(key):
        return PREFIX + len(key)
    if len(key) < 5:
        return 0
    if len(word) >= 5 and key.startswith(word):
        return PREFIX + len(word)
    return ONE_EDIT + len(key) if _one_edit(word, key) else 0


def _one_edit(a: str, b: str) -> bool:
    """Whether two different words are one insertion, deletion, substitution or transposition apart."""
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = a[i + 1 : i + 2] == b[i : i + 1] and a[i : i + 1] == b[i + 1 : i + 2]
        return a[i + 1 :] == b[i + 1 :] or (swapped and a[i + 2 :] == b[i + 2 :])
    if len(a) > len(b):
        return a[i + 1 :] == b[i:]
    return a[i:] == b[i + 1 :]


# --- SMS letters -------------------------------------------------------------------------------------------


def _latin_word(match: re.Match[str]) -> str:
    word = match.group()
    if len(word) > 1 and word.isupper():
        return "".join(_latin_letter(ch.lower()) for ch in word).upper()
    out: list[str] = []
    for ch in word:
        lower = ch.lower()
        latin = _latin_letter(lower)
        if latin == lower:
            out.append(ch)
        else:
            out.append(latin[:1].upper() + latin[1:] if ch != lower else latin)
    return "".join(out)


def _latin_letter(ch: str) -> str:
    if ch in CYRILLIC_TO_LATIN:
        return CYRILLIC_TO_LATIN[ch]
    if not "\u0400" <= ch <= "\u04ff":
        return ch
    # A Cyrillic letter with a mark (ѐ, ӑ): the mark goes, the base letter is transliterated.
    bases = [part for part in unicodedata.normalize("NFD", ch) if not unicodedata.combining(part)]
    return "".join(CYRILLIC_TO_LATIN.get(part, part) for part in bases)


def _gsm(ch: str) -> str:
    """One character as GSM-7 text: itself, a close spelling, "" (emoji, marks, controls) or "?"."""
    if ch in GSM_BASIC_SET or ch in GSM_EXTENSION_SET:
        return ch
    if ch in GSM_SUBSTITUTES:
        return GSM_SUBSTITUTES[ch]
    category = unicodedata.category(ch)
    if category == "Zs":
        return " "
    if category in ("Zl", "Zp"):
        return "\n"
    decomposed = unicodedata.normalize("NFKD", ch)
    if decomposed != ch:
        parts = [part for part in decomposed if not unicodedata.category(part).startswith("M")]
        if parts:
            return "".join(_gsm(part) for part in parts)
    base = _latin_base(unicodedata.name(ch, ""))
    if base:
        return base.upper() if ch.isupper() else base
    if category[0] in "MC" or category in ("So", "Sk"):
        return ""
    return "?"


# --- Telegram ----------------------------------------------------------------------------------------------

_BREAKS: Final = (re.compile(r"\n[^\S\n]*\n"), re.compile(r"\n"), re.compile(r"\s"))


def _fit(text: str, limit: int) -> int:
    """How many leading code points of text fit in `limit` UTF-16 units (limit >= 2, so at least one)."""
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _cut(text: str, end: int) -> int:
    """Where to cut text whose first `end` code points fit: the start of the best break, else at `end`."""
    window = text[: end + 1]  # a break may start right at the first character that does not fit
    for level, pattern in enumerate(_BREAKS):
        start = max(end // 2, 1) if level < 2 else 1
        cuts = [match.start() for match in pattern.finditer(window, start)]
        if cuts:
            return cuts[-1]
    cut = end
    while cut > 1 and (unicodedata.category(text[cut]).startswith("M") or text[cut] in "\u200d\ufe0f"):
        cut -= 1
    return cut
