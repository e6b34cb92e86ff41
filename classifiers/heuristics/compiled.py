"""The heuristics' compiled passes: TextStats' word pass (for text in spaced scripts, and its
counterpart for text with an unspaced script), its stop-word count, and CodeStats' count of
literal data and line lengths. Their numba kernels are in compiled_kernels.py
(`classifiers.kernels` compiles them ahead of time); this module holds the Python side.

The word pass: the pure-Python pass (`TextStats._word_pass_python`) splits the lower-cased text on whitespace,
strips punctuation from both ends of each token and classifies what is left with a regex per
token; it was the largest single cost of the heuristics (~70 us of ~185 per web document).
Here one loop over the text's code points does the same with a table of per-code-point flags,
built from Python's own predicates, so the answers are Python's to the letter:
- SPACE: `str.isspace()`, what `str.split()` splits on;
- PUNCT: in `textstats.PUNCTUATION`, what the word pass strips from a token's ends;
- LETTER: `str.isalnum()` and not `str.isdecimal()`, the regex class `[^\\W\\d_]`;
- DIGIT: `str.isdecimal()`, the regex class `\\d`;
- BREAK: where `str.splitlines()` ends a line (the same pass counts each line's words);
- MARK, CLOSER, CJK_END: the sentence-end patterns' classes (the same pass counts sentences).
The loop returns the counts and the stripped words' code points joined by spaces, which the
stop-word count (`count_members`: the language's list as a hash table) and the n-gram kernel read
as they are; `split_joined` makes the strings where a list is wanted. For text with an unspaced
script (`unspaced_pass`) the tokens are textstats' _TOKEN_RE's, with a per-code-point table of
the unspaced scripts built by the regexes of their classes, and the same loop measures each
line (its tokens, unspaced characters and length) as line_word_count and line_length read them.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from classifiers.kernels import kernels
from classifiers.text import FNV_OFFSET, FNV_PRIME

SPACE, PUNCT, LETTER, DIGIT, BREAK, MARK, CLOSER, CJK_END = 1, 2, 4, 8, 16, 32, 64, 128
# what str.splitlines() breaks lines at (all of them whitespace too)
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _build_flags(classes: tuple[str, str, str, str]) -> np.ndarray:
    from classifiers.unicode_tables import N_CODE_POINTS

    flags = bytearray(N_CODE_POINTS)
    punctuation, marks, closers, cjk_ends = (frozenset(c) for c in classes)
    for cp in range(N_CODE_POINTS):
        ch = chr(cp)
        f = 0
        if ch.isspace():
            f |= SPACE
        if ch in LINE_BREAKS:
            f |= BREAK
        if ch in punctuation:
            f |= PUNCT
        if ch in marks:
            f |= MARK
        if ch in closers:
            f |= CLOSER
        if ch in cjk_ends:
            f |= CJK_END
        if ch.isdecimal():
            f |= DIGIT
        elif ch.isalnum():
            f |= LETTER
        flags[cp] = f
    return np.frombuffer(bytes(flags), dtype=np.uint8).copy()


@functools.lru_cache(maxsize=4)
def _flags(classes: tuple[str, str, str, str]) -> np.ndarray:
    from classifiers.unicode_tables import cached_table

    digest = hashlib.sha256("\0".join(classes).encode("utf-8")).hexdigest()[:12]
    return cached_table("heuristics-word-flags", f"3-{digest}", lambda: _build_flags(classes))


def word_pass(lower: str, classes: tuple[str, str, str, str]) -> tuple:
    """For `lower` (the lower-cased text, no unspaced script) and `classes`
    (textstats.COMPILED_CLASSES: the punctuation stripped from the words' ends, the sentence
    marks, the closers after them, the CJK full stops): TextStats._word_pass's counts (tokens,
    words, words with a letter, total length of the words); its line_word_counts (the words of
    each non-blank line, as str.splitlines() and str.split() count them; lower-casing moves no
    whitespace); the stripped words' code points joined by single spaces (UTF-32: what the
    stop-word count and the n-gram kernel read, `split_joined` makes the strings, no word holds
    whitespace); and the sentence ends (textstats' _SENTENCE_END_RE and _CJK_SENTENCE_END_RE
    matches)."""
    codes = np.frombuffer(lower.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n_tokens, n_alpha, n_numbers, total_len, joined, per_line, ends = kernels().word_pass(codes, _flags(classes))
    return (n_tokens, n_alpha + n_numbers, n_alpha, total_len), per_line.tolist(), joined, ends


def split_joined(joined: np.ndarray) -> list[str]:
    """The words of a pass's `joined` code points (words separated by single spaces)."""
    return joined.tobytes().decode("utf-32-le", "surrogatepass").split(" ") if joined.size else []


