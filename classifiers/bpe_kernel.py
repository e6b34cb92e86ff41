r"""The numba kernel that counts Llama 3's tokens (`classifiers.tokens.TokenCounter`): the
pre-tokenizer's regex as a hand-written scanner over code points, then byte-level BPE per piece
by merge rank, for a batch of texts in one call. The same counts as tiktoken's `encode_ordinary`
(tests/test_tokens.py compares them on real text in every language of the sample, code, and
random strings of every character class), ~3x faster on one core and without a call per text.

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).

The pre-tokenizer (classifiers.artifacts.LLAMA3_PATTERN), its alternatives tried in order at
each position, the first that matches taking the piece:
  1. (?i:'s|'t|'re|'ve|'m|'ll|'d)   an apostrophe and a contraction, any case (ſ is an s);
  2. [^\r\n\p{L}\p{N}]?\p{L}+      letters, with one character before them that is not a letter,
                                   digit, CR or LF (" word", "(word");
  3. \p{N}{1,3}                    up to three digits;
  4.  ?[^\s\p{L}\p{N}]+[\r\n]*     a run of other characters, after one space, with the line
                                   breaks that follow;
  5. \s*[\r\n]+                    white space up to its last line break;
  6. \s+(?!\S)                     white space but its last character, unless it ends the text;
  7. \s+                           one white-space character.
Each code point is one of CLASSES (a table over all code points, classifiers.tokens builds it
from Python's Unicode database): LETTER (\p{L}), NUMBER (\p{N}), SPACE (Unicode White_Space,
regex's \s) or OTHER; UNSURE marks the code points Python's database leaves unassigned (or
surrogates), whose class tiktoken's newer Unicode may know: a text holding one gets -1, and its
count is tiktoken's.

BPE: a piece that is a vocabulary entry is one token; else tiktoken's merge: from single bytes,
the adjacent pair of lowest rank merges first (the leftmost of equal ones) until no pair is a
vocabulary entry. Vocabulary lookups go through an open-addressing table of FNV-1a hashes
(`slots`: a 33-bit fingerprint of the hash above each entry's token index), and a 2-byte pair's
rank through a 65,536-entry table. The counts of BPE'd pieces of up to CACHE_WIDTH - 2 bytes are
kept in a direct-mapped cache (checked byte for byte) that lives across calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from classifiers.bpe_consts import CACHE_BITS, CACHE_WIDTH, LETTER, NUMBER, OTHER, SPACE, UNSURE
from classifiers.text import FNV_OFFSET, FNV_PRIME

_NO_RANK = np.int64(1) << 62
_CR, _LF, _SP, _APOSTROPHE = 13, 10, 32, 39
_LONG_S = 0x17F  # ſ, which (?i) matches as s


@njit(cache=True)
def _fnv(buf, s, e):
    h = np.uint64(FNV_OFFSET)
    for i in range(s, e):
        h = (h ^ np.uint64(buf[i])) * np.uint64(FNV_PRIME)
    return h


@njit(cache=True)
def _fingerprint(h):
    return np.int64((h >> np.uint64(32)) << np.uint64(31))


@njit(cache=True)
def fill_slots(blob, starts, slots):
    """Enter every vocabulary entry t (bytes blob[starts[t]:starts[t + 1]]) into `slots`."""
    mask = np.uint64(slots.size - 1)
    for t in range(starts.size - 1):
        h = _fnv(blob, starts[t], starts[t + 1])
        j = h & mask
        while slots[j] != -1:
            j = (j + np.uint64(1)) & mask
        slots[j] = _fingerprint(h) | t


@njit(cache=True)
def _rank(buf, s, e, blob, starts, rank, slots):
    """The rank of the bytes buf[s:e], or -1 where they are no vocabulary entry."""
    mask = np.uint64(slots.size - 1)
    h = _fnv(buf, s, e)
    j = h & mask
    fp = _fingerprint(h)
    n = e - s
    while True:
        v = slots[j]
        if v == -1:
            return -1
        t = v & 0x7FFFFFFF
        if v ^ t == fp:
            st = starts[t]
            if starts[t + 1] - st == n:
                same = True
                for k in range(n):
                    if blob[st + k] != buf[s + k]:
                        same = False
                        break
                if same:
                    return np.int64(rank[t])
        j = (j + np.uint64(1)) & mask


@njit(cache=True)
def _merge_rank(buf, s, e, blob, starts, rank, slots):
    r = _rank(buf, s, e, blob, starts, rank, slots)
    return r if r >= 0 else _NO_RANK


@njit(cache=True)
def _bpe_count(buf, n, blob, starts, rank, slots, pair, pos, prk):
    """Tokens of the n bytes in buf by rank-ordered merging; pos and prk: scratch of n + 1.
    pos[i] is part i's first byte, prk[i] the rank of part i merged with part i + 1."""
    m = n + 1
    for i in range(n - 1):
        pos[i] = i
        r = pair[np.int64(buf[i]) * 256 + np.int64(buf[i + 1])]
        prk[i] = r if r >= 0 else _NO_RANK
    pos[n - 1], prk[n - 1] = n - 1, _NO_RANK
    pos[n], prk[n] = n, _NO_RANK
    while True:
        best, i = _NO_RANK, -1
        for k in range(m - 1):
            if prk[k] < best:
                best, i = prk[k], k
        if i < 0:
            return m - 1
        for k in range(i + 1, m - 1):  # part i + 1 joins part i
            pos[k], prk[k] = pos[k + 1], prk[k + 1]
        m -= 1
        if i > 0:
            prk[i - 1] = _merge_rank(buf, pos[i - 1], pos[i + 1], blob, starts, rank, slots) if i + 1 < m else _NO_RANK
        prk[i] = _merge_rank(buf, pos[i], pos[i + 2], blob, starts, rank, slots) if i + 2 < m else _NO_RANK


