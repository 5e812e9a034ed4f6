"""Tests for text.py: cleaning, folding, keyword matching, SMS letters and cost, Telegram pieces."""

from __future__ import annotations

import random
import string
import time
import unicodedata

import pytest

from bot.config import ROOT
from bot.conversation.flows import FlowSet
from bot.conversation.letters import GSM_BASIC, GSM_EXTENSION
from bot.conversation.text import (
    EXACT,
    MAX_WORDS,
    ONE_EDIT,
    PREFIX,
    SmsCount,
    best_keyword,
    clean,
    fold,
    is_exactly,
    keyword_score,
    sms_segments,
    split_for_telegram,
    to_latin,
    to_plain_cyrillic,
)

GSM_ALL = set(GSM_BASIC) | set(GSM_EXTENSION)
SKELETON_LETTERS = set("abdefghijklmnoprstuvz0123456789 ")

# --- clean -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Салом,\n\nман   кӯмак мехоҳам  ", "Салом, ман кӯмак мехоҳам"),
        ("али\u200bмент", "алимент"),  # zero-width space pasted from a web page
        ("али\u00adмент", "алимент"),  # soft hyphen
        ("\ufeffсалом", "салом"),  # byte order mark at the start of a pasted text
        ("\u202eтест\u202c \u2066x\u2069 \u200fy\u200e \u061cz", "тест x y z"),  # bidi controls
        ("a\x00b\x07c\x1bd\x7fe\x9ff", "abcdef"),
        ("one\ttwo\r\nthree\u2028four\u00a0five\x85six", "one two three four five six"),
        ("ки\u0304 ку\u0304", "кӣ кӯ"),  # combining macron composed to the Tajik letters
        ("Раҳмат 🙏🏽 дугона ❤️", "Раҳмат 🙏🏽 дугона ❤️"),
        ("👩\u200d👧", "👩👧"),  # the joiner is zero-width too
        ("bad\ud800decode", "baddecode"),  # lone surrogate from surrogateescape
        ("", ""),
        (" \n\t\u200b ", ""),
    ],
)
def test_clean(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_clean_is_idempotent() -> None:
    text = " Ман\u200b  дар\nДушанбе\u00a0зиндагӣ мекунам 🙂 "
    assert clean(clean(text)) == clean(text)


# --- fold --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        ["алимент", "aliment", "АЛИМЕНТ", "Aliment", "алімент"],
        ["хукук", "ҳуқуқ", "huquq", "ХУКУК", "xuquq", "khukuk", "њуќуќ"],
        ["Точикистон", "Тоҷикистон", "Tojikiston", "Тољикистон", "TOJIKISTON", "Tochikiston"],
        ["талоқ", "талок", "taloq", "talok", "ТАЛОЌ"],
        ["никоҳ", "никох", "nikoh", "nikokh", "никоњ"],
        ["ЗАГС", "загс", "zags", "Загс"],
        ["хушдоман", "xushdoman", "khushdoman", "ҳушдоман"],
        ["ёрӣ", "yori", "ери", "ёри", "ёрй", "ёрї"],
        ["шавҳар", "shavhar", "шавхар", "shavkhar", "шавњар"],
        ["кӯмак", "kumak", "кумак", "кўмак", "qumak"],
        ["ёрдам", "yordam", "ердам"],
        ["нафақа", "нафака", "nafaqa", "nafaka"],
        ["ғам", "гам", "gham", "ѓам"],
        ["Қонуни Ҷумҳурии Тоҷикистон", "Qonuni Jumhurii Tojikiston", "Konuni Jumhuriyi Tojikiston"],
        ["Ҷамшед", "Джамшед", "Jamshed", "Djamshed", "Чамшед", "Chamshed"],
        ["ребёнок", "ребенок", "rebyonok", "rebenok"],
        ["ноҳия", "нохия", "nohiya", "nohia", "noxiya"],
        ["центр", "centr", "tsentr"],
        ["помощь", "pomoshch", "pomosh", "помошь"],
        ["Аллоҳ", "Alloh", "Aloh", "Аллох"],
        ["маъно", "ma'no", "ma’no", "mano"],
        ["район", "rayon"],
        ["Ҷумҳурии", "Jumhuriyi", "Ҷумҳурӣ", "Jumhuri"],
        ["oʻgʻil", "o'g'il", "ogil"],
        ["kuča", "kucha", "куча"],
    ],
)
def test_fold_spellings_meet(spellings: list[str]) -> None:
    folded = {fold(spelling) for spelling in spellings}
    assert len(folded) == 1, dict(zip(spellings, map(fold, spellings), strict=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Алименты!", "alimenti"),
        ("ЗАГС", "zags"),
        ("Тоҷикистон", "tojikiston"),
        ("ёрӣ", "eri"),
        ("Ман алимент мехоҳам, ёрдам кунед!!!", "man aliment mehoham erdam kuned"),
        ("Куда звонить? 102", "kuda zvonit 102"),
        ("кӯмак-пулӣ", "kumak puli"),
        ("«нафақа»", "nafaka"),
        ("помогииии", "pomogi"),
        ("Мария", "maria"),
        ("١١٢", "112"),  # Arabic-Indic digits
        ("Ｚａｇｓ", "zags"),  # full-width letters
        ("🙏", ""),
        ("", ""),
        ("   ", ""),
    ],
)
def test_fold_examples(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_fold_keeps_a_vowel_difference() -> None:
    # никах differs from никоҳ by a vowel: the skeleton keeps it, the fuzzy matcher bridges it.
    assert fold("никах") != fold("никоҳ")
    assert keyword_score(fold("никах"), fold("никоҳ")) > 0


@pytest.mark.parametrize(
    ("mixed", "meant"),
    [
        ("ЗAГC", "ЗАГС"),  # Latin A and C typed in a Cyrillic word
        ("алимeнт", "алимент"),  # Latin e
        ("рomosh", "pomosh"),  # Cyrillic р in a Latin word
        ("Tоjikistоn", "Tojikiston"),  # Cyrillic о
    ],
)
def test_fold_reads_lookalike_letters_in_the_script_of_their_word(mixed: str, meant: str) -> None:
    assert fold(mixed) == fold(meant)


def test_fold_maps_every_old_font_letter_to_its_tajik_letter() -> None:
    assert fold("ќ љ њ ї ў ѓ") == fold("қ ҷ ҳ ӣ ӯ ғ") == fold("Ќ Љ Њ Ї Ў Ѓ")


def _letters(*blocks: tuple[int, int]) -> list[str]:
    return [chr(code) for first, last in blocks for code in range(first, last + 1) if chr(code).isalpha()]


@pytest.mark.parametrize(
    "letter",
    _letters((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F), (0x0400, 0x052F), (0x1E00, 0x1EFF)),
)
def test_fold_gives_skeleton_ascii_for_every_latin_and_cyrillic_letter(letter: str) -> None:
    folded = fold(f"a{letter}a")
    assert set(folded) <= SKELETON_LETTERS, (letter, unicodedata.name(letter), folded)


@pytest.mark.parametrize(
    "text",
    [
        "Салом! 🙏🏽👩\u200d👧 مرحبا 你好 שלום ☎️ 1️⃣",
        "\x00\ud800\udfff\uffff\U0010ffff",
        "ǅ ĳ ŉ ẞ İ ı ﬁ ℌ ⅸ ½ ² ①",
        "'''' --- ...",
        "ъьъь",
    ],
)
def test_fold_never_raises_and_is_tidy(text: str) -> None:
    folded = fold(text)
    assert folded == " ".join(folded.split())
    assert fold(folded) == folded


def test_fold_keeps_other_scripts_and_drops_emoji() -> None:
    assert fold("مرحبا 🙏 你好") == "مرحبا 你好"


@pytest.mark.parametrize(
    "text",
    [
        "Қонуни Ҷумҳурии Тоҷикистон «Дар бораи оила»",
        "Мой муж уехал в Россию и не платит алименты",
        "qh dch xh Djamshed shchi",
        "ЖЕНЩИНА, СЕМЬЯ, ЗАГС",
    ],
)
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


def test_fold_output_letters_for_tajik_and_russian_text() -> None:
    text = "Шавҳарам ба Русия рафт, ҳоло пул намефиристад. Муж уехал, денег нет. Ёрдам! Щётка, подъезд."
    assert set(fold(text)) <= SKELETON_LETTERS


def test_fold_is_quick_on_a_long_message() -> None:
    text = "Ман аз Хатлон ҳастам ва шавҳарам дар Русия кор мекунад 🙏 " * 200
    started = time.perf_counter()
    folded = fold(text)
    assert time.perf_counter() - started < 1.0
    assert folded.startswith("man az hatlon hastam")


# --- keyword_score -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword", "points"),
    [
        ("алимент", "алимент", EXACT + 7),
        ("ман алимент мехоҳам", "алимент", EXACT + 7),
        ("aliment", "алимент", EXACT + 7),
        ("алимен", "алимент", PREFIX + 6),  # cut short, 5+ letters
        ("алименты", "алимент", PREFIX + 7),  # Russian ending
        ("развода", "развод", PREFIX + 6),
        ("загса", "ЗАГС", PREFIX + 4),  # a 4-letter keyword still takes an ending
        ("алимнет", "алимент", ONE_EDIT + 7),  # transposition
        ("алимнт", "алимент", ONE_EDIT + 7),  # deletion
        ("алиммент", "алимент", EXACT + 7),  # doubled letter folds away
        ("алимест", "алимент", ONE_EDIT + 7),  # substitution
        ("никах", "никоҳ", ONE_EDIT + 5),
        ("zags", "ЗАГС", EXACT + 4),
        ("суд", "суд", EXACT + 3),
    ],
)
def test_keyword_score_tiers(text: str, keyword: str, points: int) -> None:
    assert keyword_score(fold(text), fold(keyword)) == points


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("алим", "алимент"),  # prefix too short to mean anything
        ("загз", "ЗАГС"),  # no typos in keywords under 5 letters
        ("заг", "ЗАГС"),
        ("суды", "суд"),  # under 4 letters: whole word only
        ("сут", "суд"),
        ("кӯмак", "алимент"),
        ("", "алимент"),
        ("алимент", ""),
        ("🙏", "алимент"),
        ("салом", "алиментҳо"),
    ],
)
def test_keyword_score_no_match(text: str, keyword: str) -> None:
    assert keyword_score(fold(text), fold(keyword)) == 0


