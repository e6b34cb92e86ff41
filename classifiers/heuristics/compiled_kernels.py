"""The numba kernels of the heuristics' compiled passes (`compiled.py` holds their Python side
and says what they compute): the word passes over a text's code points (spaced scripts, and text
with an unspaced script), the stop-word count over their joined words, and the code files'
counts over their UTF-8 bytes. Kernels only: `classifiers.kernels` compiles them ahead of time
(or, where it cannot, imports this module and numba JIT-compiles them)."""

from __future__ import annotations

import numba
import numpy as np

from classifiers.heuristics.compiled import BREAK, CJK_END, CLOSER, DIGIT, LETTER, MARK, PUNCT, SPACE
from classifiers.text import FNV_OFFSET, FNV_PRIME


@numba.njit(cache=True, nogil=True)
def _word_pass(codes, flags):
    """(tokens, words with a letter, words with a digit and no letter, their total length,
    the non-empty stripped tokens' code points joined by single spaces, the number of tokens
    of each line that has any)."""
    n = codes.shape[0]
    out = np.empty(n, dtype=np.uint32)
    per_line = np.empty(n // 2 + 1, dtype=np.float64)
    counts = np.zeros(4, dtype=np.int64)  # tokens, words with a letter, with a digit only, their length
    m = n_lines = on_line = 0
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
        on_line += 1
        m = _take_token(codes, flags, a, i, out, m, counts, True)
    if on_line:
        per_line[n_lines] = on_line
        n_lines += 1
    ends = _sentence_ends(codes, flags)
    return counts[0], counts[1], counts[2], counts[3], out[:m], per_line[:n_lines], ends


@numba.njit(cache=True, nogil=True)
def _take_token(codes, flags, a, b, out, m, counts, count):
    """The token codes[a:b], stripped of punctuation at both ends: its code points appended to
    `out` at `m`, after a space where `out` holds a word already (if anything is left of it), and,
    with `count`, the token counted in `counts` (tokens; words with a letter; words with a digit
    and no letter; those words' total length). Returns `m` after it."""
    while a < b and flags[codes[a]] & PUNCT:
        a += 1
    while b > a and flags[codes[b - 1]] & PUNCT:
        b -= 1
    if count:
        kind = 0
        for j in range(a, b):
            f = flags[codes[j]]
            if f & LETTER:
                kind = 1
                break
            if f & DIGIT:
                kind = 2
        counts[0] += 1
        if kind:
            counts[kind] += 1
            counts[3] += b - a
    if b > a:
        if m:
            out[m] = 0x20
            m += 1
        for j in range(a, b):
            out[m] = codes[j]
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _sentence_ends(codes, flags):
    """textstats' _SENTENCE_END_RE matches plus _CJK_SENTENCE_END_RE matches in `codes`."""
    # _SENTENCE_END_RE: marks+ closers* then a space or the end (the greedy runs are all the
    # regex can try: giving back a mark or closer leaves one, not a space, before the
    # lookahead), found left to right as findall does; _CJK_SENTENCE_END_RE: one per run of CJK
    # full stops
    n = codes.shape[0]
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
    return ends


@numba.njit(cache=True, nogil=True)
def _token_end(codes, flags, script, i, e):
    """The end of textstats' _TOKEN_RE match at i (< e, not a space), as findall finds it, and
    whether it is an unspaced-script token: `[P]*[N][P]*` (punctuation, one character of an
    unspaced script, punctuation) where the run of punctuation from i is followed by such a
    character (P and N are disjoint, so backtracking the first run never finds another), else
    `[^\\sN]+` (the characters up to a space or an unspaced-script character; i is neither)."""
    j = i
    while j < e and flags[codes[j]] & PUNCT:
        j += 1
    if j < e and script[codes[j]]:
        j += 1
        while j < e and flags[codes[j]] & PUNCT:
            j += 1
        return j, True
    j = i + 1
    while j < e and not flags[codes[j]] & SPACE and not script[codes[j]]:
        j += 1
    return j, False


@numba.njit(cache=True, nogil=True)
def _unspaced_pass(lower, text, flags, script):
    """TextStats' word pass and per-line counts for text with an unspaced script (see
    compiled.unspaced_pass): over `lower`'s tokens (_TOKEN_RE), the spaced tokens' counts as
    _word_pass_python makes them and every non-empty stripped token's code points joined by
    single spaces; over `text`, the characters of each unspaced script (script 1, 2, 3), and per
    non-blank line (str.splitlines, stripped) its tokens, its unspaced-script characters and its
    length; and the sentence ends."""
    n = lower.shape[0]
    out = np.empty(2 * n, dtype=np.uint32)
    counts = np.zeros(4, dtype=np.int64)  # spaced tokens, words with a letter, with a digit only, their length
    m = i = 0
    while i < n:
        if flags[lower[i]] & SPACE:
            i += 1
            continue
        b, unspaced = _token_end(lower, flags, script, i, n)
        m = _take_token(lower, flags, i, b, out, m, counts, not unspaced)
        i = b
    per_script = np.zeros(4, dtype=np.int64)
    t = text.shape[0]
    line_tokens = np.empty(t // 2 + 1, dtype=np.int64)
    line_unspaced = np.empty(t // 2 + 1, dtype=np.int64)
    line_len = np.empty(t // 2 + 1, dtype=np.int64)
    n_lines = 0
    s = 0
    while s <= t:
        e = s
        while e < t and not flags[text[e]] & BREAK:
            e += 1
        a, b = s, e
        while a < b and flags[text[a]] & SPACE:
            a += 1
        while b > a and flags[text[b - 1]] & SPACE:
            b -= 1
        for j in range(s, e):
            per_script[script[text[j]]] += 1
        if b > a:
            tokens = unspaced = 0
            j = a
            while j < b:
                if flags[text[j]] & SPACE:
                    j += 1
                    continue
                j, _ = _token_end(text, flags, script, j, b)
                tokens += 1
            for j in range(a, b):
                if script[text[j]]:
                    unspaced += 1
            line_tokens[n_lines] = tokens
            line_unspaced[n_lines] = unspaced
            line_len[n_lines] = b - a
            n_lines += 1
        s = e + 1
    return (
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        out[:m].copy(),
        per_script,
        line_tokens[:n_lines].copy(),
        line_unspaced[:n_lines].copy(),
        line_len[:n_lines].copy(),
        _sentence_ends(text, flags),
    )


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


# ----------------------------------------------------------------------------- word sets


@numba.njit(cache=True, nogil=True)
def count_members(joined, slots, hashes, offsets, codes):
    """How many of the words in `joined` (code points, words separated by one space, none empty)
    are in the set whose words are codes[offsets[k]:offsets[k + 1]] with FNV-1a hashes
    hashes[k], found through `slots` (open addressing, a power of two long, -1 empty; a word's
    probe starts at its hash modulo the length and goes on to the next slot)."""
    n = joined.shape[0]
    mask = np.uint64(slots.shape[0] - 1)
    count = 0
    a = 0
    while a < n:
        h = np.uint64(FNV_OFFSET)
        b = a
        while b < n and joined[b] != 0x20:
            h = (h ^ np.uint64(joined[b])) * np.uint64(FNV_PRIME)
            b += 1
        i = h & mask
        while True:
            k = slots[i]
            if k < 0:
                break
            if hashes[k] == h and offsets[k + 1] - offsets[k] == b - a:
                s = offsets[k]
                same = True
                for t in range(b - a):
                    if codes[s + t] != joined[a + t]:
                        same = False
                        break
                if same:
                    count += 1
                    break
            i = (i + np.uint64(1)) & mask
        a = b + 1
    return count
