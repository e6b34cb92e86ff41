"""The heuristics' compiled passes (numba): TextStats' word pass for text in spaced scripts, and
CodeStats' count of literal data (`data_bytes`, below).

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
The loop returns the counts and the stripped words joined by spaces; Python splits them (the
stop-word and n-gram rules compare them as strings).
"""

from __future__ import annotations

import functools
import hashlib

import numba
import numpy as np

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


@numba.njit(cache=True, nogil=True)
def _word_pass(codes, flags):
    """(tokens, words with a letter, words with a digit and no letter, their total length,
    the non-empty stripped tokens' code points joined by single spaces, the number of tokens
    of each line that has any)."""
    n = codes.shape[0]
    out = np.empty(n, dtype=np.uint32)
    per_line = np.empty(n // 2 + 1, dtype=np.float64)
    n_tokens = n_alpha = n_numbers = total_len = m = n_lines = 0
    on_line = 0
    i = 0
    while i < n:
        while i < n and flags[codes[i]] & SPACE:
            if flags[codes[i]] & BREAK and on_line:
                per_line[n_lines] = on_line
                n_lines += 1
                on_line = 0
            i += 1
        if i >= n:
            break
        a = i
        while i < n and not flags[codes[i]] & SPACE:
            i += 1
        b = i
        on_line += 1
        while a < b and flags[codes[a]] & PUNCT:
            a += 1
        while b > a and flags[codes[b - 1]] & PUNCT:
            b -= 1
        n_tokens += 1
        letter = digit = False
        for j in range(a, b):
            f = flags[codes[j]]
            if f & LETTER:
                letter = True
                break
            if f & DIGIT:
                digit = True
        if letter:
            n_alpha += 1
            total_len += b - a
        elif digit:
            n_numbers += 1
            total_len += b - a
        if b > a:
            if m:
                out[m] = 0x20
                m += 1
            for j in range(a, b):
                out[m] = codes[j]
                m += 1
    if on_line:
        per_line[n_lines] = on_line
        n_lines += 1
    # sentence ends: textstats' _SENTENCE_END_RE, marks+ closers* then a space or the end (the
    # greedy runs are all the regex can try: giving back a mark or closer leaves one, not a
    # space, before the lookahead), found left to right as findall does; and _CJK_SENTENCE_END_RE,
    # one per run of CJK full stops
    ends = 0
    i = 0
    while i < n:
        f = flags[codes[i]]
        if f & MARK:
            j = i + 1
            while j < n and flags[codes[j]] & MARK:
                j += 1
            while j < n and flags[codes[j]] & CLOSER:
                j += 1
            if j == n or flags[codes[j]] & SPACE:
                ends += 1
                i = j
                continue
        elif f & CJK_END:
            ends += 1
            while i < n and flags[codes[i]] & CJK_END:
                i += 1
            continue
        i += 1
    return n_tokens, n_alpha, n_numbers, total_len, out[:m], per_line[:n_lines], ends


def word_pass(lower: str, classes: tuple[str, str, str, str]) -> tuple:
    """For `lower` (the lower-cased text, no unspaced script) and `classes`
    (textstats.COMPILED_CLASSES: the punctuation stripped from the words' ends, the sentence
    marks, the closers after them, the CJK full stops): TextStats._word_pass's tuple (tokens,
    words, words with a letter, total length of the words, the stripped words); its
    line_word_counts (the words of each non-blank line, as str.splitlines() and str.split()
    count them; lower-casing moves no whitespace); the words' code points joined by single
    spaces (UTF-32, what the n-gram kernel reads); and the sentence ends (textstats'
    _SENTENCE_END_RE and _CJK_SENTENCE_END_RE matches). The words come back joined and are split
    in Python (no word holds whitespace): one string to decode, not a slice per word."""
    codes = np.frombuffer(lower.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n_tokens, n_alpha, n_numbers, total_len, joined, per_line, ends = _word_pass(codes, _flags(classes))
    words = joined.tobytes().decode("utf-32-le", "surrogatepass").split(" ") if joined.size else []
    return (n_tokens, n_alpha + n_numbers, n_alpha, total_len, words), per_line.tolist(), joined, ends


# ----------------------------------------------------------------------------- code files


@numba.njit(cache=True, nogil=True)
def _is_alnum_byte(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)  # ASCII letters and digits


@numba.njit(cache=True, nogil=True)
def _is_word_byte(c):
    return _is_alnum_byte(c) or c == 95  # bytes regex \w


@numba.njit(cache=True, nogil=True)
def _is_hex(c):
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


@numba.njit(cache=True, nogil=True)
def _hex_run(raw, start, count):
    """Whether `count` hex digits start at `start`."""
    if start + count > raw.shape[0]:
        return False
    for j in range(start, start + count):
        if not _is_hex(raw[j]):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def data_bytes(raw, min_blob):
    """(visible bytes, data bytes) of a code file's UTF-8 bytes, as codestats.CodeStats'
    regexes count them: the bytes of every match of _NUMBER_RE, plus those of every match of
    _ESCAPE_RE (each regex's own non-overlapping scan), plus every run of base64 bytes of
    `min_blob` or more."""
    n = raw.shape[0]
    visible = 0
    for i in range(n):
        c = raw[i]
        if not (c == 32 or 9 <= c <= 13):  # string.whitespace
            visible += 1
    data = 0
    i = 0
    while i < n:  # _NUMBER_RE: [0-9](?<![\w.][0-9])[\w.]*[,;]?
        c = raw[i]
        if 48 <= c <= 57 and (i == 0 or not (_is_word_byte(raw[i - 1]) or raw[i - 1] == 46)):
            j = i + 1
            while j < n and (_is_word_byte(raw[j]) or raw[j] == 46):
                j += 1
            if j < n and (raw[j] == 44 or raw[j] == 59):
                j += 1
            data += j - i
            i = j
        else:
            i += 1
    i = 0
    while i < n:  # _ESCAPE_RE: \\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3})[,;]?
        if raw[i] == 92 and i + 1 < n:
            c = raw[i + 1]
            j = -1
            if c == 120 and _hex_run(raw, i + 2, 2):
                j = i + 4
            elif c == 117 and _hex_run(raw, i + 2, 4):
                j = i + 6
            elif c == 85 and _hex_run(raw, i + 2, 8):
                j = i + 10
            elif 48 <= c <= 55:
                j = i + 2
                while j < n and j < i + 4 and 48 <= raw[j] <= 55:
                    j += 1
            if j > 0:
                if j < n and (raw[j] == 44 or raw[j] == 59):
                    j += 1
                data += j - i
                i = j
                continue
        i += 1
    run = 0
    for i in range(n + 1):  # base64 runs: [A-Za-z0-9+/=]{min_blob,}
        if i < n and (_is_alnum_byte(raw[i]) or raw[i] in (43, 47, 61)):
            run += 1
        else:
            if run >= min_blob:
                data += run
            run = 0
    return visible, data


@numba.njit(cache=True, nogil=True)
def code_bytes(raw):
    """(the longest "\\n"-separated line's length in characters, the ASCII letters and digits) of
    a text's UTF-8 bytes: a character starts at every byte that is not a continuation byte
    (10xxxxxx; a lone surrogate, kept by "surrogatepass", is one 3-byte character)."""
    longest = current = alnum = 0
    for i in range(raw.shape[0]):
        c = raw[i]
        if c == 10:
            if current > longest:
                longest = current
            current = 0
            continue
        if c < 0x80 or c >= 0xC0:
            current += 1
        if _is_alnum_byte(c):
            alnum += 1
    if current > longest:
        longest = current
    return longest, alnum