@njit(cache=True)
def _utf8(cps, a, b, buf):
    n = 0
    for i in range(a, b):
        c = cps[i]
        if c < 0x80:
            buf[n] = c
            n += 1
        elif c < 0x800:
            buf[n], buf[n + 1] = 0xC0 | (c >> 6), 0x80 | (c & 0x3F)
            n += 2
        elif c < 0x10000:
            buf[n], buf[n + 1], buf[n + 2] = 0xE0 | (c >> 12), 0x80 | ((c >> 6) & 0x3F), 0x80 | (c & 0x3F)
            n += 3
        else:
            buf[n], buf[n + 1] = 0xF0 | (c >> 18), 0x80 | ((c >> 12) & 0x3F)
            buf[n + 2], buf[n + 3] = 0x80 | ((c >> 6) & 0x3F), 0x80 | (c & 0x3F)
            n += 4
    return n


@njit(cache=True)
def _piece_count(cps, a, b, buf, blob, starts, rank, slots, pair, pos, prk, ckey, carena):
    n = _utf8(cps, a, b, buf)
    if _rank(buf, 0, n, blob, starts, rank, slots) >= 0:
        return 1
    if n > CACHE_WIDTH - 2:
        return _bpe_count(buf, n, blob, starts, rank, slots, pair, pos, prk)
    h = _fnv(buf, 0, n)
    c = np.int64(h & np.uint64((1 << CACHE_BITS) - 1))
    base = c * CACHE_WIDTH
    key = np.int64(h >> np.uint64(1))
    if ckey[c] == key and carena[base] == n:
        same = True
        for k in range(n):
            if carena[base + 1 + k] != buf[k]:
                same = False
                break
        if same:
            return np.int64(carena[base + CACHE_WIDTH - 1])
    count = _bpe_count(buf, n, blob, starts, rank, slots, pair, pos, prk)
    ckey[c] = key
    carena[base] = n
    for k in range(n):
        carena[base + 1 + k] = buf[k]
    carena[base + CACHE_WIDTH - 1] = count  # a piece of <= 22 bytes has <= 22 tokens
    return count


