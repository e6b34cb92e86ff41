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
    each code point's class (SPACE, MARK, else 0): (the lines' UTF-8 bytes one after another
    (a surrogate as "surrogatepass" writes it), where each line starts (and the last ends),
    whether each text holds more than max_words words)."""
    texts = starts.size - 1
    out = np.empty(5 * codes.size, np.uint8)  # at most 4 bytes a code point, and a space
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
            n = _put_utf8(out, n, c)
            in_word = not mark
        at[i + 1] = n
    return out[:n], at, more


@njit(cache=True)
def _put_utf8(out, n, c):
    """Code point c's UTF-8 bytes at out[n:]; where they end."""
    if c < 0x80:
        out[n] = c
        return n + 1
    if c < 0x800:
        out[n] = 0xC0 | (c >> 6)
        out[n + 1] = 0x80 | (c & 0x3F)
        return n + 2
    if c < 0x10000:
        out[n] = 0xE0 | (c >> 12)
        out[n + 1] = 0x80 | ((c >> 6) & 0x3F)
        out[n + 2] = 0x80 | (c & 0x3F)
        return n + 3
    out[n] = 0xF0 | (c >> 18)
    out[n + 1] = 0x80 | ((c >> 12) & 0x3F)
    out[n + 2] = 0x80 | ((c >> 6) & 0x3F)
    out[n + 3] = 0x80 | (c & 0x3F)
    return n + 4