def test_keyword_score_order_of_tiers() -> None:
    keyword = fold("алимент")
    exact, prefix, edit = (keyword_score(fold(text), keyword) for text in ("алимент", "алимен", "алимнет"))
    assert exact > prefix > edit > 0


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("Қонуни оила чӣ мегӯяд?", True),
        ("qonuni oila", True),
        ("ман дар бораи қонуни оилаи Тоҷикистон пурсидан мехоҳам", True),  # inflected last word
        ("оила қонуни", False),  # wrong order
        ("қонуни нав оила", False),  # not consecutive
        ("қонуни", False),  # only part of the keyword
    ],
)
def test_keyword_score_multi_word(text: str, matches: bool) -> None:
    assert (keyword_score(fold(text), fold("қонуни оила")) > 0) is matches


def test_keyword_score_prefers_the_longer_keyword() -> None:
    text = fold("Алимент аз суд")
    keywords = [fold(k) for k in ("алимент", "суд", "алимент аз суд", "нафақа")]
    best = max(keywords, key=lambda keyword: keyword_score(text, keyword))
    assert best == fold("алимент аз суд")


def test_keyword_score_prefers_exact_over_fuzzy_between_keywords() -> None:
    text = fold("талоқ")
    assert keyword_score(text, fold("талоқ")) > keyword_score(text, fold("талак"))


