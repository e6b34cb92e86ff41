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

from classifiers.quality_consts import MARK, SPACE


@njit(cache=True)
def spaced_words(codes, starts, classes, max_words):
    """The lines of a batch of texts, text i being codes[starts[i]:starts[i + 1]] and `classes`
    each code point's class (SPACE, MARK, else 0): (the lines' code points one after another,
    where each line starts (and the last ends), whether each text holds more than max_words
    words)."""
    texts = starts.size - 1
    out = np.empty(2 * codes.size, np.uint32)
    at = np.zeros(texts + 1, np.int64)
    more = np.zeros(texts, np.bool_)
    n = 0
    for i in range(texts):
        words, in_word = 0, False
        for j in range(starts[i], starts[i + 1]):
            c = codes[j]
            cls = classes[c]
            if cls == SPACE:
                in_word = False
                continue
            mark = cls == MARK
            if mark or not in_word:  # a word starts
                if words == max_words:
                    more[i] = True
                    break
                if words:
                    out[n] = 32
                    n += 1
                words += 1
            out[n] = c
            n += 1
            in_word = not mark
        at[i + 1] = n
    return out[:n], at, more
