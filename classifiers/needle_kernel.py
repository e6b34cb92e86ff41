"""The numba kernel behind the keyword patterns' pre-filter (`langid.content_scores`): which of a
set of ASCII strings (needles) occur in a text, in one pass over its UTF-8 bytes instead of one
`str.__contains__` scan of the text per needle (136 of them per document, half of the patterns'
time on code).

Exact: an ASCII byte in UTF-8 only ever encodes that ASCII character, so an ASCII needle occurs
in a text iff its bytes occur in the text's UTF-8 bytes; a folded needle (lower-case) is looked
for in the bytes lower-cased A-Z only, which is `str.lower` for ASCII text (the only text the
folded needles are looked for in). tests/test_code_detect.py compares it with `in`.

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def needles_present(data, pairs, first, order, needles, offsets, folded, fold, words):
    """Set bit k of `words` (uint64s, zeroed by the caller) for each needle k that occurs in
    `data` (bytes); returns how many occur.

    Needle k is needles[offsets[k]:offsets[k + 1]] (at least one byte); `order[first[key]:
    first[key + 1]]` lists the needles whose first byte is `key` (case-sensitive needles) or
    `256 + key` (folded needles, written in lower case; looked for only when `fold`), and
    `folded[k]` is 1 for a folded one. `pairs[side << 16 | b0 << 8 | b1]` is 1 where a needle of
    that side (0 case-sensitive, 1 folded) may start with the bytes b0 b1 (a one-byte needle b0:
    every b1): most positions are passed over on that one look-up."""
    count = offsets.size - 1
    found = np.zeros(count, np.uint8)
    n, left = data.size, count
    for i in range(n):
        b = np.int64(data[i])
        b1 = np.int64(data[i + 1]) if i + 1 < n else 0
        for side in range(2):
            if side == 0:
                key = b
                if not pairs[b << 8 | b1]:
                    continue
            elif fold:
                key = 256 + (b + 32 if 65 <= b <= 90 else b)
                if not pairs[65536 | (key - 256) << 8 | (b1 + 32 if 65 <= b1 <= 90 else b1)]:
                    continue
            else:
                break
            for j in range(first[key], first[key + 1]):
                k = order[j]
                if found[k]:
                    continue
                s, e = offsets[k], offsets[k + 1]
                if i + (e - s) > n:
                    continue
                same = True
                for t in range(1, e - s):
                    c = data[i + t]
                    if folded[k] and 65 <= c <= 90:
                        c += 32
                    if c != needles[s + t]:
                        same = False
                        break
                if same:
                    found[k] = 1
                    left -= 1
        if left == 0:
            break
    for k in range(count):
        if found[k]:
            words[k >> 6] |= np.uint64(1) << np.uint64(k & 63)
    return count - left