def _fnv1a(word: str) -> int:
    """compiled_kernels.count_members' hash of a word: FNV-1a over its code points, 64 bits."""
    h = FNV_OFFSET
    for c in word:
        h = ((h ^ ord(c)) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


@functools.lru_cache(maxsize=256)
def _member_table(words: frozenset[str]) -> tuple[np.ndarray, ...]:
    """(slots, hashes, offsets, codes): `words` (non-empty, no whitespace) as count_members' set."""
    ordered = sorted(words)
    hashes = np.array([_fnv1a(w) for w in ordered], dtype=np.uint64)
    offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in ordered], out=offsets[1:])
    codes = np.frombuffer("".join(ordered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    size = 1 << max(4, (4 * len(ordered) - 1).bit_length())  # at most a quarter full
    slots = np.full(size, -1, dtype=np.int32)
    for k, h in enumerate(hashes.tolist()):
        i = h & (size - 1)
        while slots[i] >= 0:
            i = (i + 1) & (size - 1)
        slots[i] = k
    return slots, hashes, offsets, codes


def count_members(joined: np.ndarray, words: frozenset[str]) -> int:
    """How many of the words in `joined` (a pass's code points, words separated by single
    spaces) are in `words`: sum(map(words.__contains__, split_joined(joined))), without making
    a string per word."""
    return kernels().count_members(joined, *_member_table(words))


def _build_scripts(classes: tuple[str, str, str]) -> np.ndarray:
    """uint8 per code point: 1, 2, 3 where the regex class `[classes[k-1]]` matches, else 0 (the
    classes are disjoint), found by the regexes themselves over a string of every code point."""
    import re

    from classifiers.unicode_tables import N_CODE_POINTS

    every = "".join(map(chr, range(N_CODE_POINTS)))
    table = np.zeros(N_CODE_POINTS, dtype=np.uint8)
    for k, cls in enumerate(classes, 1):
        for m in re.finditer(f"[{cls}]", every):
            table[m.start()] = k
    return table


@functools.lru_cache(maxsize=4)
def _scripts(classes: tuple[str, str, str]) -> np.ndarray:
    from classifiers.unicode_tables import cached_table

    digest = hashlib.sha256("\0".join(classes).encode("utf-8")).hexdigest()[:12]
    return cached_table("heuristics-unspaced-scripts", f"1-{digest}", lambda: _build_scripts(classes))


def unspaced_pass(lower: str, text: str, classes: tuple[str, str, str, str], scripts: tuple[str, str, str]) -> tuple:
    """For text with an unspaced script: `lower` (the lower-cased text), `text` (as it is),
    `classes` (textstats.COMPILED_CLASSES) and `scripts` (textstats' _HAN, _KANA, _SEA
    classes): TextStats._word_pass's counts and the joined words (as `word_pass` returns them)
    over `lower`'s _TOKEN_RE tokens (every unspaced-script character a token of its own); then
    over `text`, the characters of each script (han, kana, sea), each non-blank line's tokens,
    unspaced-script characters and length (the inputs of line_word_count and line_length), and
    the sentence ends (_sentence_ends_python's count)."""
    flags, table = _flags(classes), _scripts(scripts)
    codes = np.frombuffer(lower.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    raw = codes if lower == text else np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n_tokens, n_alpha, n_numbers, total_len, joined, per_script, tokens, unspaced, lengths, ends = (
        kernels().unspaced_pass(codes, raw, flags, table)
    )
    word_pass = (n_tokens, n_alpha + n_numbers, n_alpha, total_len)
    return word_pass, joined, per_script[1:].tolist(), tokens.tolist(), unspaced.tolist(), lengths.tolist(), ends
