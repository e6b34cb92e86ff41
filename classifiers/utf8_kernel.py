"""UTF-8 read and written code point by code point, for the numba kernels that take a text's
bytes (`minhash_kernel.py`, `quality_kernel.py`). The bytes are Python's own encoding
(`str.encode("utf-8", "surrogatepass")`), so well-formed: a surrogate is the three bytes that
"surrogatepass" writes, and decodes back to itself. Both are inlined into their callers by
numba (as LLVM alone leaves them, MinHash's kernel took 72 instead of 57 us a document).

Kernel only: `classifiers.kernels` compiles it ahead of time with the kernels that call it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def get_utf8(data, pos):
    """(the code point whose UTF-8 bytes start at data[pos], how many bytes they are)."""
    c = np.int64(data[pos])
    if c < 0x80:
        return c, 1
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (np.int64(data[pos + 1]) & 0x3F), 2
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((np.int64(data[pos + 1]) & 0x3F) << 6) | (np.int64(data[pos + 2]) & 0x3F), 3
    return (
        ((c & 0x07) << 18)
        | ((np.int64(data[pos + 1]) & 0x3F) << 12)
        | ((np.int64(data[pos + 2]) & 0x3F) << 6)
        | (np.int64(data[pos + 3]) & 0x3F)
    ), 4


@njit(cache=True, inline="always")
def put_utf8(out, n, c):
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
