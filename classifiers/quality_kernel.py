"""The numba kernel of the distilled quality classifier's text (`quality_fasttext.normalize`):
the words of a normalised, lower-cased text, each marked character (punctuation, symbols, the
characters of scripts written without spaces) a word of its own, joined by single spaces, at
most `max_words` of them. The same line as spacing the marked characters out and splitting on
str.isspace's white space, without a string per word (tests/test_distill.py compares them).

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def spaced_words(codes, marks, spaces, max_words):
    """(the line's code points, whether the text holds more than max_words words)."""
    out = np.empty(2 * codes.size, np.uint32)
    n, words, in_word = 0, 0, False
    for c in codes:
        if spaces[c]:
            in_word = False
            continue
        mark = marks[c] != 0
        if mark or not in_word:  # a word starts
            if words == max_words:
                return out[:n].copy(), True
            if words:
                out[n] = 32
                n += 1
            words += 1
        out[n] = c
        n += 1
        in_word = not mark
    return out[:n].copy(), False
