"""The numba kernels of the distilled quality classifier's prediction (`classifiers/fasttext_model.py`):
fastText's supervised predict over one normalised line, written from what fastText's C++ does
(Dictionary::getLine, addWordNgrams, Model::computeHidden, SoftmaxLoss, Loss::findKBest) with the
same float32 operations in the same order, so the probabilities are bit-identical to fastText's
(tests/test_fasttext_model.py compares every one on real text).

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# fastText's Dictionary::hash (32-bit FNV-1a over the word's bytes, each byte sign-extended
# first) and the multiplier Dictionary::addWordNgrams chains a word n-gram's hashes with.
FT_OFFSET, FT_PRIME, FT_NGRAM = 2166136261, 16777619, 116049371
# predict's outcome (the first value `predict_softmax` returns)
OK, NO_WORDS, SURROGATE = 0, 1, 2

_LABEL = np.frombuffer(b"__label__", np.uint8)  # a token that starts so is a label, not a word
_EOS = np.frombuffer(b"</s>", np.uint8)  # the token fastText reads at a line's end


@njit(cache=True)
def ft_hash(data, start, end):
    """fastText's hash of data[start:end] (a uint64 holding 32 bits)."""
    h = np.uint64(FT_OFFSET)
    for i in range(start, end):
        b = np.uint64(data[i])
        if b >= 128:
            b |= np.uint64(0xFFFFFF00)
        h = ((h ^ b) * np.uint64(FT_PRIME)) & np.uint64(0xFFFFFFFF)
    return h


@njit(cache=True)
def vocab_table(blob, offsets, size):
    """An open-addressing table (`size` slots, a power of two above the entries' count) of the
    dictionary's entries, entry k being blob[offsets[k]:offsets[k + 1]]: slot -> entry id, -1
    where empty, placed by ft_hash and linear probing."""
    table = np.full(size, -1, np.int32)
    mask = np.uint64(size - 1)
    for k in range(offsets.size - 1):
        slot = ft_hash(blob, offsets[k], offsets[k + 1]) & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = k
    return table


@njit(cache=True)
def _find(data, start, end, h, table, blob, offsets):
    """The entry id of the token data[start:end] (hash h), or -1."""
    mask = np.uint64(table.size - 1)
    slot = h & mask
    n = end - start
    while True:
        k = table[slot]
        if k < 0:
            return -1
        s = offsets[k]
        if offsets[k + 1] - s == n:
            same = True
            for t in range(n):
                if blob[s + t] != data[start + t]:
                    same = False
                    break
            if same:
                return k
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True)
def _utf8(codes, tail):
    """The code points as UTF-8 bytes followed by `tail`; None at a surrogate (which fastText's
    Python binding refuses)."""
    data = np.empty(4 * codes.size + tail.size, np.uint8)
    n = 0
    for c in codes:
        if c < 0x80:
            data[n] = c
            n += 1
        elif c < 0x800:
            data[n] = 0xC0 | (c >> 6)
            data[n + 1] = 0x80 | (c & 0x3F)
            n += 2
        elif c < 0x10000:
            if 0xD800 <= c < 0xE000:
                return None
            data[n] = 0xE0 | (c >> 12)
            data[n + 1] = 0x80 | ((c >> 6) & 0x3F)
            data[n + 2] = 0x80 | (c & 0x3F)
            n += 3
        else:
            data[n] = 0xF0 | (c >> 18)
            data[n + 1] = 0x80 | ((c >> 12) & 0x3F)
            data[n + 2] = 0x80 | ((c >> 6) & 0x3F)
            data[n + 3] = 0x80 | (c & 0x3F)
            n += 4
    data[n : n + tail.size] = tail
    return data[: n + tail.size]


@njit(cache=True)
def _starts(data, start, end, prefix):
    """Whether data[start:end] starts with `prefix`."""
    if end - start < prefix.size:
        return False
    for t in range(prefix.size):
        if data[start + t] != prefix[t]:
            return False
    return True


@njit(cache=True)
def _is_delimiter(b):
    """fastText's readWord separators: space, tab, the line breaks, vertical tab, form feed, NUL."""
    return b == 32 or b == 9 or b == 10 or b == 13 or b == 11 or b == 12 or b == 0