def test_keyword_score_looks_only_at_the_first_words() -> None:
    filler = " ".join(["салом"] * (MAX_WORDS - 1))
    assert keyword_score(fold(f"{filler} алимент"), fold("алимент")) > 0
    assert keyword_score(fold(f"{filler} дугона алимент"), fold("алимент")) == 0


def test_keyword_score_is_quick_on_a_huge_input() -> None:
    huge = fold("Шавҳарам алимент намедиҳад " * 400 + "а" * 10_000)
    keywords = [fold(f"калимаи{i} алимент") for i in range(150)] + [fold(f"алимент{i}") for i in range(150)]
    started = time.perf_counter()
    scores = [keyword_score(huge, keyword) for keyword in keywords]
    assert time.perf_counter() - started < 1.0
    assert max(scores) > 0


# --- is_exactly --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "word", "expected"),
    [
        ("STOP", "stop", True),
        ("  Стоп!  ", "стоп", True),
        ("стоп", "stop", True),  # a spelling, not another word
        ("стоп", "старт", False),
        ("Менюро нишон деҳ", "меню", False),
        ("меню", "menyu", True),
        ("🙏", "", False),
        ("", "", False),
    ],
)
def test_is_exactly(text: str, word: str, expected: bool) -> None:
    assert is_exactly(fold(text), fold(word)) is expected


