"""What the natural-language rule sets measure, computed once per document and shared.

`TextStats(text, language)` is a lazy view of one document: lines, paragraphs, words and the
per-line facts are computed on first use and cached, so every rule set that needs (say) the
words reuses the same list, and a disabled rule set costs nothing.

Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar) are the
one thing whitespace splitting gets badly wrong: a whole Chinese sentence would be one "word".
Here every character of such a script is its own token, and counts that mean "words" weigh it
by a characters-per-word figure for its script (a Chinese word is about 1.5 characters,
Japanese kana about 2, Thai and its neighbours about 4 code points), so a 300-character Chinese
paragraph counts as the ~200 words it holds, not as 1 or 300. Korean puts spaces between words
and is split on them; its word *lengths* count letters (jamo), not syllable blocks (below).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from itertools import compress, filterfalse, repeat
from operator import not_

import numpy as np

from classifiers.heuristics.lazy import lazy
from classifiers.heuristics.stopwords import STOP_SUBSTRINGS, STOP_WORDS

# --- Character classes --------------------------------------------------------------------

# Scripts without spaces between words, with characters per word for each. The figures are
# the usual rough averages (Chinese words ~1.5 characters; Japanese, mixing kanji and kana,
# ~2; Thai/Lao/Khmer/Myanmar words ~4 code points, vowel and tone marks included). They only
# scale counts that are in words (word count, words per line) so the English-tuned thresholds
# keep their meaning; nothing is segmented for real.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = "\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"
# Thai, Lao, Myanmar, Khmer letters and marks (their digits and punctuation left out).
_SEA = "\u0e00-\u0e4e\u0e80-\u0ecf\u0edc-\u0eff\u1000-\u103f\u1050-\u109f\u1780-\u17d3\u17d7-\u17df"
HAN_CHARS_PER_WORD = 1.5
KANA_CHARS_PER_WORD = 2.0
SEA_CHARS_PER_WORD = 4.0
# A word of a space-delimited language plus its space is about 6 characters; used to turn a
# line of unspaced script into the length an English line with the same words would have.
LATIN_CHARS_PER_WORD = 6.0

_NOSPACE = _HAN + _KANA + _SEA
_HAS_NOSPACE = re.compile(f"[{_NOSPACE}]")
_HAN_RE = re.compile(f"[{_HAN}]")
_KANA_RE = re.compile(f"[{_KANA}]")
_SEA_RE = re.compile(f"[{_SEA}]")
_NOSPACE_RE = re.compile(f"[{_NOSPACE}]")
_HANGUL_RE = re.compile("[\uac00-\ud7a3]")

_DIGIT_RE = re.compile(r"\d")
# A letter in the regex sense the word pass uses: a word character that is not a decimal digit
# or "_" (letters, and numerics such as "½" or "Ⅻ").
_LETTER_RE = re.compile(r"[^\W\d_]")

# Punctuation removed from both ends of a word before it is measured or compared. Not \W:
# that would also strip the combining vowel signs that end many Indic words.
PUNCTUATION = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "¡¿«»‹›“”„‟‘’‚‛…‥–—―‐‑‒·•′″§¶†‡°"
    "、。，．！？：；（）《》〈〉「」『』【】〔〕〖〗〘〙〚〛・｛｝［］＂＇｀～｜＼／＠＃＄％＾＆＊＋＝＜＞｡｢｣､"
    "،؛؟۔٪٫٬।॥։՞՝՜՛։።፣፤፥፦፧၊။។៕៖"
)
_PUNCT_CLASS = "".join(re.escape(c) for c in sorted(set(PUNCTUATION)))
_PUNCT_RE = re.compile(f"[{_PUNCT_CLASS}]")
# One token per unspaced-script character (with the punctuation glued to it, as "word." is one
# token in English), whitespace-delimited runs for everything else.
_TOKEN_RE = re.compile(f"[{_PUNCT_CLASS}]*[{_NOSPACE}][{_PUNCT_CLASS}]*|[^\\s{_NOSPACE}]+")

# Sentence-final punctuation of the scripts we see. A line "ends in terminal punctuation"
# when its last character is one of these (C4 also accepts a closing quote, so do we).
TERMINAL_PUNCTUATION = frozenset(
    ".!?…‼⁇⁈⁉"  # Latin, Cyrillic, Greek, ...
    "\"”»’'」』"  # a closing quote, as in C4
    "。！？．｡"  # CJK full-width forms
    "؟۔"  # Arabic question mark, Urdu full stop
    "।॥"  # Devanagari and related danda
    "։՞"  # Armenian full stop and question mark
    "።፧"  # Ethiopic
    "။"  # Myanmar
    "។៕"  # Khmer
    "།"  # Tibetan
)
# Greek writes its question mark as ';' (U+037E, which NFC turns into U+003B).
_EXTRA_TERMINAL = {"el": frozenset(";")}
# Thai and Lao end sentences with a space, not a mark: terminal-punctuation rules do not apply.
NO_TERMINAL_PUNCTUATION_LANGUAGES = frozenset({"th", "lo"})

_MARKS = ".!?…‼⁇⁈⁉؟۔।॥։՞።፧။។៕།"
# A run of marks, optional closing quotes/brackets, then a space or the end; CJK full stops need
# no space after them. Two patterns, each starting with a character class so that the regex
# engine skips ahead to candidate characters instead of trying every position (it cannot
# through an alternation of classes); their first characters and matches are disjoint, so
# their counts add up to the count of the one pattern with both branches.
_CLOSERS = "\"'”’»」』)]"  # closing quotes and brackets after the marks
_CJK_ENDS = "。！？｡"
_SENTENCE_END_RE = re.compile(f"[{_MARKS}][{_MARKS}]*[{''.join(map(re.escape, _CLOSERS))}]*(?=\\s|$)")
_CJK_SENTENCE_END_RE = re.compile(f"[{_CJK_ENDS}][{_CJK_ENDS}]*")
# the character classes the compiled passes read (compiled.py): stripped punctuation, sentence marks,
# closers after them, CJK full stops; and the unspaced scripts' classes
COMPILED_CLASSES = (PUNCTUATION, _MARKS, _CLOSERS, _CJK_ENDS)
UNSPACED_SCRIPTS = (_HAN, _KANA, _SEA)

BULLETS = (
    "•",
    "●",
    "○",
    "◦",
    "▪",
    "▫",
    "■",
    "□",
    "‣",
    "⁃",
    "∙",
    "·",
    "►",
    "▶",
    "▸",
    "▹",
    "➢",
    "➤",
    "→",
    "✓",
    "✔",
    "✗",
    "✘",
    "❖",
    "◆",
    "◇",
    "- ",
    "* ",
    "+ ",
    "– ",
    "— ",
)
ELLIPSES = ("...", "…")
TOP_NGRAM_SIZES = (2, 3, 4)
DUPLICATE_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t\r\f\v]*\n")

JAVASCRIPT = "javascript"
# C4's boilerplate policy phrases (Raffel et al. 2020, section 2.2).
POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


@functools.lru_cache(maxsize=1024)  # called per document with a few distinct values
def normalize_language(language: str | None) -> str:
    """'zh-Hant' -> 'zh', 'EN' -> 'en', None -> ''."""
    if not language:
        return ""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


@functools.lru_cache(maxsize=1024)
def _terminal_marks(language: str) -> tuple[str, ...]:
    """The characters that end a sentence in `language`, as str.endswith takes them."""
    return tuple(TERMINAL_PUNCTUATION | _EXTRA_TERMINAL.get(language, frozenset()))


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(number of items equal to an earlier item, total characters of those items): the items
    less the distinct ones, and their characters less the distinct ones' (each distinct item's
    first occurrence is the one not counted). Set and sums in C."""
    distinct = set(items)
    n_dup = len(items) - len(distinct)
    return n_dup, (sum(map(len, items)) - sum(map(len, distinct)) if n_dup else 0)