@njit(cache=True)
def line_input(codes, table, blob, offsets, nwords, bucket, ngrams, pruned):
    """The model's input rows for one line (its code points), as Dictionary::getLine makes them:
    each in-vocabulary word's id in order (the line's end, `</s>`, last), then every word n-gram
    (2..ngrams words, each word's hash sign-extended and chained) as nwords + hash % bucket;
    none where the dictionary's pruneidx_size is 0 (`pruned`). Only the text before a line
    break is read, as fastText reads one line. None at a surrogate."""
    data = _utf8(codes, _EOS)
    if data is None:
        return None
    n = data.size - _EOS.size
    for i in range(n):  # a line break ends the line (a tab, CR, ... only separate words)
        if data[i] == 10:
            data[i : i + _EOS.size] = _EOS
            n = i
            break
    rows = np.empty((n // 2 + 2) * max(ngrams, 1), np.int64)
    hashes = np.empty(n // 2 + 2, np.int64)
    nr, nh, i = 0, 0, 0
    end = n + _EOS.size
    while i < end:
        if i < n and _is_delimiter(data[i]):
            i += 1
            continue
        start = i
        if i >= n:  # the line's end token
            i = end
        else:
            while i < n and not _is_delimiter(data[i]):
                i += 1
        h = ft_hash(data, start, i)
        wid = _find(data, start, i, h, table, blob, offsets)
        if wid >= 0:
            word = wid < nwords
        else:  # out of the vocabulary: a label if it looks like one, else a word without a row
            word = not _starts(data, start, i, _LABEL)
        if word:
            if wid >= 0:
                rows[nr] = wid
                nr += 1
            hashes[nh] = np.int64(np.int32(np.uint32(h)))  # kept as an int32, as fastText keeps it
            nh += 1
        if i - start == _EOS.size and _starts(data, start, i, _EOS):
            break  # the line's end, or the same word in the text: fastText stops reading there
    if not pruned:
        for a in range(nh):
            h = np.uint64(hashes[a])
            for b in range(a + 1, min(nh, a + ngrams)):
                h = h * np.uint64(FT_NGRAM) + np.uint64(hashes[b])
                rows[nr] = nwords + np.int64(h % np.uint64(bucket))
                nr += 1
    return rows[:nr]


@njit(cache=True)
def predict_softmax(codes, table, blob, offsets, nwords, bucket, ngrams, pruned, inp, out):
    """(outcome, probabilities by label id, label ids in fastText's order): fastText's predict
    with every label (k=-1, threshold 0) of a softmax model, the probabilities as its Python
    binding returns them (exp(log(p + 1e-5))), ordered as its heap orders them (by that log,
    highest first). Outcome NO_WORDS where the line has no input row (fastText predicts
    nothing), SURROGATE where a code point is one (fastText's binding refuses the text)."""
    nlabels, dim = out.shape
    probs = np.zeros(nlabels, np.float32)
    order = np.arange(nlabels)
    rows = line_input(codes, table, blob, offsets, nwords, bucket, ngrams, pruned)
    if rows is None:
        return SURROGATE, probs, order
    if rows.size == 0:
        return NO_WORDS, probs, order
    hidden = np.zeros(dim, np.float32)
    for r in rows:  # Model::computeHidden: the rows' sum, in order, times 1 / count
        for j in range(dim):
            hidden[j] += inp[r, j]
    scale = np.float32(1.0 / rows.size)
    for j in range(dim):
        hidden[j] *= scale
    output = np.empty(nlabels, np.float32)
    for i in range(nlabels):  # DenseMatrix::dotRow
        d = np.float32(0.0)
        for j in range(dim):
            d += out[i, j] * hidden[j]
        output[i] = d
    top = output[0]  # SoftmaxLoss::computeOutput
    for i in range(nlabels):
        top = max(output[i], top)
    z = np.float32(0.0)
    for i in range(nlabels):
        output[i] = np.float32(math.exp(np.float64(output[i] - top)))
        z += output[i]
    for i in range(nlabels):
        output[i] /= z
    logs = np.empty(nlabels, np.float32)
    for i in range(nlabels):  # Loss::findKBest's log, the binding's exp
        logs[i] = np.float32(math.log(np.float64(output[i]) + 1e-5))
        probs[i] = np.float32(math.exp(logs[i]))
    return OK, probs, _heap_order(logs)


@njit(cache=True)
def _heap_order(logs):
    """The label ids in the order fastText returns them. Loss::findKBest pushes each (log, id) on a
    heap (std::push_heap; comparePairs orders by log, greater first) and Loss::predict sorts it
    (std::sort_heap): libstdc++'s algorithms, step by step, so that equal logs (common: a label
    whose probability is far under the 1e-5 added before the log) come out as in fastText."""
    n = logs.size
    key = np.empty(n, np.float32)
    ids = np.empty(n, np.int64)
    for i in range(n):  # std::push_heap of element i
        _sift_up(key, ids, i, 0, logs[i], i)
    last = n
    while last > 1:  # std::sort_heap: __pop_heap(first, last - 1, last - 1) until one is left
        last -= 1
        value, value_id = key[last], ids[last]
        key[last], ids[last] = key[0], ids[0]
        hole, child = 0, 0  # std::__adjust_heap(first, 0, last, value)
        while child < (last - 1) // 2:
            child = 2 * (child + 1)
            if key[child] > key[child - 1]:
                child -= 1
            key[hole], ids[hole] = key[child], ids[child]
            hole = child
        if last % 2 == 0 and child == (last - 2) // 2:
            child = 2 * (child + 1)
            key[hole], ids[hole] = key[child - 1], ids[child - 1]
            hole = child - 1
        _sift_up(key, ids, hole, 0, value, value_id)
    return ids


@njit(cache=True)
def _sift_up(key, ids, hole, top, value, value_id):
    """libstdc++'s std::__push_heap: move `value` up from `hole` while its parent's log is greater."""
    while hole > top:
        parent = (hole - 1) // 2
        if not key[parent] > value:
            break
        key[hole], ids[hole] = key[parent], ids[parent]
        hole = parent
    key[hole], ids[hole] = value, value_id
