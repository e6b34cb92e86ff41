"""The numba kernel of `classifiers.minhash.MinHasher.signatures`: UTF-8 bytes -> tokens ->
shingles -> SHA-1 -> permutations -> minima, for a batch of documents in one call.

Kernel only: `classifiers.kernels` compiles it ahead of time (or, where it cannot, imports this
module and numba JIT-compiles it), so a command that only reads the config or a run with
MinHash off never loads numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from classifiers.utf8_kernel import get_utf8, put_utf8

MERSENNE_61 = (1 << 61) - 1  # the prime p = 2^61-1 of datasketch's legacy permutations

# ---------------------------------------------------------------------------------------------
# The numba kernel: UTF-8 bytes -> tokens -> shingles -> SHA-1 -> permutations -> minima.
# Per document, the tokens are written once into a normalised buffer (tokens separated by one
# space at word level, concatenated at character level), so every shingle is a contiguous
# slice of it. Shingles are then SHA-1 hashed _LANES at a time, one array element per lane, so
# that LLVM vectorises the 80 rounds across shingles (multi-buffer hashing); a shingle longer
# than one block (55 bytes) takes extra rounds only for itself.
# All scalar arithmetic is uint64 with explicit 32-bit masks (numba widens uint32 arithmetic);
# stores into uint32 arrays truncate, which LLVM narrows back to 32-bit vector operations.

_U = np.uint64
_M32 = np.uint64(0xFFFFFFFF)
_P61 = np.uint64(MERSENNE_61)
_LANES = 128


@njit(cache=True)
def _rotl32(x, k):
    return ((x << _U(k)) | (x >> _U(32 - k))) & _M32


@njit(cache=True)
def _bswap32(x):
    return (
        ((x & _U(0xFF)) << _U(24))
        | ((x & _U(0xFF00)) << _U(8))
        | ((x >> _U(8)) & _U(0xFF00))
        | ((x >> _U(24)) & _U(0xFF))
    )


@njit(cache=True)
def _fmix32(h):
    h ^= h >> _U(16)
    h = (h * _U(0x85EBCA6B)) & _M32
    h ^= h >> _U(13)
    h = (h * _U(0xC2B2AE35)) & _M32
    return h ^ (h >> _U(16))


@njit(cache=True)
def _fmix64(h):
    h ^= h >> _U(33)
    h = h * _U(0xFF51AFD7ED558CCD)
    h ^= h >> _U(33)
    h = h * _U(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U(33))


@njit(cache=True)
def _sha1_rounds(w, a, b, c, d, e, n):
    """The 80 SHA-1 rounds over lanes 0..n-1 of uint32 arrays: message schedule w (80, lanes)
    (rows 0-15 filled), working variables a..e, updated in place. Each round writes the new
    `a` over `e` and rotates `b` in place, then renames the arrays; 80 renames are the
    identity, so a..e hold the final working variables."""
    for t in range(16, 80):
        for q in range(n):
            w[t, q] = _rotl32(_U(w[t - 3, q]) ^ _U(w[t - 8, q]) ^ _U(w[t - 14, q]) ^ _U(w[t - 16, q]), 1)
    for t in range(0, 20):
        for q in range(n):
            bb = _U(b[q])
            f = (bb & _U(c[q])) | ((bb ^ _M32) & _U(d[q]))
            e[q] = _rotl32(_U(a[q]), 5) + f + _U(e[q]) + _U(0x5A827999) + _U(w[t, q])
            b[q] = _rotl32(bb, 30)
        a, b, c, d, e = e, a, b, c, d
    for t in range(20, 40):
        for q in range(n):
            bb = _U(b[q])
            f = bb ^ _U(c[q]) ^ _U(d[q])
            e[q] = _rotl32(_U(a[q]), 5) + f + _U(e[q]) + _U(0x6ED9EBA1) + _U(w[t, q])
            b[q] = _rotl32(bb, 30)
        a, b, c, d, e = e, a, b, c, d
    for t in range(40, 60):
        for q in range(n):
            bb = _U(b[q])
            cc = _U(c[q])
            dd = _U(d[q])
            f = (bb & cc) | (bb & dd) | (cc & dd)
            e[q] = _rotl32(_U(a[q]), 5) + f + _U(e[q]) + _U(0x8F1BBCDC) + _U(w[t, q])
            b[q] = _rotl32(bb, 30)
        a, b, c, d, e = e, a, b, c, d
    for t in range(60, 80):
        for q in range(n):
            bb = _U(b[q])
            f = bb ^ _U(c[q]) ^ _U(d[q])
            e[q] = _rotl32(_U(a[q]), 5) + f + _U(e[q]) + _U(0xCA62C1D6) + _U(w[t, q])
            b[q] = _rotl32(bb, 30)
        a, b, c, d, e = e, a, b, c, d


@njit(cache=True)
def _sha1_many(be, starts, lengths, n, hs, w, v, act):
    """hs[0:5, q] = SHA-1 state after hashing message q < n <= lanes: the bytes
    [starts[q], starts[q] + lengths[q]) of a text whose big-endian 32-bit word at every byte
    offset is be[offset] (3 zero bytes past its end). Scratch: w (80, lanes), v (5, lanes)
    uint32, act (lanes,) int64."""
    for q in range(n):
        hs[0, q] = 0x67452301
        hs[1, q] = 0xEFCDAB89
        hs[2, q] = 0x98BADCFE
        hs[3, q] = 0x10325476
        hs[4, q] = 0xC3D2E1F0
    blk = 0
    while True:
        na = 0
        for q in range(n):  # lanes whose padded message has a block number `blk`
            if (lengths[q] + 8) // 64 >= blk:
                act[na] = q
                na += 1
        if na == 0:
            return
        for r in range(na):
            q = act[r]
            base = starts[q] + 64 * blk
            rest = lengths[q] - 64 * blk  # message bytes from this block's start
            full = min(16, max(0, rest) // 4)
            for t in range(full):  # whole message words
                w[t, r] = be[base + 4 * t]
            if full < 16:  # the message's last 0-3 bytes and 0x80, then zeros
                left = rest - 4 * full
                if left >= 0:
                    w[full, r] = (_U(be[base + 4 * full]) & ((_M32 >> _U(8 * left)) ^ _M32)) | (
                        _U(0x80) << _U(24 - 8 * left)
                    )
                else:
                    w[full, r] = 0
                for t in range(full + 1, 16):
                    w[t, r] = 0
            if (lengths[q] + 8) // 64 == blk:  # last block: 64-bit message length in bits
                w[14, r] = _U(lengths[q]) >> _U(29)
                w[15, r] = (_U(lengths[q]) << _U(3)) & _M32
            for k in range(5):
                v[k, r] = hs[k, q]
        _sha1_rounds(w, v[0], v[1], v[2], v[3], v[4], na)
        for r in range(na):
            q = act[r]
            for k in range(5):
                hs[k, q] = (_U(hs[k, q]) + _U(v[k, r])) & _M32
        blk += 1


@njit(cache=True)
def _fold(hs, n, scheme, pa, pb, mins):
    """Permute the hashes of n shingles (from their SHA-1 words) and fold them into mins."""
    num_perm = pa.shape[0]
    for q in range(n):
        if scheme == 0:  # affine32: fmix32(sha1_hash32) * a + b mod 2^32
            x = _fmix32(_bswap32(_U(hs[0, q])))
            for k in range(num_perm):  # uint32 arrays: LLVM narrows this to 32-bit lanes
                mins[k] = min(_U(mins[k]), (_U(pa[k]) * x + _U(pb[k])) & _M32)
        elif scheme == 1:  # affine64: fmix64(sha1_hash64) * a + b mod 2^64
            x = _fmix64(_bswap32(_U(hs[0, q])) | (_bswap32(_U(hs[1, q])) << _U(32)))
            for k in range(num_perm):
                mins[k] = min(mins[k], pa[k] * x + pb[k])
        else:  # legacy: ((a * sha1_hash32 + b) mod 2^64) mod (2^61 - 1), low 32 bits
            x = _bswap32(_U(hs[0, q]))
            for k in range(num_perm):
                mins[k] = min(mins[k], ((pa[k] * x + pb[k]) % _P61) & _M32)


@njit(cache=True, nogil=True)
def _signatures_kernel(data, offsets, char_level, ngram, char_ngram, is_word, lower, scheme, pa, pb, empty, out):
    n_docs = offsets.shape[0] - 1
    max_len = 0
    for d in range(n_docs):
        max_len = max(max_len, offsets[d + 1] - offsets[d])
    # normalised text of one document (lower-casing grows UTF-8 by at most 3/2: U+023A, U+023E)
    norm = np.empty(2 * max_len + 4, dtype=np.uint8)
    be = np.empty(2 * max_len + 1, dtype=np.uint32)  # its big-endian 32-bit word at each offset
    tok = np.empty(max_len + 2, dtype=np.int64)  # token starts in `norm`
    starts = np.empty(_LANES, dtype=np.int64)
    lengths = np.empty(_LANES, dtype=np.int64)
    hs = np.empty((5, _LANES), dtype=np.uint32)
    w = np.empty((80, _LANES), dtype=np.uint32)
    v = np.empty((5, _LANES), dtype=np.uint32)
    act = np.empty(_LANES, dtype=np.int64)
    mins = np.empty(pa.shape[0], dtype=pa.dtype)
    for d in range(n_docs):
        chars = char_level[d]
        n = char_ngram if chars else ngram
        # 1. tokens -> norm
        m = 0
        count = 0
        in_tok = False
        pos = offsets[d]
        end = offsets[d + 1]
        while pos < end:
            cp, size = get_utf8(data, pos)
            cp = np.int64(lower[cp])
            if is_word[cp]:
                if chars:
                    tok[count] = m
                    count += 1
                elif not in_tok:
                    in_tok = True
                    if count:
                        norm[m] = 32
                        m += 1
                    tok[count] = m
                    count += 1
                m = put_utf8(norm, m, cp)
            else:
                in_tok = False
            pos += size
        # token k ends at tok[k + 1] - gap (gap: the separating space), the last at m
        gap = 0 if chars else 1
        tok[count] = m + gap
        norm[m] = 0
        norm[m + 1] = 0
        norm[m + 2] = 0
        for i in range(m):
            be[i] = (_U(norm[i]) << _U(24)) | (_U(norm[i + 1]) << _U(16)) | (_U(norm[i + 2]) << _U(8)) | _U(norm[i + 3])
        # 2. shingles, hashed _LANES at a time, folded into mins
        mins[:] = empty
        if count < n:  # short document: its whole normalised text is the one shingle
            starts[0] = 0
            lengths[0] = m
            _sha1_many(be, starts, lengths, 1, hs, w, v, act)
            _fold(hs, 1, scheme, pa, pb, mins)
        else:
            n_sh = count - n + 1
            for base in range(0, n_sh, _LANES):
                nl = min(_LANES, n_sh - base)
                for q in range(nl):
                    i = base + q
                    starts[q] = tok[i]
                    lengths[q] = tok[i + n] - gap - tok[i]
                _sha1_many(be, starts, lengths, nl, hs, w, v, act)
                _fold(hs, nl, scheme, pa, pb, mins)
        out[d, :] = mins
