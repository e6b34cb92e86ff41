"""Gopher's n-gram repetition signals in one compiled pass (the kernel: ngram_kernel.py).

Words become 64-bit ids, a hash of their characters (equal words, equal ids), computed in the
kernel from the words joined by spaces (no word holds whitespace); each word n-gram is a 64-bit hash of its
ids; a hash table groups equal n-grams. Per size k, in the order of `sizes`:
- ("top", k): the most frequent n-gram's count times its characters (ties: the first in text
  order), as `textstats.TextStats.ngram_fractions` defines it;
- ("dup", k): the characters of the words covered by every occurrence of a repeated n-gram
  after its first.
Once a size has no repeated n-gram, no larger size has one (every occurrence of a repeated
n-gram starts with a repeated shorter one), so the climb stops there. Results equal the
pure-Python reference (tests check it on real text); the hash of distinct n-grams colliding
has probability about (words / 2^32)^2 per document.
"""

from __future__ import annotations

import functools

import numpy as np

from classifiers.kernels import kernels


def ngram_chars(codepoints: np.ndarray, n_words: int, sizes: list[tuple[str, int]]) -> list[float]:
    """Characters per (kind, size-in-words), in the order of `sizes` (sizes ascending), of the
    `n_words` words whose UTF-32 code points `codepoints` holds joined by single spaces (no word
    empty or holding whitespace: TextStats' normalised words, `TextStats._joined`)."""
    # distinct words share an id with probability ~ words^2 / 2^64, far below the n-gram
    # hash's own; one space between words keeps the positions of their characters apart
    if not n_words:
        return [0.0] * len(sizes)
    ks, is_top = _size_arrays(tuple(sizes))
    return kernels().words_ngram_chars(codepoints, n_words, ks, is_top).tolist()


def joined_words(words: list[str]) -> np.ndarray:
    """`words` as `ngram_chars` reads them: their code points joined by single spaces."""
    return np.frombuffer(" ".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@functools.lru_cache(maxsize=64)
def _size_arrays(sizes: tuple[tuple[str, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(n-gram sizes, 1 for "top" else 0) as the kernel's arrays (shared by calls; the kernel
    only reads them)."""
    ks = np.array([k for _, k in sizes], dtype=np.int64)
    is_top = np.array([kind == "top" for kind, _ in sizes], dtype=np.uint8)
    return ks, is_top