# --- to_plain_cyrillic -------------------------------------------------------------------------------------


def test_to_plain_cyrillic_replaces_tajik_letters_in_both_cases() -> None:
    assert to_plain_cyrillic("ҲҳҶҷҚқҒғӢӣӮӯ") == "ХхЧчКкГгИиУу"


def test_to_plain_cyrillic_keeps_everything_else() -> None:
    text = "Ба ҳуқуқҳои худ шинос шавед: 1 Ҳа, 2 Не. «Ёрӣ» 🙏 €"
    assert to_plain_cyrillic(text) == "Ба хукукхои худ шинос шавед: 1 Ха, 2 Не. «Ёри» 🙏 €"


def test_to_plain_cyrillic_catches_decomposed_letters() -> None:
    assert to_plain_cyrillic("ки\u0304") == "ки"


# --- to_latin ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Салом, дугона!", "Salom, dugona!"),
        ("Ҳуқуқҳои шумо", "Huquqhoi shumo"),
        ("Хуҷанд ва Хатлон", "Khujand va Khatlon"),
        ("ғизо, қарз, ҷой, чой", "ghizo, qarz, joy, choy"),
        ("Шавҳар", "Shavhar"),
        ("ШИ", "SHI"),
        ("ЗАГС", "ZAGS"),
        ("Ш", "Sh"),
        ("ЁРӢ ва Ёрӣ", "YORI va Yori"),
        ("Қонуни Ҷумҳурии Тоҷикистон", "Qonuni Jumhurii Tojikiston"),
        ("юрист, ясли, ёрдам", "yurist, yasli, yordam"),
        ("Щука, цех, съезд, мышь, эх", "Shchuka, tsekh, s'ezd, mysh, ekh"),
        ("«Оила» — “хона” – ‘ман’…", '"Oila" - "khona" - \'man\'...'),
        ("100\u00a0сомонӣ", "100 somoni"),
        ("Раҳмат 🙏🏽 дугона ❤️", "Rahmat dugona"),
        ("🙏 Салом", "Salom"),
        ("Тел.: 1313\nСуд: ҳа", "Tel.: 1313\nSud: ha"),
        ("Тољикистон, ќонун", "Tojikiston, qonun"),
        ("café", "café"),  # é is in the GSM alphabet
        ("Ƚ ł ş ç", "L l s c"),
        ("مرحبا", "?????"),
        ("`code`", "'code'"),
        ("№ 5, ½", "No 5, 1/2"),
    ],
)
def test_to_latin(text: str, expected: str) -> None:
    assert to_latin(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Салом! 🙏🏽👩\u200d👧 Шумо метавонед ба рақами 1313 занг занед. «Ёрӣ» — ҳамеша…",
        "Мой муж уехал в Россию 🇷🇺 и не платит алименты. Что делать?\tПомогите!",
        "مرحبا 你好 שלום ☎️ 1️⃣ \x00\x07 ½ ² ① ™ © ° ≤ ∞ ₽ ¢ ¥ € {[|]} ~ ^ \\",
        "".join(chr(code) for code in range(0x20, 0x3000) if not 0xD800 <= code <= 0xDFFF),
    ],
)
def test_to_latin_is_always_gsm7(text: str) -> None:
    latin = to_latin(text)
    assert set(latin) <= GSM_ALL
    assert sms_segments(latin).encoding == "gsm7"


def test_to_latin_of_tajik_text_is_cheaper() -> None:
    text = "Агар шавҳаратон алимент напардозад, ба суд муроҷиат кунед. Ҳуқуқи шумо ҳимоя мешавад."
    assert sms_segments(text).encoding == "ucs2"
    latin = sms_segments(to_latin(text))
    assert latin.encoding == "gsm7"
    assert latin.segments == 1 < sms_segments(text).segments


# --- sms_segments ------------------------------------------------------------------------------------------


