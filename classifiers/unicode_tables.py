"""Lookup tables over every code point (0x110000 entries), from Python's Unicode database, built
once per machine and cached on disk (`artifacts.default_cache()`).

Several stages vectorise their character classes with such tables (MinHash's tokeniser, the
distilled quality model's punctuation spacing). Built in Python they cost 0.3-0.7 s each, in
every process that uses them (each `--workers` worker, each Dataflow worker); loaded from the
cache, a few milliseconds, and mapped read-only from the file: a process's memory holds only the
pages it reads (mostly a few scripts' ranges), shared by every process on the machine. A cache
entry is named after the Unicode database's version and the table's revision, so a Python with
another Unicode version, or a changed builder, builds anew; where the cache cannot be written,
the table is built in memory.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

import numpy as np

N_CODE_POINTS = 0x110000
# the first letters of the general categories (Letter, Mark, Number, Punctuation, Symbol,
# Separator, Other): `major_categories` holds each code point's index in this string
MAJOR = "LMNPSZC"


def cached_table(name: str, revision: int | str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """`build()`'s table (one entry per code point, and whatever the table keeps after them),
    from the cache when it holds this name and revision (a number, or a digest of what the table
    is built from) for this Unicode version."""
    from classifiers.artifacts import cached, default_cache

    def write(tmp):
        np.save(tmp / "table.npy", build())

    key = f"unicode-{name}-ucd{unicodedata.unidata_version}-r{revision}"
    try:  # mapped, read-only: a process's memory holds the pages it reads, shared with the others
        table = np.load(cached(default_cache(), key, write) / "table.npy", mmap_mode="r")
    except (OSError, ValueError):  # a read-only or broken cache: build it here
        return build()
    if table.ndim != 1 or table.shape[0] < N_CODE_POINTS:
        return build()
    return table


def _build_major_categories() -> np.ndarray:
    index = {c: i for i, c in enumerate(MAJOR)}
    cat = unicodedata.category
    return np.frombuffer(bytes(index[cat(chr(cp))[0]] for cp in range(N_CODE_POINTS)), dtype=np.uint8).copy()


@functools.lru_cache(maxsize=1)
def major_categories() -> np.ndarray:
    """uint8[0x110000]: the index in MAJOR of each code point's general category's first letter."""
    return cached_table("major-categories", 1, _build_major_categories)


def in_categories(classes: str) -> np.ndarray:
    """uint8[0x110000]: 1 where the code point's general category starts with one of `classes`
    (e.g. "LMN": letters, marks and numbers)."""
    return np.isin(major_categories(), [MAJOR.index(c) for c in classes]).astype(np.uint8)


def _build_isspace() -> np.ndarray:
    return np.frombuffer(bytes(chr(cp).isspace() for cp in range(N_CODE_POINTS)), dtype=np.uint8).copy()


@functools.lru_cache(maxsize=1)
def isspace() -> np.ndarray:
    """uint8[0x110000]: 1 where str.isspace(), the characters str.split() splits on."""
    return cached_table("isspace", 1, _build_isspace)


# Unicode's White_Space property (what regex engines' \s matches; str.isspace differs on
# U+001C..U+001F): stable since Unicode 4.1
WHITE_SPACE = (
    *range(0x09, 0x0E),
    0x20,
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
)


def _build_pretokenizer_classes() -> np.ndarray:
    from classifiers.bpe_consts import LETTER, NUMBER, OTHER, SPACE, UNSURE

    cat = unicodedata.category
    out = np.frombuffer(
        bytes(
            LETTER if c[0] == "L" else NUMBER if c[0] == "N" else UNSURE if c in ("Cn", "Cs") else OTHER
            for c in (cat(chr(cp)) for cp in range(N_CODE_POINTS))
        ),
        dtype=np.uint8,
    ).copy()
    out[list(WHITE_SPACE)] = SPACE
    return out


@functools.lru_cache(maxsize=1)
def pretokenizer_classes() -> np.ndarray:
    r"""uint8[0x110000]: each code point's class for the Llama 3 pre-tokenizer's scanner
    (classifiers/bpe_kernel.py): LETTER (\p{L}), NUMBER (\p{N}), SPACE (White_Space), UNSURE
    (unassigned in this Python's Unicode database, or a surrogate), else OTHER."""
    return cached_table("pretokenizer-classes", 1, _build_pretokenizer_classes)


def _build_single_lower() -> np.ndarray:
    table = np.arange(N_CODE_POINTS, dtype=np.int32)
    for cp in range(N_CODE_POINTS):
        low = chr(cp).lower()
        if len(low) == 1 and low != chr(cp):
            table[cp] = ord(low)
    return table


@functools.lru_cache(maxsize=1)
def single_lower() -> np.ndarray:
    """int32[0x110000]: str.lower() of each code point where that is one code point (all but
    U+0130, which lower-cases to two), else the code point itself."""
    return cached_table("single-lower", 1, _build_single_lower)
