"""The numba kernels of the compiled fastText predictor (`classifiers/fasttext_model.py`): fastText's
supervised predict over a batch of lines, written from what fastText 0.9's C++ does
(Dictionary::getLine, computeSubwords, addWordNgrams and pushHash; QuantMatrix and
ProductQuantizer's rows; Model::computeHidden; SoftmaxLoss and HierarchicalSoftmaxLoss;
Loss::findKBest and libstdc++'s heap algorithms) with the same float32 operations in the same
order, so every label and probability is the one fastText returns, bit for bit
(tests/test_fasttext_model.py compares them on real text, for lid.176.ftz and trained models).

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from classifiers.fasttext_consts import FT_NGRAM, FT_OFFSET, FT_PRIME, NO_WORDS, SURROGATE, VOCAB_ID_BITS

_LABEL = np.frombuffer(b"__label__", np.uint8)  # a token that starts so is a label, not a word
_EOS = np.frombuffer(b"</s>", np.uint8)  # the token fastText reads at a line's end


@njit(cache=True)
def ft_hash(data, start, end):
    """fastText's hash of data[start:end] (a uint64 holding 32 bits). Each byte sign-extended,
    the product kept to 32 bits at the end only (its low 32 bits depend on theirs alone)."""
    h = np.uint64(FT_OFFSET)
    for i in range(start, end):
        h = (h ^ np.uint64(np.int64(np.int8(data[i])))) * np.uint64(FT_PRIME)
    return h & _LOW32


@njit(cache=True)
def _hash_step(h, byte):
    """ft_hash one byte further, kept to 32 bits (_subwords hashes each n-gram from the one a
    byte shorter)."""
    b = np.uint64(byte)
    if b >= 128:
        b |= np.uint64(0xFFFFFF00)
    return ((h ^ b) * np.uint64(FT_PRIME)) & _LOW32


_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True)
def read_dictionary(data, at, size):
    """Dictionary::load's `size` entries from data[at:], each a word's bytes up to a NUL, then
    its int64 count and int8 type: (the words' bytes one after another and _SLACK zeros, where
    each starts (size + 1 of them), the counts, where the dictionary ends), the end -1 where it
    runs past the data."""
    blob = np.empty(data.size - at + _SLACK, np.uint8)
    offsets = np.zeros(size + 1, np.int64)
    counts = np.zeros(size, np.int64)
    n = 0
    for k in range(size):
        start = at
        while at < data.size and data[at] != 0:
            at += 1
        if at + 10 > data.size:  # no NUL, or no count and type after it
            return blob[:_SLACK].copy(), offsets, counts, -1
        blob[n : n + at - start] = data[start:at]
        n += at - start
        offsets[k + 1] = n
        count = np.int64(0)
        for b in range(8):
            count |= np.int64(data[at + 1 + b]) << (8 * b)
        counts[k] = count
        at += 10
    blob[n : n + _SLACK] = 0
    return blob[: n + _SLACK].copy(), offsets, counts, at


@njit(cache=True)
def vocab_table(blob, offsets, size):
    """An open-addressing table (`size` slots, a power of two above the entries' count) of the
    dictionary's entries, entry k being blob[offsets[k]:offsets[k + 1]], placed by _word_key's
    slot and linear probing: per slot the entry's first 8 bytes (_word_key; 0 where empty) and
    its ft_hash | its id << _ID_AT | min(its length, 9) << _LENGTH_AT (ids below 2**VOCAB_ID_BITS)."""
    table = np.zeros((size, 2), np.uint64)
    shift = _shift(size)
    mask = np.uint64(size - 1)
    for k in range(offsets.size - 1):
        s, e = offsets[k], offsets[k + 1]
        first, slot = _word_key(blob, s, e, shift)
        while table[slot, 0] != 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot, 0] = first
        table[slot, 1] = ft_hash(blob, s, e) | (np.uint64(k) << _ID_AT) | (np.uint64(min(e - s, 9)) << _LENGTH_AT)
    return table


_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing's multiplier
_SLACK = 8  # bytes readable past a text or the dictionary's words, for _load8
_ID_AT, _LENGTH_AT = np.uint64(32), np.uint64(32 + VOCAB_ID_BITS)  # a slot's second value
_ID_MASK = np.uint64((1 << VOCAB_ID_BITS) - 1)


@njit(cache=True)
def _shift(size):
    """64 - log2(size), for a power of two `size`: a product's top bits index the table."""
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return np.uint64(64 - bits)


@njit(cache=True)
def _word_key(data, start, end, shift):
    """(the word data[start:end]'s first 8 bytes as a little-endian integer, zero where it is
    shorter; its first slot in a table of 2**(64 - shift) slots, from a mix of its bytes and
    length). A word has no NUL byte, so the first value tells words of up to 8 bytes apart with
    their length."""
    n = end - start
    first = _load8(data, start)
    if n < 8:
        first &= (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
        mixed = first
    else:
        mixed = first ^ (_load8(data, end - 8) * _MIX) ^ np.uint64(n)
    return first, (mixed * _MIX) >> shift


@njit(cache=True)
def _find(data, start, end, first, slot, table, blob, offsets):
    """(the entry id of the token data[start:end] (its _word_key `first`, its first slot), its
    ft_hash), or (-1, 0) where it is none."""
    n = end - start
    size = np.uint64(min(n, 9))
    mask = np.uint64(table.shape[0] - 1)
    while True:
        key = table[slot, 0]
        if key == 0:
            return -1, np.uint64(0)
        if key == first:
            entry = table[slot, 1]
            if entry >> _LENGTH_AT == size:
                k = np.int64((entry >> _ID_AT) & _ID_MASK)
                if n <= 8 or _same(data, start, n, blob, offsets[k], offsets[k + 1] - offsets[k]):
                    return k, entry & _LOW32
        slot = (slot + np.uint64(1)) & mask


@njit(cache=True)
def _same(a, at, n, b, bt, bn):
    """Whether a[at:at + n] equals b[bt:bt + bn], both at least 8 bytes (8 at a time)."""
    if n != bn:
        return False
    for i in range(0, n - 8, 8):
        if _load8(a, at + i) != _load8(b, bt + i):
            return False
    return _load8(a, at + n - 8) == _load8(b, bt + bn - 8)


@intrinsic
def _load8(typingctx, data, i):
    """The 8 bytes data[i:i + 8] as a little-endian uint64, one unaligned load (the callers keep
    _SLACK bytes readable past their texts)."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return types.uint64(data, i), codegen


@njit(cache=True)
def _has_surrogate(raw):
    """Whether UTF-8 bytes (as Python's "surrogatepass" writes them) hold a surrogate, which
    fastText's Python binding refuses: ED followed by A0..BF."""
    seen = False
    for b in raw:  # no early exit: a vectorised scan for the rare lead byte first
        seen |= b == 0xED
    if seen:
        for i in range(raw.size - 1):
            if raw[i] == 0xED and raw[i + 1] >= 0xA0:
                return True
    return False


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
def _push_hash(rows, nr, h, nwords, prune_mode, prune):
    """Dictionary::pushHash: bucket h as row nwords + h, through the pruning map where the model
    was pruned (prune_mode 1: kept buckets only, renumbered; `prune` as prune_table makes it),
    none at all where prune_mode is 0."""
    if prune_mode == 0:
        return nr
    if prune_mode == 1:
        word = prune[1 + (h >> 6)]
        bit = h & 63
        if not (word >> bit) & 1:
            return nr
        words = prune[0]
        rank = prune[1 + words + (h >> 6)] + _popcount(word & ((np.int64(1) << bit) - 1))
        h = prune[1 + 2 * words + rank]
    rows[nr] = nwords + h
    return nr + 1


@njit(cache=True)
def prune_table(keys, values, bucket):
    """pruneidx (bucket -> kept row) for _push_hash, compact enough to stay in cache: [W, a bitmap
    of the kept buckets (W words of 64 bits), the count of kept buckets before each word (W),
    then each kept bucket's row in bucket order]. A bucket is found by its bit, its row by the
    bits set before it. Keys outside 0..bucket are never asked for; a key read twice keeps its
    last value, as fastText's map does."""
    words = (bucket + 63) // 64
    bits = np.zeros(words, np.int64)
    for k in range(keys.size):
        key = np.int64(keys[k])
        if 0 <= key < bucket:
            bits[key >> 6] |= np.int64(1) << (key & 63)
    before = np.zeros(words, np.int64)
    kept = 0
    for w in range(words):
        before[w] = kept
        kept += _popcount(bits[w])
    out = np.zeros(1 + 2 * words + kept, np.int64)
    out[0] = words
    out[1 : 1 + words] = bits
    out[1 + words : 1 + 2 * words] = before
    for k in range(keys.size):
        key = np.int64(keys[k])
        if 0 <= key < bucket:
            rank = before[key >> 6] + _popcount(bits[key >> 6] & ((np.int64(1) << (key & 63)) - 1))
            out[1 + 2 * words + rank] = values[k]
    return out


@intrinsic
def _popcount(typingctx, x):
    """The number of bits set in x (LLVM's ctpop: one instruction where the CPU has it)."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(args[0].type, [args[0].type]), f"llvm.ctpop.i{args[0].type.width}"
        )
        return builder.call(fn, [args[0]])

    return x(x), codegen


@njit(cache=True)
def _magic(divisor):
    """The multiplier of _mod32 for a divisor below 2**32 (0 where there is none: a model
    without n-grams has 0 buckets, and then no remainder is taken)."""
    return np.uint64(0xFFFFFFFFFFFFFFFF) // np.uint64(max(divisor, 1)) + np.uint64(1)


@njit(cache=True)
def _mod32(h, divisor, magic):
    """h % divisor for h and divisor below 2**32, by multiplication (Lemire, Kaser and Kurz,
    "Faster remainder by direct computation", 2019: the high 64 bits of the 128-bit product of
    magic * h (mod 2**64) and the divisor), ~4x faster than the division."""
    low = magic * h
    d = np.uint64(divisor)
    return ((low >> np.uint64(32)) * d + (((low & np.uint64(0xFFFFFFFF)) * d) >> np.uint64(32))) >> np.uint64(32)


@njit(cache=True)
def _subwords(data, start, end, minn, maxn, bucket, magic, rows, nr, nwords, prune_mode, prune, scratch):
    """Dictionary::computeSubwords of the word data[start:end] between `<` and `>`: each n-gram of
    minn..maxn characters (UTF-8 sequences kept whole; not a lone `<` or `>`), hashed (each
    n-gram's hash carried on from the one a character shorter), mod bucket."""
    w = end - start + 2
    scratch[0] = 60
    scratch[1 : w - 1] = data[start:end]
    scratch[w - 1] = 62
    for i in range(w):
        if (scratch[i] & 0xC0) == 0x80:
            continue
        j, n = i, 1
        h = np.uint64(FT_OFFSET)
        while j < w and n <= maxn:
            h = _hash_step(h, scratch[j])
            j += 1
            while j < w and (scratch[j] & 0xC0) == 0x80:
                h = _hash_step(h, scratch[j])
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == w)):
                nr = _push_hash(rows, nr, np.int64(_mod32(h, bucket, magic)), nwords, prune_mode, prune)
            n += 1
    return nr


@njit(cache=True)
def vocab_subwords(blob, offsets, nwords, minn, maxn, bucket, prune_mode, prune):
    """Each vocabulary word's character n-gram rows (Dictionary::initNgrams, without the word's own
    id; none for `</s>`): (word k's start in the second array, k = 0..nwords, then the rows)."""
    longest = 0
    for k in range(nwords):
        longest = max(longest, offsets[k + 1] - offsets[k])
    scratch = np.empty(longest + 2, np.uint8)
    rows = np.empty((longest + 2) * max(maxn, 0) + 1, np.int64)
    magic = _magic(bucket)
    starts = np.zeros(nwords + 1, np.int64)
    out = np.empty(0, np.int64)
    for fill in range(2):  # count, then fill
        for k in range(nwords):
            s, e = offsets[k], offsets[k + 1]
            n = 0
            if maxn > 0 and not (e - s == _EOS.size and _starts(blob, s, e, _EOS)):
                n = _subwords(blob, s, e, minn, maxn, bucket, magic, rows, 0, nwords, prune_mode, prune, scratch)
            if fill:
                out[starts[k] : starts[k] + n] = rows[:n]
            else:
                starts[k + 1] = starts[k] + n
        if not fill:
            out = np.empty(starts[nwords], np.int64)
    return starts, out


@njit(cache=True)
def line_input(raw, table, blob, offsets, nwords, bucket, ngrams, minn, maxn, prune_mode, prune, sub_starts, subs):
    """The model's input rows for one line (its UTF-8 bytes), as Dictionary::getLine makes them:
    per word in order (the line's end, `</s>`, last) its id if in the vocabulary and its
    character n-grams (maxn > 0; not for `</s>`), then every word n-gram (2..ngrams words, each
    word's hash sign-extended and chained); n-grams as nwords + hash % bucket (_push_hash). A
    vocabulary word's character n-grams are read from `vocab_subwords`' arrays where given (as
    fastText keeps them per word). Only the text before a line break is read, as fastText reads
    one line. None at a surrogate."""
    if _has_surrogate(raw):
        return None
    n = raw.size
    data = np.zeros(n + _EOS.size + _SLACK, np.uint8)
    data[:n] = raw
    data[n : n + _EOS.size] = _EOS
    for i in range(n):  # a line break ends the line (a tab, CR, ... only separate words)
        if data[i] == 10:
            data[i : i + _EOS.size] = _EOS
            n = i
            break
    ntok = n // 2 + 2
    rows = np.empty(ntok * max(ngrams, 1) + (n + 2 * ntok) * max(maxn, 0), np.int64)
    hashes = np.empty(ntok, np.int64)
    scratch = np.empty(n + 2 + _EOS.size, np.uint8)
    magic = _magic(bucket)
    shift = _shift(table.shape[0])
    # the tokens first, each one's table slot asked for from memory, then looked up in order
    bounds = np.empty((ntok, 2), np.int64)
    slots = np.empty((ntok, 2), np.uint64)
    count, i = 0, 0
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
        first, slot = _word_key(data, start, i, shift)
        _prefetch(table, slot, 0)
        bounds[count, 0], bounds[count, 1] = start, i
        slots[count, 0], slots[count, 1] = first, slot
        count += 1
    nr, nh = 0, 0
    for t in range(count):
        start, i = bounds[t, 0], bounds[t, 1]
        wid, h = _find(data, start, i, slots[t, 0], slots[t, 1], table, blob, offsets)
        if wid < 0:
            h = ft_hash(data, start, i)
        if wid >= 0:
            word = wid < nwords
        else:  # out of the vocabulary: a label if it looks like one
            word = not _starts(data, start, i, _LABEL)
        eos = i - start == _EOS.size and _starts(data, start, i, _EOS)
        if word:
            if wid >= 0:
                rows[nr] = wid
                nr += 1
            if wid >= 0 and sub_starts.size > 0:  # its n-grams, worked out once (vocab_subwords)
                for t in range(sub_starts[wid], sub_starts[wid + 1]):
                    rows[nr] = subs[t]
                    nr += 1
            elif maxn > 0 and not eos:
                nr = _subwords(data, start, i, minn, maxn, bucket, magic, rows, nr, nwords, prune_mode, prune, scratch)
            hashes[nh] = np.int64(np.int32(np.uint32(h)))  # kept as an int32, as fastText keeps it
            nh += 1
        if eos:
            break  # the line's end, or the same word in the text: fastText stops reading there
    for a in range(nh):
        h = np.uint64(hashes[a])
        for b in range(a + 1, min(nh, a + ngrams)):
            h = h * np.uint64(FT_NGRAM) + np.uint64(hashes[b])
            nr = _push_hash(rows, nr, np.int64(h % np.uint64(bucket)), nwords, prune_mode, prune)
    return rows[:nr]


@njit(cache=True)
def _std_log(x):
    """fastText's std_log: log(x + 1e-5) in double, returned as a float32."""
    return np.float32(math.log(np.float64(x) + 1e-5))


@njit(cache=True)
def _dot(out, row, hidden):
    """DenseMatrix::dotRow: a float32 sum, in order."""
    d = np.float32(0.0)
    for j in range(hidden.size):
        d += out[row, j] * hidden[j]
    return d


@intrinsic
def _prefetch(typingctx, matrix, row, col):
    """LLVM's prefetch of the cache line holding matrix[row, col] (a read, kept in every cache
    level): no effect on any value, only on when the memory arrives."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1], args[2]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(matrix, row, col), codegen


PREFETCH_AHEAD = 8  # rows: a dense row is 256 bytes at dim 64, and the rows are all over the matrix


@njit(cache=True)
def decode_quantized(qcodes, centroids, nsubq, dsub, lastdsub, norm_codes, norm_centroids, rows):
    """A product-quantised input matrix as the dense matrix of what fastText adds per row
    (QuantMatrix::addRowToVector, ProductQuantizer::addcode): element m * dsub + t of row r is
    the row's norm (qnorm: its own one-dimensional centroid; else 1) times centroid t of its
    code for sub-quantiser m, a float32 product. fastText adds each product to the hidden
    vector as it makes it, so adding the stored products is the same arithmetic."""
    dim = (nsubq - 1) * dsub + lastdsub
    out = np.zeros((rows, dim), np.float32)
    ksub = 256
    for r in range(rows):
        alpha = norm_centroids[norm_codes[r]] if norm_codes.size > 0 else np.float32(1.0)
        for m in range(nsubq):
            code = np.int64(qcodes[nsubq * r + m])
            if m == nsubq - 1:
                at, d = m * ksub * dsub + code * lastdsub, lastdsub
            else:
                at, d = (m * ksub + code) * dsub, dsub
            for t in range(d):
                out[r, m * dsub + t] = alpha * centroids[at + t]
    return out


@njit(cache=True)
def _hidden(rows, dense):
    """Model::computeHidden: the input matrix's rows summed, in order, times 1 / count."""
    dim = dense.shape[1]
    hidden = np.zeros(dim, np.float32)
    n = rows.size
    for i in range(n):
        if i + PREFETCH_AHEAD < n:  # memory-bound: ask for a later row's lines now
            for c in range(0, dim, 16):
                _prefetch(dense, rows[i + PREFETCH_AHEAD], c)
        r = rows[i]
        for j in range(dim):
            hidden[j] += dense[r, j]
    scale = np.float32(1.0 / rows.size)
    for j in range(dim):
        hidden[j] *= scale
    return hidden


@njit(cache=True)
def predict_batch(
    data, starts, table, blob, offsets, nwords, bucket, ngrams, minn, maxn, prune_mode, prune, sub_starts, subs,
    dense, out, tree, k, threshold,
):  # fmt: skip
    """fastText's predict (top k, probabilities at or above threshold) of each line
    data[starts[i]:starts[i + 1]] (UTF-8): (outcome, probabilities, label ids, how many) per line, the
    probabilities as its Python binding returns them (exp of the summed logs) in its heap's order.
    Softmax where `tree` is empty, else hierarchical softmax over the tree (left, right per node).
    Outcome NO_WORDS where a line has no input row (fastText predicts nothing), SURROGATE where
    it holds one (fastText's binding refuses the text)."""
    lines = starts.size - 1
    nlabels = out.shape[0] if tree.shape[0] == 0 else (tree.shape[0] + 1) // 2
    k = nlabels if k < 0 else min(k, nlabels)
    outcome = np.zeros(lines, np.int64)
    probs = np.zeros((lines, k), np.float32)
    ids = np.zeros((lines, k), np.int64)
    count = np.zeros(lines, np.int64)
    key = np.empty(k + 1, np.float32)
    kid = np.empty(k + 1, np.int64)
    stack = np.empty(max(tree.shape[0], 1), np.int64)
    scores = np.empty(max(tree.shape[0], 1), np.float32)
    thr = np.float32(threshold)
    floor = _std_log(thr)
    for line in range(lines):
        rows = line_input(
            data[starts[line] : starts[line + 1]],
            table,
            blob,
            offsets,
            nwords,
            bucket,
            ngrams,
            minn,
            maxn,
            prune_mode,
            prune,
            sub_starts,
            subs,
        )
        if rows is None:
            outcome[line] = SURROGATE
            continue
        if rows.size == 0:
            outcome[line] = NO_WORDS
            continue
        hidden = _hidden(rows, dense)
        size = 0
        if tree.shape[0] == 0:  # SoftmaxLoss::computeOutput, then Loss::findKBest
            output = np.empty(nlabels, np.float32)
            for i in range(nlabels):
                output[i] = _dot(out, i, hidden)
            top = output[0]
            for i in range(nlabels):
                top = max(output[i], top)
            z = np.float32(0.0)
            for i in range(nlabels):  # C's exp in double, as loss.cc calls it
                output[i] = np.float32(math.exp(np.float64(output[i] - top)))
                z += output[i]
            for i in range(nlabels):
                output[i] /= z
            for i in range(nlabels):
                if output[i] < thr:
                    continue
                lp = _std_log(output[i])
                if size == k and lp < key[0]:
                    continue
                size = _heap_push(key, kid, size, lp, i, k)
        else:  # HierarchicalSoftmaxLoss::dfs from the root, left child first
            depth = 1
            stack[0], scores[0] = tree.shape[0] - 1, np.float32(0.0)
            while depth > 0:
                depth -= 1
                node, score = stack[depth], scores[depth]
                if score < floor or (size == k and score < key[0]):
                    continue
                if tree[node, 0] == -1 and tree[node, 1] == -1:
                    size = _heap_push(key, kid, size, score, node, k)
                    continue
                f = _dot(out, node - nlabels, hidden)  # a sigmoid: 1. / (1 + std::exp(-f)), expf
                f = np.float32(1.0 / np.float64(np.float32(1) + np.float32(math.exp(-f))))
                stack[depth], scores[depth] = tree[node, 1], score + _std_log(f)
                stack[depth + 1], scores[depth + 1] = tree[node, 0], score + _std_log(np.float32(1.0 - np.float64(f)))
                depth += 2
        _sort_heap(key, kid, size)
        count[line] = size
        for i in range(size):
            probs[line, i] = np.float32(math.exp(key[i]))
            ids[line, i] = kid[i]
    return outcome, probs, ids, count


@njit(cache=True)
def _heap_push(key, ids, size, value, value_id, k):
    """Loss::findKBest's step: std::push_heap of (value, id) (comparePairs: greater first, so the
    top is the smallest), then std::pop_heap of the smallest where more than k are held."""
    _sift_up(key, ids, size, 0, value, value_id)
    size += 1
    if size > k:
        _pop_heap(key, ids, size)
        size -= 1
    return size


@njit(cache=True)
def _sort_heap(key, ids, size):
    """std::sort_heap: pop the top to the end until one is left (greatest value first after)."""
    while size > 1:
        _pop_heap(key, ids, size)
        size -= 1


@njit(cache=True)
def _pop_heap(key, ids, size):
    """libstdc++'s std::__pop_heap: the top to position size - 1, the rest a heap again
    (std::__adjust_heap from the root with the last element)."""
    last = size - 1
    value, value_id = key[last], ids[last]
    key[last], ids[last] = key[0], ids[0]
    hole, child = 0, 0
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


@njit(cache=True)
def _sift_up(key, ids, hole, top, value, value_id):
    """libstdc++'s std::__push_heap: move `value` up from `hole` while its parent's is greater."""
    while hole > top:
        parent = (hole - 1) // 2
        if not key[parent] > value:
            break
        key[hole], ids[hole] = key[parent], ids[parent]
        hole = parent
    key[hole], ids[hole] = value, value_id
