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
from classifiers.utf8_kernel import get_utf8, put_utf8


@njit(cache=True)
def spaced_words(data, starts, classes, lower, max_words):
    """The lines of a batch of texts, text i being the UTF-8 bytes data[starts[i]:starts[i + 1]],
    lower-cased here code point by code point (`lower`: unicode_tables.single_lower), `classes`
    each code point's class (SPACE, MARK, else 0): (the lines' UTF-8 bytes one after another
    (a surrogate as "surrogatepass" writes it), where each line starts (and the last ends),
    whether each text holds more than max_words words)."""
    texts = starts.size - 1
    # a character and a space at most twice its bytes: lower-casing grows a 2-byte one to 3 at most
    out = np.empty(2 * data.size, np.uint8)
    at = np.zeros(texts + 1, np.int64)
    more = np.zeros(texts, np.bool_)
    n = 0
    for i in range(texts):
        words, in_word = 0, False
        pos, end = starts[i], starts[i + 1]
        while pos < end:
            c, size = get_utf8(data, pos)
            pos += size
            c = np.int64(lower[c])
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
            n = put_utf8(out, n, c)
            in_word = not mark
        at[i + 1] = n
    return out[:n], at, more
