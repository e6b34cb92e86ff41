"""The numba kernel of `ngrams.ngram_chars` (that module says what it computes). Kernel only:
`classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this module and
numba JIT-compiles it)."""

from __future__ import annotations

import numba
import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_STEP = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _fmix(h):
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


@numba.njit(cache=True, nogil=True)
def _ngram_chars(ids, lengths, ks, is_top):
    """ids, lengths: int64 per word; ks: n-gram sizes in words; is_top: 1 = top, 0 = dup.
    Returns characters per size (float64), 0 where nothing repeats."""
    n = ids.shape[0]
    out = np.zeros(ks.shape[0], dtype=np.float64)
    word_h = np.empty(n, dtype=np.uint64)
    for i in range(n):
        word_h[i] = _fmix(np.uint64(ids[i]) * _STEP + np.uint64(1))
    # h[i]: hash of the n-gram of size `cur_k` starting at word i, extended word by word as the
    # sizes grow. Only candidate positions are kept: an n-gram can repeat only where the
    # (n-1)-gram it extends repeated, so each size hashes and groups the previous size's repeats.
    h = np.zeros(n, dtype=np.uint64)
    cand = np.arange(n)
    cur_k = 0
    for s in range(ks.shape[0]):
        k = ks[s]
        m = n - k + 1
        if m <= 1:
            break
        keep = 0
        for c in range(cand.shape[0]):
            if cand[c] < m:
                cand[keep] = cand[c]
                keep += 1
        cand = cand[:keep]
        for j in range(cur_k, k):
            for c in range(keep):
                i = cand[c]
                h[i] = _fmix(h[i] ^ word_h[i + j]) + _STEP
        cur_k = k
        # equal n-grams grouped by an open-addressing table of their hashes (linear probing; the
        # hashes are fmix-mixed, so their low bits index it): per candidate, its group's slot
        mask = 16
        while mask < 2 * keep:
            mask *= 2
        mask -= 1
        keys = np.empty(mask + 1, dtype=np.uint64)
        used = np.zeros(mask + 1, dtype=np.uint8)
        group_count = np.zeros(mask + 1, dtype=np.int64)
        slot = np.empty(keep, dtype=np.int64)
        any_repeat = False
        for c in range(keep):
            x = h[cand[c]]
            j = np.int64(x & np.uint64(mask))
            while used[j] and keys[j] != x:
                j = (j + 1) & mask
            if not used[j]:
                used[j] = 1
                keys[j] = x
            group_count[j] += 1
            if group_count[j] > 1:
                any_repeat = True
            slot[c] = j
        count = np.empty(keep, dtype=np.int64)
        for c in range(keep):
            count[c] = group_count[slot[c]]
        if not any_repeat:
            break
        if is_top[s]:
            top = 0
            for c in range(keep):
                if count[c] > top:
                    top = count[c]
            for c in range(keep):  # candidates ascend: the first in text order
                if count[c] == top:
                    chars = 0
                    for j in range(k):
                        chars += lengths[cand[c] + j]
                    out[s] = top * chars
                    break
        else:
            covered = np.zeros(n, dtype=np.uint8)
            seen = np.zeros(mask + 1, dtype=np.uint8)
            for c in range(keep):  # candidates ascend: every occurrence after the first in text order
                if seen[slot[c]]:
                    p = cand[c]
                    for j in range(k):
                        covered[p + j] = 1
                else:
                    seen[slot[c]] = 1
            total = 0
            for i in range(n):
                if covered[i]:
                    total += lengths[i]
            out[s] = total
        repeated = 0
        for c in range(keep):
            if count[c] > 1:
                cand[repeated] = cand[c]
                repeated += 1
        cand = cand[:repeated]
    return out


@numba.njit(cache=True, nogil=True)
def _words_ngram_chars(codepoints, n, ks, is_top):
    """_ngram_chars of the `n` words in `codepoints` (UTF-32, words separated by one space):
    a word's id is a hash of its code points, its length their count."""
    ids = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    w = 0
    h = np.uint64(0x84222325CBF29CE4)
    length = 0
    for i in range(codepoints.shape[0] + 1):
        if i == codepoints.shape[0] or codepoints[i] == 0x20:
            ids[w] = np.int64(_fmix(h))
            lengths[w] = length
            w += 1
            h = np.uint64(0x84222325CBF29CE4)
            length = 0
        else:
            h = _fmix(h ^ np.uint64(codepoints[i])) + _STEP
            length += 1
    return _ngram_chars(ids, lengths, ks, is_top)