class TextStats:
    """Lazy, cached facts about one natural-language document (see the module docstring)."""

    def __init__(self, text: str, language: str | None, length_scale: float = 1.0):
        self.text = text
        self.language = normalize_language(language)
        # the whole document's length over `text`'s, when `text` is a prefix of it: counts of
        # words scale by it, ratios are taken from the prefix as they are
        self.length_scale = length_scale

    # --- script --------------------------------------------------------------------------

    @lazy
    def has_unspaced_script(self) -> bool:
        if self.text.isascii():  # O(1) on CPython's ASCII strings
            return False
        return _HAS_NOSPACE.search(self.text) is not None

    @lazy
    def unspaced_chars(self) -> int:
        """The unspaced-script characters (_NOSPACE_RE's matches)."""
        return sum(self._unspaced_pass[2]) if self.has_unspaced_script else 0

    @lazy
    def unspaced_word_units(self) -> float:
        """The unspaced-script characters, expressed in words."""
        if not self.has_unspaced_script:
            return 0.0
        han, kana, sea = self._unspaced_pass[2]  # _HAN_RE's, _KANA_RE's and _SEA_RE's matches
        return han / HAN_CHARS_PER_WORD + kana / KANA_CHARS_PER_WORD + sea / SEA_CHARS_PER_WORD

    def _unspaced_chars_python(self) -> tuple[int, int, int]:
        """The characters of each unspaced script, by the regexes (what the compiled pass counts)."""
        t = self.text
        return len(_HAN_RE.findall(t)), len(_KANA_RE.findall(t)), len(_SEA_RE.findall(t))

    @lazy
    def unspaced_chars_per_word(self) -> float:
        """This document's mix of unspaced scripts, as one characters-per-word figure."""
        if not self.unspaced_chars:
            return 1.0
        return self.unspaced_chars / self.unspaced_word_units

    def line_word_count(self, line: str) -> float:
        if not self.has_unspaced_script:
            return float(len(line.split()))
        n_unspaced = len(_NOSPACE_RE.findall(line))
        if not n_unspaced:
            return float(len(line.split()))
        others = len(_TOKEN_RE.findall(line)) - n_unspaced
        return others + n_unspaced / self.unspaced_chars_per_word

    @lazy
    def line_word_counts(self) -> list[float]:
        """line_word_count of every line of `lines` (from the compiled passes' counts of its
        tokens and unspaced-script characters: the same expression)."""
        if not self.has_unspaced_script:
            return self._spaced_pass[1]
        _, _, _, tokens, unspaced, _, _ = self._unspaced_pass
        per_word = self.unspaced_chars_per_word
        return [(t - u) + u / per_word if u else float(t) for t, u in zip(tokens, unspaced)]

    def _line_word_counts_python(self) -> list[float]:
        """line_word_counts of text without an unspaced script, by str.split (what the
        compiled pass counts)."""
        return list(map(float, map(len, map(str.split, self.lines))))

    @lazy
    def line_lengths(self) -> list[float]:
        """line_length of every line of `lines` (with an unspaced script, from the compiled
        pass's lengths and counts of unspaced-script characters: the same expression)."""
        if not self.has_unspaced_script:
            return list(map(float, map(len, self.lines)))
        _, _, _, _, unspaced, lengths, _ = self._unspaced_pass
        weight = LATIN_CHARS_PER_WORD / self.unspaced_chars_per_word
        return [n - u + u * weight for n, u in zip(lengths, unspaced)]

    def line_length(self, line: str) -> float:
        """Length in characters, an unspaced-script character counting as the Latin
        characters of the word share it stands for."""
        if not self.has_unspaced_script:
            return float(len(line))
        n_unspaced = len(_NOSPACE_RE.findall(line))
        weight = LATIN_CHARS_PER_WORD / self.unspaced_chars_per_word
        return len(line) - n_unspaced + n_unspaced * weight

    # --- lines and paragraphs --------------------------------------------------------------

    @lazy
    def lines(self) -> list[str]:
        """Non-blank lines, stripped."""
        return list(filter(None, map(str.strip, self.text.splitlines())))

    @lazy
    def paragraphs(self) -> list[str]:
        """Blocks separated by blank lines, stripped, blank ones dropped."""
        return list(filter(None, map(str.strip, _PARAGRAPH_SPLIT_RE.split(self.text))))

    @lazy
    def line_chars(self) -> int:
        return sum(map(len, self.lines))

    @lazy
    def duplicate_lines(self) -> tuple[int, int]:
        return _duplicates(self.lines)

    @lazy
    def duplicate_paragraphs(self) -> tuple[int, int]:
        return _duplicates(self.paragraphs)

    @lazy
    def terminal_punct_line_flags(self) -> list[bool] | None:
        """Per line: does it end in sentence-final punctuation? None where the language's
        orthography has none (Thai, Lao)."""
        if self.language in NO_TERMINAL_PUNCTUATION_LANGUAGES:
            return None
        marks = _terminal_marks(self.language)
        # does the line end in one of the marks? In C: a closing ")" or "]" is looked through; the
        # marks contain neither, so the rstrip leaves a line ending in a mark as it is
        return list(map(str.endswith, map(str.rstrip, self.lines, repeat(")]")), repeat(marks)))

    def line_char_fraction(self, flags: Sequence[bool] | None) -> float | None:
        """Share of the line characters that are in the flagged lines."""
        if flags is None or not self.line_chars:
            return None
        return sum(map(len, compress(self.lines, flags))) / self.line_chars

    @lazy
    def sentence_count(self) -> int | None:
        if self.language in NO_TERMINAL_PUNCTUATION_LANGUAGES:
            return None
        if not self.has_unspaced_script:
            n = self._spaced_pass[3]  # the compiled passes count both patterns' matches
        else:
            n = self._unspaced_pass[6]
        if self.language in _EXTRA_TERMINAL:
            n += len(re.findall(r";(?=\s|$)", self.text))
        return n

    def _sentence_ends_python(self) -> int:
        text = self.text
        n = len(_SENTENCE_END_RE.findall(text))
        if not text.isascii():
            n += len(_CJK_SENTENCE_END_RE.findall(text))
        return n

    @lazy
    def lower(self) -> str:
        return self.text.lower()

    # --- words -----------------------------------------------------------------------------

    @lazy
    def tokens(self) -> list[str]:
        """Lower-cased whitespace-delimited tokens; every unspaced-script character is a token
        of its own."""
        if self.has_unspaced_script:
            return _TOKEN_RE.findall(self.lower)
        return self.lower.split()

    @lazy
    def _word_pass(self) -> tuple[int, int, int, int]:
        """(spaced tokens, those with a letter or digit = words, words with a letter, total
        length of the words without surrounding punctuation). One compiled loop (compiled.py)
        gives `_word_pass_python`'s answers: over the text's whitespace-delimited tokens, or, for
        text with an unspaced script, its _TOKEN_RE tokens."""
        if not self.has_unspaced_script:
            return self._spaced_pass[0]
        return self._unspaced_pass[0]

    @lazy
    def _joined(self) -> np.ndarray:
        """The normalised words' code points joined by single spaces (UTF-32), from the same pass."""
        if not self.has_unspaced_script:
            return self._spaced_pass[2]
        return self._unspaced_pass[1]

    @lazy
    def n_normalized_words(self) -> int:
        joined = self._joined
        return int(np.count_nonzero(joined == 0x20)) + 1 if joined.size else 0

    @lazy
    def _spaced_pass(self) -> tuple:
        """(_word_pass, line_word_counts, the words' code points joined by spaces, the sentence
        ends of _SENTENCE_END_RE and _CJK_SENTENCE_END_RE) of text without an unspaced script,
        in one pass (its lower-cased text: lower-casing moves no mark, closer or space)."""
        from classifiers.heuristics.compiled import word_pass  # the compiled kernels: loaded on first use

        return word_pass(self.lower, COMPILED_CLASSES)

    @lazy
    def _unspaced_pass(self) -> tuple:
        """(_word_pass, _joined, the characters of each unspaced script, each line's tokens,
        unspaced-script characters and length, the sentence ends) of text with an unspaced script, in one
        compiled pass over its lower-cased text and one over the text (compiled.unspaced_pass)."""
        from classifiers.heuristics.compiled import unspaced_pass

        return unspaced_pass(self.lower, self.text, COMPILED_CLASSES, UNSPACED_SCRIPTS)

    def _word_pass_python(self) -> tuple[int, int, int, int, list[str]]:
        """`_word_pass` for any text, written as whole-text regexes and map/compress chains so
        per-token work stays in C."""
        tokens = self.tokens
        # str.strip scans its argument on every call: pass only the punctuation this text
        # holds (the same result, as the others cannot be there to strip)
        punctuation = "".join(set(_PUNCT_RE.findall(self.lower)))
        stripped = list(map(str.strip, tokens, repeat(punctuation)))
        normalized = list(filter(None, stripped))  # drops tokens that were all punctuation
        if self.has_unspaced_script:
            spaced_flags = list(map(not_, map(_NOSPACE_RE.search, tokens)))
            spaced = list(compress(stripped, spaced_flags))
        else:
            spaced = stripped
        # The spaced tokens without a letter, stripped ("1999", "3.5", "" for "--"). Stripping
        # removes punctuation only, never a letter, and lower-casing keeps letters letters, so
        # this is the same as finding the letterless tokens of the original text; most tokens
        # are all letters (str.isalpha), and only the others are searched.
        letterless = list(filterfalse(_LETTER_RE.search, compress(spaced, map(not_, map(str.isalpha, spaced)))))
        numbers = list(filter(_DIGIT_RE.search, letterless))
        n_alpha = len(spaced) - len(letterless)
        symbol_chars = sum(map(len, letterless)) - sum(map(len, numbers))
        total_len = sum(map(len, spaced)) - symbol_chars
        return len(spaced), n_alpha + len(numbers), n_alpha, total_len, normalized

    @lazy
    def normalized_words(self) -> list[str]:
        """Lower-cased words without surrounding punctuation (unspaced script: characters);
        what the stop-word and n-gram rules compare (they read `_joined`, the same words)."""
        from classifiers.heuristics.compiled import split_joined

        return split_joined(self._joined)

    @lazy
    def word_count(self) -> float:
        """Words: spaced tokens with a letter or digit, plus unspaced characters in words."""
        return (self._word_pass[1] + self.unspaced_word_units) * self.length_scale

    @lazy
    def alpha_word_fraction(self) -> float | None:
        n_tokens, _, n_alpha, _ = self._word_pass
        units = self.unspaced_word_units
        total = n_tokens + units
        return (n_alpha + units) / total if total else None

    @lazy
    def mean_word_length(self) -> float | None:
        """Mean length of the spaced words, in letters. None when most of the document is in
        an unspaced script (the figure would only restate the characters-per-word guess).

        Korean syllable blocks count as the 2-3 letters (jamo) each one writes: counted in
        blocks, a Korean word is ~3.3 long and 5% of the dev set's 5-sentence Korean
        paragraphs fall under Gopher's minimum of 3; counted in letters, Korean sits at 6-9,
        like Finnish or Turkish.
        """
        _, n_words, _, total_len = self._word_pass
        if n_words == 0 or self.unspaced_word_units > n_words:
            return None
        if not self.text.isascii() and _HANGUL_RE.search(self.text):
            blocks = "".join(_HANGUL_RE.findall(self.text))
            total_len += len(unicodedata.normalize("NFD", blocks)) - len(blocks)
        return total_len / n_words

    @lazy
    def stop_word_count(self) -> int | None:
        """Occurrences of the language's stop words; None if we have no list for it."""
        lang = self.language
        words = STOP_WORDS.get(lang)
        if words is not None:  # sum(map(words.__contains__, self.normalized_words)), compiled
            from classifiers.heuristics.compiled import count_members

            return count_members(self._joined, words)
        subs = STOP_SUBSTRINGS.get(lang)
        if subs is not None:
            text = self.text
            return sum(text.count(s) for s in subs)
        return None

    # --- n-grams ---------------------------------------------------------------------------

    @lazy
    def ngram_chars_per_word(self) -> float:
        """How many tokens make one word, for the n-gram rules: 1, or the characters per word
        of the unspaced script when most of the document is in one. An n-gram rule then looks
        at n words' worth of characters (a Thai "5-gram" spans ~20 code points), not at n
        characters, which repeat far more often than n words do."""
        if self.unspaced_word_units > self._word_pass[1]:
            return self.unspaced_chars_per_word
        return 1.0

    def ngram_size(self, n: int) -> int:
        return max(n, int(n * self.ngram_chars_per_word + 0.5))

    def ngram_words(self, limit: int | None) -> tuple[np.ndarray, int, float]:
        """The words the n-gram rules read (the first `limit`: their code points joined by single
        spaces, and how many), and what one character of theirs is worth as a share of the
        document: 1 / (the characters of the whole document those words stand for). Fractions are
        of the document's characters, spaces and punctuation included, as in datatrove's Gopher
        filter. (Characters of n words joined: the code points less the n - 1 spaces.)"""
        joined, n = self._joined, self.n_normalized_words
        all_chars = joined.size - n + 1 if n else 0
        if limit is not None and n > limit:
            cut = int(np.flatnonzero(joined == 0x20)[limit - 1])  # the space after the limit-th word
            joined, n = joined[:cut], limit
        analysed = joined.size - n + 1 if n else 0
        if not analysed:
            return joined, n, 0.0
        return joined, n, all_chars / analysed / len(self.text)

    @lazy
    def _ngram_cache(self) -> dict:
        """ngram_fractions by word limit."""
        return {}

    def top_ngram_char_fraction(self, n: int, limit: int | None) -> float:
        """Characters of the words of the most frequent word n-gram, all its occurrences, as a
        share of the document's characters (Gopher). 0 when no n-gram occurs twice.
        Overlapping occurrences (a a a) are counted each time; capped at 1."""
        return self.ngram_fractions(limit)[("top", n)]

    def duplicate_ngram_char_fractions(self, limit: int | None) -> dict[int, float]:
        """For n in DUPLICATE_NGRAM_SIZES: characters of the words covered by repeated word
        n-grams (every occurrence after the first), as a share of the document's characters
        (Gopher)."""
        fractions = self.ngram_fractions(limit)
        return {n: fractions[("dup", n)] for n in DUPLICATE_NGRAM_SIZES}

    def ngram_fractions(self, limit: int | None) -> dict[tuple[str, int], float]:
        """All the n-gram signals, {("top", 2): ..., ("dup", 10): ...}, in one climb up the
        n-gram sizes: every occurrence of a repeated n-gram starts with a repeated shorter
        n-gram, so after the full count of 2-grams each size only looks at the positions where
        the size below repeated, and once a size has no repeat, no larger one has. On prose
        that leaves little to count beyond the 2-grams."""
        cached = self._ngram_cache.get(limit)
        if cached is not None:
            return cached
        result = {("top", n): 0.0 for n in TOP_NGRAM_SIZES}
        result.update({("dup", n): 0.0 for n in DUPLICATE_NGRAM_SIZES})
        self._ngram_cache[limit] = result
        joined, n_words, char_share = self.ngram_words(limit)
        if not char_share:
            return result
        sizes = list(result)
        from classifiers.heuristics.ngrams import ngram_chars  # the compiled kernels: loaded on first use

        if self.ngram_chars_per_word == 1.0:  # spaced text: the sizes as named
            in_tokens = sizes
        else:
            in_tokens = [(kind, self.ngram_size(n)) for kind, n in sizes]
        chars = ngram_chars(joined, n_words, in_tokens)
        for (kind, n), c in zip(sizes, chars):
            result[kind, n] = min(1.0, c * char_share)
        return result
