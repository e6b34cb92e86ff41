"""The numba kernel of the distilled quality classifier's text (`quality_fasttext.normalize`):
the words of a normalised, lower-cased text, each marked character (punctuation, symbols, the
characters of scripts written without spaces) a word of its own, joined by single spaces, at
most `max_words` of them. The same line as spacing the marked characters out and splitting on
str.isspace's white space, without a string per word (tests/test_distill.py compares them).

NFKC is done here too where it is a matter of single code points: each code point is replaced
by what NFKC makes of it alone (most keep themselves), and the result is checked as Unicode's
quick check (UAX #15) checks a normalised text: no code point that may combine with the one
before it, combining marks in canonical order. A text that passes is its own NFKC; one that does
not (a decomposed accent, say) is left to Python (`hard`). The check runs past the last word
kept, to the next code point that nothing before it can reach (a starter), so what comes after
the line cannot change it.

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from classifiers.quality_consts import MARK, NFKC_COMPOSITE, NFKC_HARD, SPACE
from classifiers.utf8_kernel import get_utf8, put_utf8

DONE, MORE, HARD, ROOM = 0, 1, 2, 3  # how a text's line ended (_line)


@njit(cache=True)
def spaced_words(data, starts, ready, classes, lower, nfkc, max_words):
    """The lines of a batch of texts, text i being the UTF-8 bytes data[starts[i]:starts[i + 1]],
    NFKC-normalised here (`nfkc`: quality_fasttext._nfkc_table) unless ready[i] says Python did,
    lower-cased code point by code point (`lower`: unicode_tables.single_lower), `classes` each
    code point's class (SPACE, MARK, else 0): (the lines' UTF-8 bytes one after another (a
    surrogate as "surrogatepass" writes it), where each line starts (and the last ends), whether
    each text holds more than max_words words, whether each is one to normalise in Python (its
    line then empty))."""
    texts = starts.size - 1
    # a code point and a space: at most twice its bytes (lower-casing grows 2 bytes to 3 at most);
    # an expansion asks for room for itself
    out = np.empty(2 * data.size, np.uint8)
    at = np.zeros(texts + 1, np.int64)
    more = np.zeros(texts, np.bool_)
    hard = np.zeros(texts, np.bool_)
    for i in range(texts):
        while True:
            n, how = _line(data, starts[i], starts[i + 1], ready[i], classes, lower, nfkc, max_words, out, at[i])
            if how != ROOM:
                break
            grown = np.empty(max(2 * out.size, n), np.uint8)  # n: the room asked for; the line again
            grown[: at[i]] = out[: at[i]]
            out = grown
        more[i], hard[i] = how == MORE, how == HARD
        at[i + 1] = at[i] if how == HARD else n
    return out[: at[texts]], at, more, hard


@njit(cache=True)
def _line(data, pos, end, ready, classes, lower, nfkc, max_words, out, n):
    """Text data[pos:end]'s line written at out[n:]: (where it ends, DONE or MORE); (-, HARD)
    where Python is to normalise it; (the room it needs, ROOM) where `out` is too short."""
    words, in_word, stopping, how = 0, False, False, DONE
    # the last code point's combining class, itself (-1: none yet), whether it is a composite
    prev, prev_c, prev_composite = 0, -1, False
    k, kend = 0, 0  # the rest of a replacement: nfkc[k:kend]
    while True:
        if k < kend:
            c = np.int64(nfkc[k])
            k += 1
            v = np.int64(nfkc[c])
        elif pos < end:
            c, size = get_utf8(data, pos)
            pos += size
            v = np.int64(0 if ready or c < 0x80 else nfkc[c])
            if v < NFKC_HARD and nfkc[-v] > 0:  # NFKC replaces it
                k, kend = 1 - v, 1 - v + nfkc[-v]
                need = n + 2 * (data.size - pos) + 5 * nfkc[-v]  # this text's and the next ones'
                if need > out.size:
                    return need, ROOM
                c = np.int64(nfkc[k])
                k += 1
                v = np.int64(nfkc[c])
        else:
            return n, how
        maybe = v < NFKC_HARD
        composite = v >= NFKC_COMPOSITE
        if v >= 0:
            ccc = v & (NFKC_COMPOSITE - 1)
        elif v == NFKC_HARD:
            return n, HARD
        else:  # it may combine with the code point before it: not where that is a starter it
            # does not combine with and that holds no combining mark (or there is none)
            ccc = np.int64(nfkc[1 - v])
            if prev != 0 or prev_composite:
                return n, HARD
            for j in range(2 - v, 2 - v - nfkc[-v] - 1):
                if nfkc[j] == prev_c:
                    return n, HARD
        if ccc != 0 and prev > ccc:  # combining marks out of canonical order
            return n, HARD
        prev, prev_c, prev_composite = ccc, c, composite
        if stopping:  # past the last word: checked up to the next code point nothing reaches past
            if (ccc == 0 and not maybe) or ready:
                return n, how
            continue
        c = np.int64(lower[c])
        cls = classes[c]
        if cls == SPACE:
            in_word = False
            continue
        mark = cls == MARK
        if mark or not in_word:  # a word starts
            if words == max_words:
                how, stopping = MORE, True
                continue
            if words:
                out[n] = 32
                n += 1
            words += 1
        if c == 0x130:  # str.lower makes two code points of it (single_lower keeps it)
            n = put_utf8(out, n, 0x69)
            c = 0x307
        n = put_utf8(out, n, c)
        in_word = not mark