def test_gsm_alphabet_is_the_full_03_38_table() -> None:
    assert len(GSM_BASIC) == 127 == len(set(GSM_BASIC))  # 128 codes less the escape
    assert GSM_BASIC[:16] == "@£$¥èéùìòÇ\nØø\rÅå"
    greek = [unicodedata.name(ch) for ch in GSM_BASIC[16:27] if ch != "_"]
    assert all(name.startswith("GREEK CAPITAL LETTER") for name in greek)
    assert set("¤¡¿§") <= set(GSM_BASIC)
    printable_ascii = {chr(code) for code in range(0x20, 0x7F)}
    assert printable_ascii - set(GSM_BASIC) == set("`") | set(GSM_EXTENSION) - {"\f", "€"}
    assert GSM_EXTENSION == "\f^{}\\[~]|€"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsCount("gsm7", 1, 0)),
        ("a" * 160, SmsCount("gsm7", 1, 160)),
        ("a" * 161, SmsCount("gsm7", 2, 161)),
        ("a" * 306, SmsCount("gsm7", 2, 306)),
        ("a" * 307, SmsCount("gsm7", 3, 307)),
        ("д" * 70, SmsCount("ucs2", 1, 70)),
        ("д" * 71, SmsCount("ucs2", 2, 71)),
        ("д" * 134, SmsCount("ucs2", 2, 134)),
        ("д" * 135, SmsCount("ucs2", 3, 135)),
        ("€" + "a" * 158, SmsCount("gsm7", 1, 159)),  # 160 septets
        ("€" + "a" * 159, SmsCount("gsm7", 2, 160)),  # 161 septets
        ("a" * 152 + "€" + "a" * 152, SmsCount("gsm7", 3, 305)),  # escape pair moves to segment 2
        ("a" * 153 + "€" + "a" * 151, SmsCount("gsm7", 2, 305)),  # pair starts segment 2 cleanly
        ("😀" * 35, SmsCount("ucs2", 1, 35)),  # 70 units
        ("😀" + "д" * 69, SmsCount("ucs2", 2, 70)),  # 71 units
        ("д" * 66 + "😀" + "д" * 66, SmsCount("ucs2", 3, 133)),  # surrogate pair moves to segment 2
        ("Ҳа", SmsCount("ucs2", 1, 2)),
        ("Ha\r\n@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", SmsCount("gsm7", 1, 46)),
        ("ç", SmsCount("ucs2", 1, 1)),  # only the capital Ç is in the table
        ("`", SmsCount("ucs2", 1, 1)),
    ],
)
def test_sms_segments(text: str, expected: SmsCount) -> None:
    assert sms_segments(text) == expected


def test_sms_segments_one_emoji_makes_ucs2_and_counts_two_units() -> None:
    assert sms_segments("Salom 🙏").encoding == "ucs2"
    assert sms_segments("a" * 68 + "🙏") == SmsCount("ucs2", 1, 69)
    assert sms_segments("a" * 69 + "🙏") == SmsCount("ucs2", 2, 70)


@pytest.mark.parametrize("char", list(GSM_EXTENSION))
def test_sms_segments_extension_characters_take_two_septets(char: str) -> None:
    assert sms_segments(char * 80).segments == 1
    assert sms_segments(char * 81).segments == 2


def test_sms_segments_tajik_and_its_latin() -> None:
    tajik = "Ҳуқуқи шумо ҳимоя мешавад"
    assert sms_segments(tajik).encoding == "ucs2"
    assert sms_segments(to_plain_cyrillic(tajik)).encoding == "ucs2"  # still Cyrillic
    assert sms_segments(to_latin(tajik)) == SmsCount("gsm7", 1, len(to_latin(tajik)))


# --- split_for_telegram ------------------------------------------------------------------------------------


