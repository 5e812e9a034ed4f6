"""Letter tables for text.py: matching skeletons, SMS transliteration and the GSM 03.38 alphabet.

Only data lives here; the functions that use it are in bot.conversation.text.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# Tajik typed with pre-2000 fonts: cp1251 had no Tajik letters, so Serbian/Ukrainian/Belarusian ones
# that sat on the same keys stood in for them.
OLD_FONT: Final = MappingProxyType({"ќ": "қ", "љ": "ҷ", "њ": "ҳ", "ї": "ӣ", "ў": "ӯ", "ѓ": "ғ"})

# Cyrillic (lower case) to the Latin spelling the skeleton parser reads next. Letters she may type
# without their marks get the same spelling as the plain letter (қ and к are both "k"), so the two meet.
# ё is "yo" and й is "y" here; the parser then turns "yo" into "e" (see SKELETON_DIGRAPHS).
CYRILLIC_TO_SKELETON: Final = MappingProxyType(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
        "з": "z", "и": "i", "ӣ": "i", "й": "y", "к": "k", "қ": "k", "л": "l", "м": "m", "н": "n",
        "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ӯ": "u", "ф": "f", "х": "h",
        "ҳ": "h", "ц": "ts", "ч": "ch", "ҷ": "j", "ш": "sh", "щ": "shch", "ъ": "", "ы": "i", "ь": "",
        "э": "e", "ю": "yu", "я": "ya",
        # Neighbouring alphabets she may have on her phone's keyboard.
        "і": "i", "є": "ye", "ґ": "g", "ә": "a", "ө": "o", "ү": "u", "ұ": "u", "ң": "n", "һ": "h",
        "ђ": "dj", "ј": "j", "ћ": "ch", "џ": "dzh", "ѕ": "dz", "ӏ": "", "ҙ": "z", "ҫ": "s", "ӑ": "a",
        "ӗ": "e", "ӳ": "u", "ӧ": "o", "ӱ": "u", "ӹ": "i", "ҝ": "k", "ҟ": "k", "ҡ": "k", "ӄ": "k",
        "ҕ": "g", "ӷ": "g", "ҥ": "n", "ӈ": "n", "ӊ": "n", "ҩ": "a", "ҭ": "t", "ҵ": "ts", "ҹ": "ch",
        "ҽ": "ch", "ҿ": "ch", "ӌ": "ch", "ӆ": "l", "ӎ": "m", "ӕ": "ae", "ӡ": "dz", "ԁ": "d", "ԛ": "k",
        "ԝ": "v", "ӻ": "g", "ӽ": "h", "ӿ": "h", "ҧ": "p", "ѣ": "e", "ѳ": "f", "ѵ": "i",
        "ѡ": "o", "ѫ": "u", "ѧ": "ya", "ѯ": "ks", "ѱ": "ps", "ꙋ": "u", "ҁ": "s", "ԍ": "s", "ԏ": "t",
    }
)  # fmt: skip

# Latin spellings that mean one sound, read longest first. "yo"/"ye" become "e" so that ёрӣ, ери and yori
# all meet (Russian is typed with е for ё all the time); a lone "y" is a vowel or й, and both are "i".
SKELETON_DIGRAPHS: Final = MappingProxyType(
    {
        "shch": "sh", "dzh": "j", "sch": "sh", "dj": "j", "ch": "j", "kh": "h", "gh": "g", "ye": "e",
        "yo": "e",
    }
)  # fmt: skip
SKELETON_SINGLES: Final = MappingProxyType({"q": "k", "x": "h", "w": "v", "y": "i"})

# Latin letters with marks that NFKD does not reduce to the right ASCII spelling.
LATIN_EXTRA: Final = MappingProxyType(
    {
        "š": "sh", "ş": "sh", "ș": "sh", "č": "ch", "ç": "ch", "ž": "zh", "ğ": "gh", "ǧ": "gh",
        "ı": "i", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "ŋ": "n", "þ": "th",
        "ħ": "h", "ŧ": "t", "ß": "ss", "ĸ": "k", "ſ": "s",
    }
)  # fmt: skip

# Signs used as apostrophes (and the Uzbek-style oʻ/gʻ); they join a word rather than split it.
APOSTROPHES: Final = frozenset("'`´ʹʻʼʽʾʿ‘’‛′")

# Keyboard-switching look-alikes: the same glyph, two scripts. Used only inside a word that mixes them.
LATIN_LOOKALIKES: Final = "AaBCcEeHKkMOoPpTXxYy"
CYRILLIC_LOOKALIKES: Final = "АаВСсЕеНКкМОоРрТХхУу"

# Tajik and Russian Cyrillic to the Latin Tajik readers know (lower case; callers restore case).
CYRILLIC_TO_LATIN: Final = MappingProxyType(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "ғ": "gh", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
        "з": "z", "и": "i", "ӣ": "i", "й": "y", "к": "k", "қ": "q", "л": "l", "м": "m", "н": "n",
        "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ӯ": "u", "ф": "f", "х": "kh",
        "ҳ": "h", "ц": "ts", "ч": "ch", "ҷ": "j", "ш": "sh", "щ": "shch", "ъ": "'", "ы": "y", "ь": "",
        "э": "e", "ю": "yu", "я": "ya",
        # Old-font stand-ins are read as the Tajik letters they replace.
        "ќ": "q", "љ": "j", "њ": "h", "ї": "i", "ў": "u", "ѓ": "gh",
        "і": "i", "є": "ye", "ґ": "g", "ә": "a", "ө": "o", "ү": "u", "ұ": "u", "ң": "ng", "һ": "h",
    }
)  # fmt: skip

# GSM 03.38 default alphabet in code order, 0x00 to 0x7F, without 0x1B (the escape to the extension table).
GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: each is sent as escape + character, two septets.
GSM_EXTENSION: Final = "\f^{}\\[~]|€"
GSM_BASIC_SET: Final = frozenset(GSM_BASIC)
GSM_EXTENSION_SET: Final = frozenset(GSM_EXTENSION)

# Characters outside GSM-7 with a close GSM spelling that NFKD does not give.
GSM_SUBSTITUTES: Final = MappingProxyType(
    {
        "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"', "〝": '"', "〞": '"',
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'", "‹": "'", "›": "'",
        "ʻ": "'", "ʼ": "'",
        "–": "-", "—": "-", "―": "-", "‒": "-", "−": "-", "‐": "-", "‑": "-", "⁃": "-", "⁄": "/",
        "\t": " ", "•": "*", "·": ".", "×": "x", "÷": "/", "±": "+-", "≤": "<=", "≥": ">=", "≠": "!=",
        "©": "(c)", "®": "(R)", "°": "o", "✓": "v", "✔": "v", "₽": "rub", "¢": "c", "¦": "!",
    }
)  # fmt: skip
