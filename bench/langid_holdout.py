"""A held-out language-ID set that is not lingua's test data: the translated messages of this
machine's gettext catalogs (/usr/share/locale/<locale>/LC_MESSAGES/*.mo: GNU coreutils, GTK,
GLib, PAM, tar, ...; not the `iso_*` catalogs, which hold names of countries and languages), real text written by each language's translators, joined into paragraphs.

* Language of a locale: its name before `_` / `@` (pt_BR -> pt, zh_TW -> zh); `sr@latin` is
  kept apart as `sr-Latn` (Serbian in Latin script), other `@` variants (ca@valencia, be@latin,
  en@quot) and English locales are left out.
* English: the catalogs' msgids (the programs' own English source strings).
* A message is used when it reads like text: at least MIN_CHARS characters and MIN_WORDS
  words (scripts written without spaces: MIN_CHARS_NO_SPACES characters), no format
  placeholders, markup or command-line options (`% { } < > $ \\ | --`), no URL, and, outside English, translated: it
  differs from its msgid and at most half of its words (>= 3 letters) occur in the msgid
  (untranslated or half-translated messages are label noise). These rules look at the
  catalogs only, never at a model's output. Keyboard mnemonics (`_Open`, `&Open`) are removed.
* Each language's messages are deduplicated, shuffled with a fixed seed (the language code)
  and joined `k` at a time with a space: the paragraphs; k=1 gives single messages.

Label noise is real here too: a catalog can hold text in another language (an English
string a translator kept, a Serbian catalog in Latin script); `python -m bench.langid_eval`
shows samples of the remaining errors. Nothing is downloaded; the set depends on the
packages installed on the machine (the eval prints its size per language).
"""

from __future__ import annotations

import gettext
import random
import re
from pathlib import Path

LOCALE_DIR = Path("/usr/share/locale")
MIN_CHARS = 25
MIN_WORDS = 4
MIN_CHARS_NO_SPACES = 12
NO_SPACES = {"zh", "ja", "th", "km", "lo", "my"}
# catalogs of names (ISO 3166 countries, ISO 639 languages, ISO 4217 currencies, ...), not text
NAME_CATALOGS = ("iso_",)
# locale variants kept as their own set
VARIANTS = {"sr@latin": "sr-Latn"}
_REJECT = re.compile(r"[%{}<>$\\|]|https?:|www\.|--")
_MNEMONIC = re.compile(r"(?<![\w_])[_&](?=\w)")
_WORD = re.compile(r"[^\W\d_]{3,}")


def locale_language(name: str) -> str | None:
    """The language a locale directory's messages are in (None: not used)."""
    if name in VARIANTS:
        return VARIANTS[name]
    if "@" in name:
        return None
    lang = name.split("_", 1)[0].split(".", 1)[0]
    return None if lang in ("en", "C") else lang


def _clean(text: str) -> str:
    return " ".join(_MNEMONIC.sub("", text).split())


def _reads_like_text(text: str, lang: str) -> bool:
    if _REJECT.search(text):
        return False
    if lang in NO_SPACES:
        return len(text) >= MIN_CHARS_NO_SPACES
    return len(text) >= MIN_CHARS and len(text.split()) >= MIN_WORDS


def _translated(msgid: str, msgstr: str) -> bool:
    if msgstr == msgid:
        return False
    words = [w.lower() for w in _WORD.findall(msgstr)]
    if not words:
        return True
    source = {w.lower() for w in _WORD.findall(msgid)}
    return sum(w in source for w in words) <= len(words) / 2


def _catalog(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return gettext.GNUTranslations(f)._catalog  # msgid -> translation
    except Exception:  # noqa: BLE001 - a broken system catalog is skipped
        return {}


def catalog_messages(locale_dir: Path = LOCALE_DIR, languages: set[str] | None = None) -> dict[str, list[str]]:
    """language -> its usable messages (sorted, deduplicated); `en` from the msgids."""
    out: dict[str, set[str]] = {}
    english: set[str] = set()
    if not locale_dir.is_dir():
        return {}
    for d in sorted(locale_dir.iterdir()):
        lang = locale_language(d.name)
        if lang is None or not (d / "LC_MESSAGES").is_dir():
            continue
        want = languages is None or lang in languages
        if not want and "en" not in (languages or ()):
            continue
        for mo in sorted((d / "LC_MESSAGES").glob("*.mo")):
            if mo.name.startswith(NAME_CATALOGS):
                continue
            for k, v in _catalog(mo).items():
                if not (isinstance(k, str) and k and isinstance(v, str) and v):
                    continue
                if languages is None or "en" in languages:
                    src = _clean(k)
                    if _reads_like_text(src, "en"):
                        english.add(src)
                if want:
                    text = _clean(v)
                    if _reads_like_text(text, lang) and _translated(_clean(k), text):
                        out.setdefault(lang, set()).add(text)
    if english:
        out["en"] = english
    return {lang: sorted(msgs) for lang, msgs in sorted(out.items())}


def holdout_paragraphs(
    k: int = 5,
    per_language: int = 200,
    locale_dir: Path = LOCALE_DIR,
    languages: set[str] | None = None,
    messages: dict[str, list[str]] | None = None,
) -> list[tuple[str, str]]:
    """(language, paragraph of k messages), at most `per_language` per language."""
    messages = messages if messages is not None else catalog_messages(locale_dir, languages)
    items = []
    for lang, msgs in messages.items():
        msgs = list(msgs)
        random.Random(lang).shuffle(msgs)
        n = min(per_language, len(msgs) // k)
        items += [(lang, " ".join(msgs[i * k : (i + 1) * k])) for i in range(n)]
    return items