def _check_pieces(text: str, pieces: list[str], limit: int) -> None:
    assert all(piece and piece == piece.strip() for piece in pieces)
    assert all(len(piece.encode("utf-16-le")) // 2 <= limit for piece in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())
    position = 0
    for piece in pieces:
        position = text.index(piece, position) + len(piece)


def test_split_short_text_is_one_piece() -> None:
    assert split_for_telegram("Салом, дугона!") == ["Салом, дугона!"]
    assert split_for_telegram("  Салом  ") == ["Салом"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_split_blank_text_has_no_pieces(text: str) -> None:
    assert split_for_telegram(text) == []


def test_split_prefers_paragraphs() -> None:
    first = "Қадами аввал.\nБа ЗАГС равед."
    second = "Қадами дуюм.\nБа суд ариза диҳед."
    text = f"{first}\n\n{second}"
    limit = max(len(first), len(second)) + 5  # room for a line of the next paragraph too
    assert split_for_telegram(text, limit=limit) == [first, second]


def test_split_prefers_lines_over_spaces() -> None:
    text = "Рақами 1313 ройгон аст\nРақами 112 ҳам ройгон аст"
    assert split_for_telegram(text, limit=30) == ["Рақами 1313 ройгон аст", "Рақами 112 ҳам ройгон аст"]


def test_split_ignores_an_early_paragraph_break() -> None:
    text = "Салом.\n\n" + "Ин матни дароз аст " * 10
    pieces = split_for_telegram(text, limit=100)
    assert len(pieces[0]) > 50
    _check_pieces(text, pieces, 100)


def test_split_cuts_at_spaces_not_inside_words() -> None:
    words = ["алимент", "нафақа", "ҳуқуқ", "никоҳ", "талоқ", "ЗАГС", "суд", "кӯмак"]
    text = " ".join(words * 20)
    pieces = split_for_telegram(text, limit=50)
    _check_pieces(text, pieces, 50)
    assert all(word in words for piece in pieces for word in piece.split())


def test_split_cuts_a_word_longer_than_the_limit() -> None:
    text = "a" * 25
    assert split_for_telegram(text, limit=10) == ["a" * 10, "a" * 10, "a" * 5]


def test_split_counts_utf16_units_and_keeps_emoji_whole() -> None:
    text = "🙏" * 7
    pieces = split_for_telegram(text, limit=5)
    assert pieces == ["🙏🙏", "🙏🙏", "🙏🙏", "🙏"]
    _check_pieces(text, pieces, 5)


def test_split_does_not_cut_before_a_combining_mark() -> None:
    text = "ки\u0304" * 5  # decomposed ӣ
    pieces = split_for_telegram(text, limit=4)
    assert all(not unicodedata.combining(piece[0]) for piece in pieces)
    _check_pieces(text, pieces, 4)


def test_split_default_limit_is_telegrams() -> None:
    paragraph = "Ҳуқуқи шумо ҳимоя мешавад. " * 40
    text = "\n\n".join([paragraph.strip()] * 8)
    pieces = split_for_telegram(text)
    assert len(pieces) > 1
    _check_pieces(text, pieces, 4096)


def test_split_rejects_a_limit_under_two() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        split_for_telegram("салом", limit=1)


@pytest.mark.parametrize("seed", range(20))
def test_split_random_texts(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + "ҳҷқғӣӯабвгд" + "🙏😀" + " " * 8 + "\n" * 3
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 600)))
    limit = rng.randint(2, 80)
    pieces = split_for_telegram(text, limit=limit)
    _check_pieces(text, pieces, limit)


def test_the_best_keyword_is_the_first_with_the_highest_score_for_every_message(flows: FlowSet) -> None:
    # best_keyword scores each keyword word once per message: it must choose exactly what scoring every
    # keyword whole (keyword_score) and keeping the first of the best chooses, on real messages.
    lines = (ROOT / "tests" / "data" / "triage" / "tune.tsv").read_text(encoding="utf-8").splitlines()[1:]
    messages = [line.split("\t")[3] for line in lines]
    messages += ["салом", "алимент", "алименты бор?", "zags kujo", "никах", "1", "", "🙏", "талоқ ва алимент"]
    matched = 0
    for message in messages:
        folded = fold(message)
        best, expected = 0, None
        for keyword, ref in flows.keywords:
            if (score := keyword_score(folded, keyword)) > best:
                best, expected = score, ref
        assert best_keyword(folded, flows.keywords) == expected, message
        matched += expected is not None
    assert matched > 20  # the comparison is about real matches, not only misses


def test_of_equally_good_keywords_the_first_is_chosen() -> None:
    keywords = [("суд", "court"), (fold("алимент"), "first"), (fold("алимент"), "second")]
    assert best_keyword(fold("ман алимент мехоҳам"), keywords) == "first"
    assert best_keyword(fold("салом"), keywords) is None
    assert best_keyword("", keywords) is None