@njit(cache=True)
def _lower_ascii(c):
    return c | 32 if c < 128 else c


@njit(cache=True)
def _run(cps, j, n, cls, kind):
    while j < n and cls[cps[j]] == kind:
        j += 1
    return j


@njit(cache=True)
def _line_breaks(cps, j, n):
    while j < n and (cps[j] == _CR or cps[j] == _LF):
        j += 1
    return j


@njit(cache=True)
def _piece_end(cps, i, n, cls):
    """Where the pre-tokenizer's piece that starts at i ends (the alternatives in order)."""
    c = cps[i]
    k = cls[c]
    nxt = cls[cps[i + 1]] if i + 1 < n else -1
    if k == SPACE:
        if c != _CR and c != _LF and nxt == LETTER:  # 2, with a space before the letters
            return _run(cps, i + 2, n, cls, LETTER)
        if c == _SP and nxt == OTHER:  # 4, with its space
            return _line_breaks(cps, _run(cps, i + 2, n, cls, OTHER), n)
        w, last_break = i, -1
        while w < n and cls[cps[w]] == SPACE:
            if cps[w] == _CR or cps[w] == _LF:
                last_break = w
            w += 1
        if last_break >= 0:  # 5
            return last_break + 1
        if w == n or w - i == 1:  # 6 to the text's end, or 7
            return w
        return w - 1  # 6
    if c == _APOSTROPHE and i + 1 < n:  # 1
        d = _lower_ascii(cps[i + 1])
        if d == 115 or d == _LONG_S or d == 116 or d == 109 or d == 100:  # s ſ t m d
            return i + 2
        if i + 2 < n:
            e = _lower_ascii(cps[i + 2])
            if (d == 114 and e == 101) or (d == 118 and e == 101) or (d == 108 and e == 108):  # re ve ll
                return i + 3
    if k == LETTER:  # 2
        return _run(cps, i + 1, n, cls, LETTER)
    if k == NUMBER:  # 3
        j = i + 1
        while j < n and j < i + 3 and cls[cps[j]] == NUMBER:
            j += 1
        return j
    if nxt == LETTER:  # 2, with the character before the letters (not CR or LF: those are SPACE)
        return _run(cps, i + 2, n, cls, LETTER)
    return _line_breaks(cps, _run(cps, i + 1, n, cls, OTHER), n)  # 4


@njit(cache=True)
def count_batch(cps, offsets, cls, blob, starts, rank, slots, pair, ckey, carena):
    """Token counts of the texts cps[offsets[t]:offsets[t + 1]] (code points); -1 for a text
    with an UNSURE code point."""
    n_texts = offsets.size - 1
    out = np.zeros(n_texts, np.int64)
    longest = 0
    for t in range(n_texts):
        longest = max(longest, offsets[t + 1] - offsets[t])
    buf = np.empty(4 * longest + 4, np.uint8)
    pos = np.empty(4 * longest + 4, np.int64)
    prk = np.empty(4 * longest + 4, np.int64)
    for t in range(n_texts):
        a, b = offsets[t], offsets[t + 1]
        unsure = False
        for i in range(a, b):
            if cls[cps[i]] == UNSURE:
                unsure = True
                break
        if unsure:
            out[t] = -1
            continue
        text = cps[a:b]
        n = b - a
        total, i = 0, 0
        while i < n:
            j = _piece_end(text, i, n, cls)
            total += _piece_count(text, i, j, buf, blob, starts, rank, slots, pair, pos, prk, ckey, carena)
            i = j
        out[t] = total
    return out


@njit(cache=True)
def piece_ends(cps, cls):
    """Where each of the pre-tokenizer's pieces of the text cps ends (NativeLlama3.pieces)."""
    n = cps.size
    out = np.empty(n, np.int64)
    i, k = 0, 0
    while i < n:
        i = _piece_end(cps, i, n, cls)
        out[k] = i
        k += 1
    return out[:k].copy()
