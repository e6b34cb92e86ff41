"""MinHash near-duplicate detection: shingles, signatures, LSH band keys, reference clustering.

No Beam here. The pipeline's dedup stage computes `MinHasher.signatures` and
`MinHasher.band_keys` per batch of documents, groups document ids by (scope value, band key),
links each bucket with `bucket_edges`, and runs a distributed connected-components algorithm
whose result must equal `connected_components` (the in-memory reference, used by tests and by
bench/dedup_quality.py; `candidate_edges` is the reference of the bucket stage).

Shingles
    Text is truncated to `max_chars` characters, lower-cased (as `str.lower`; the kernel does
    it code point by code point, see `_prepare`) and cut into tokens: maximal runs of
    Unicode letters, marks and numbers (general categories L*, M*, N* of the running
    interpreter's `unicodedata`). Everything else (punctuation, symbols, whitespace, underscore)
    separates tokens, so shingles are case-, punctuation- and whitespace-insensitive. Marks
    count as letters so that Indic, Thai and other scripts with combining vowel signs are not
    split mid-word (Python's regex `\\w` would split them).
    Word level: a shingle is `ngram` consecutive tokens joined by one space.
    Character level (`char_languages`: scripts written without spaces between words): a shingle
    is `char_ngram` consecutive word characters, spaces and punctuation removed.
    A document with fewer tokens than n is one shingle, its whole normalised text (the empty
    string for a document with no letters or digits, so all such documents are duplicates of
    each other).
    Code is shingled at word level: identifiers, keywords and literals, as BigCode did for The
    Stack's near-dedup (Kocetkov et al. 2022: tokens split on non-alphanumeric characters,
    5-grams); character n-grams over code mostly measure shared syntax.
    Huge documents: only the first `max_chars` characters are read (time and memory are those
    of a `max_chars` document, whatever the length; near-duplicates of huge documents are
    judged on their beginning).

Signatures
    Each shingle's UTF-8 bytes are hashed with SHA-1 as datasketch's default `sha1_hash32`
    does (`sha1_hash64` for the affine64 scheme) and permuted with datasketch's permutation
    `scheme` and seed, so a row of `MinHasher.signatures` equals
    `datasketch.MinHash(num_perm, seed, scheme=...)` updated with the same shingles
    (`shingles()` lists them). "affine32", datasketch 2.x's default: fmix32(h) * a + b mod 2^32,
    a odd. The whole path (tokenise, shingle, SHA-1, permute, min) is one numba kernel per
    batch of documents, about 10x datasketch's `MinHash.bulk` with shingling on one core
    (bench/minhash_bench.py); no Python object is made per shingle.

Band keys
    LSH with `bands` x `rows`: band i covers signature columns [i*rows, (i+1)*rows). Its key is
    a fixed 64-bit hash of the band index and the row values (see `band_keys`), so equal keys
    mean "same band, same values" (up to 2^-64 collisions) and a key alone identifies a bucket.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from classifiers.unicode_tables import in_categories, single_lower

__all__ = [
    "MinHashParams",
    "MinHasher",
    "band_keys",
    "bucket_edges",
    "candidate_edges",
    "connected_components",
    "jaccard",
    "optimal_bands",
    "permutations",
    "s_curve",
    "shingles",
]

Scheme = Literal["affine32", "affine64", "legacy"]
_SCHEME_CODES = {"affine32": 0, "affine64": 1, "legacy": 2}


class MinHashParams(BaseModel):
    """Near-duplicate removal with MinHash LSH (embedded in the run config as `stages.minhash`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    threshold: float = Field(0.75, gt=0.0, lt=1.0)
    """Jaccard similarity of shingle sets from which two documents count as near-duplicates;
    the LSH bands/rows are tuned for it (see `band_rows`)."""
    num_perm: int = Field(112, ge=2, le=4096)
    """Signature length (hash permutations). 112 = FineWeb's 14 bands x 8 rows."""
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    """Explicit LSH layout; both unset = derived from `threshold` by `optimal_bands`."""
    false_positive_weight: float = Field(0.25, ge=0.0)
    false_negative_weight: float = Field(0.75, ge=0.0)
    """Weights of the S-curve's false-positive and false-negative areas when deriving bands and
    rows. Missing a duplicate is the failure dedup exists to prevent, so misses weigh 3:1; at
    threshold 0.75 and 112 permutations this gives FineWeb's 14 x 8 (datasketch's 0.5/0.5 gives
    11 x 10, which finds only ~71% of pairs at Jaccard 0.8)."""
    ngram: int = Field(5, ge=1)
    """Words per shingle."""
    char_ngram: int = Field(5, ge=1)
    """Characters per shingle for `char_languages`."""
    char_languages: list[str] = ["zh", "ja", "ko", "th", "lo", "km", "my"]
    """ISO 639-1 codes shingled by characters (written without spaces between words)."""
    seed: int = Field(1, ge=0, lt=2**32)
    """Seed of the permutations (datasketch's `seed`)."""
    scheme: Scheme = "affine32"
    """datasketch's permutation scheme: affine32 (its default since 2.0), affine64, legacy."""
    max_chars: int = Field(1_000_000, ge=1)
    """Only the first `max_chars` characters of a document are shingled: bounds time and memory
    on huge documents (a 50 MB document costs what a 1 MB one does)."""
    scope: Literal["global", "bucket", "language"] = "language"
    """Which documents are compared: all, those of one mixture bucket, or of one language (the
    stage groups by (scope value, band key))."""
    survivor: Literal["lowest_id", "highest_quality"] = "lowest_id"
    """Which document of a duplicate cluster is kept (URL, exact and near-duplicate levels
    alike): the smallest id (Python string order), or the highest quality score (quality runs
    before dedup; ties and unscored documents by smallest id)."""
    max_bucket_size: int = Field(1000, ge=2)
    """Most documents of one LSH bucket linked to one node at a time: `bucket_edges` links a
    bucket of k members as a tree of stars with this fan-out instead of one star, so a giant
    boilerplate bucket costs k-1 edges, a node gets at most (max_bucket_size - 1) neighbours
    per level of the tree (levels = ceil(log_max_bucket_size(k)): 2 for a million members),
    and the tree's depth is that number of levels. The clusters are the same as with one
    star."""
    max_cc_rounds: int = Field(10, ge=1)
    """Most rounds of the distributed connected-components algorithm (pipeline stage)."""

    @model_validator(mode="after")
    def _check_bands(self) -> MinHashParams:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both `bands` and `rows`, or neither (derived from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} > num_perm = {self.num_perm}")
        if self.false_positive_weight + self.false_negative_weight <= 0:
            raise ValueError("false_positive_weight + false_negative_weight must be > 0")
        return self

    @property
    def band_rows(self) -> tuple[int, int]:
        """(bands, rows): the explicit ones, else `optimal_bands` for threshold and num_perm."""
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight)


# ---------------------------------------------------------------------------------------------
# Tokeniser: one character table, used by the numba kernel and (as a regex) by `shingles`.


@functools.lru_cache(maxsize=1)
def _word_table() -> np.ndarray:
    """uint8[0x110000]: 1 where the code point is a letter, mark or number."""
    table = in_categories("LMN")
    table[0xD800:0xE000] = 0  # surrogates (kept by "surrogatepass") separate tokens
    return table


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(f"\\U{lo:08x}-\\U{hi - 1:08x}" for lo, hi in ranges)


@functools.lru_cache(maxsize=1)
def _token_regex() -> re.Pattern:
    """The table as a regex: [^\\W_] (letters and numbers: str.isalnum) or a mark. Marks are split
    into BMP and astral classes behind a range check, so that re keeps its fast BMP bitmap
    (one class with astral ranges makes findall ~10x slower)."""
    marks = in_categories("M")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], marks, [0])).astype(np.int8)))
    ranges = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    bmp = [(lo, min(hi, 0x10000)) for lo, hi in ranges if lo < 0x10000]
    astral = [(max(lo, 0x10000), hi) for lo, hi in ranges if hi > 0x10000]
    return re.compile(f"(?:[^\\W_]|[{_char_class(bmp)}]|(?=[\\U00010000-\\U0010ffff])[{_char_class(astral)}])+")


def _tokens(text: str, max_chars: int) -> list[str]:
    return _token_regex().findall(text[:max_chars].lower())


def shingles(text: str, ngram: int = 5, char_level: bool = False, max_chars: int = 1_000_000) -> list[bytes]:
    """The shingles `MinHasher.signatures` hashes, as UTF-8 bytes (in document order, with
    repeats): the reference for tests, datasketch comparisons and true Jaccard similarities.
    `ngram` is words per shingle, or characters per shingle when `char_level`."""
    tokens = _tokens(text, max_chars)
    if char_level:
        units: list[str] = list("".join(tokens))
        sep = ""
    else:
        units, sep = tokens, " "
    if len(units) < ngram:
        return [sep.join(units).encode("utf-8", "surrogatepass")]
    return [sep.join(units[i : i + ngram]).encode("utf-8", "surrogatepass") for i in range(len(units) - ngram + 1)]


def jaccard(a: Iterable, b: Iterable) -> float:
    """Exact Jaccard similarity of two collections taken as sets (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return 1.0 if union == 0 else len(sa & sb) / union


# ---------------------------------------------------------------------------------------------
# Permutations: the same random draws as datasketch's MinHash(num_perm, seed, scheme).


def permutations(num_perm: int, seed: int = 1, scheme: Scheme = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the permutations h -> a*h + b of datasketch's `scheme`, drawn as datasketch
    draws them from `np.random.RandomState(seed)`: legacy draws (a_k in [1, p), b_k in [0, p))
    pair by pair over the Mersenne prime p = 2^61-1; affine{w} draws all a (then made odd),
    then all b, over [0, 2^w). dtype as datasketch's: uint32 for affine32, else uint64."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        from classifiers.minhash_kernel import MERSENNE_61

        pairs = [
            (gen.randint(1, MERSENNE_61, dtype=np.uint64), gen.randint(0, MERSENNE_61, dtype=np.uint64))
            for _ in range(num_perm)
        ]
        ab = np.array(pairs, dtype=np.uint64).reshape(num_perm, 2)
        return ab[:, 0].copy(), ab[:, 1].copy()
    width = 32 if scheme == "affine32" else 64
    dtype = np.uint32 if width == 32 else np.uint64
    a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
    return a, b


# ---------------------------------------------------------------------------------------------
# LSH parameters, band keys, bucket linking, reference connected components.


def s_curve(s, bands: int, rows: int):
    """Probability that two documents of Jaccard similarity s share at least one band:
    1 - (1 - s^rows)^bands (works on floats and arrays)."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


@functools.lru_cache(maxsize=256)
def optimal_bands(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising
    fp_weight * integral_0^t P(s) ds + fn_weight * integral_t^1 (1 - P(s)) ds, P = `s_curve`:
    the criterion of datasketch's MinHashLSH (ties: fewest bands, then fewest rows). P is a
    polynomial of degree bands*rows <= num_perm, so Gauss-Legendre quadrature with
    num_perm//2 + 1 nodes integrates it exactly."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be in (0, 1)")
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    # nodes mapped onto [0, t] and [t, 1]
    s_lo = (nodes + 1.0) * (threshold / 2.0)
    s_hi = threshold + (nodes + 1.0) * ((1.0 - threshold) / 2.0)
    w_lo = weights * (threshold / 2.0)
    w_hi = weights * ((1.0 - threshold) / 2.0)
    best, best_err = (0, 0), np.inf
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]
        fp = (1.0 - (1.0 - s_lo**r) ** b) @ w_lo
        fn = ((1.0 - s_hi**r) ** b) @ w_hi
        err = false_positive_weight * fp + false_negative_weight * fn
        i = int(np.argmin(err))
        if err[i] < best_err:
            best, best_err = (b, i + 1), err[i]
    return best


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BAND_SEED = np.uint64(0x243F6A8885A308D3)


def _fmix64_np(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 (n, bands) LSH bucket keys. For band i with row values v_1..v_rows (as integers):
        h = fmix64(0x243F6A8885A308D3 ^ i);  h = fmix64((h ^ v_j) * 0x9E3779B97F4A7C15) per row
    (fmix64 = MurmurHash3's 64-bit finalizer; arithmetic mod 2^64). Defined on values, not
    bytes, so it is the same on every machine and for uint32 or uint64 signatures; the band
    index is mixed in, so keys of different bands do not collide."""
    sig = np.asarray(signatures)
    if sig.ndim != 2 or sig.shape[1] < bands * rows:
        raise ValueError(f"need (n, >= {bands * rows}) signatures, got {sig.shape}")
    vals = sig[:, : bands * rows].astype(np.uint64).reshape(sig.shape[0], bands, rows)
    with np.errstate(over="ignore"):
        h = np.broadcast_to(_fmix64_np(_BAND_SEED ^ np.arange(bands, dtype=np.uint64)), (sig.shape[0], bands))
        for j in range(rows):
            h = _fmix64_np((h ^ vals[:, :, j]) * _GOLDEN)
    return np.ascontiguousarray(h)


def bucket_edges(members: Iterable[Hashable], max_bucket_size: int) -> Iterator[tuple]:
    """Edges linking the members of one LSH bucket into one tree (k members, k-1 edges),
    streaming, in O(max_bucket_size * levels) memory. Members are taken in the given order in
    groups of `max_bucket_size`; each group becomes a star around its smallest member, and the
    centres are grouped the same way one level up, until one centre is left: the bucket's
    smallest member, at most `levels` = ceil(log_max_bucket_size(k)) hops from every member.
    A node gets at most max_bucket_size - 1 neighbours per level. A bucket of at most
    `max_bucket_size` members is one star around its smallest member. Each edge is
    (centre, member), centre < member."""
    if max_bucket_size < 2:
        raise ValueError("max_bucket_size must be >= 2")
    levels: list[list] = []

    def flush(level: int) -> Iterator[tuple]:
        group = levels[level]
        centre = min(group)
        for m in group:
            if m != centre:
                yield (centre, m)
        group.clear()
        yield from push(level + 1, centre)

    def push(level: int, item) -> Iterator[tuple]:
        if level == len(levels):
            levels.append([])
        levels[level].append(item)
        if len(levels[level]) == max_bucket_size:
            yield from flush(level)

    for m in members:
        yield from push(0, m)
    level = 0
    while level < len(levels):
        top = all(not g for g in levels[level + 1 :])
        if top and len(levels[level]) <= 1:
            break
        if levels[level]:
            yield from flush(level)
        level += 1


def candidate_edges(ids: Sequence[Hashable], keys: np.ndarray, max_bucket_size: int = 1000) -> list[tuple]:
    """In-memory reference of the LSH linking stage: group `ids` by each band's key (keys:
    (n, bands) from `band_keys`) and link every bucket of 2+ members with `bucket_edges`
    (members in id order). Returns the distinct edges."""
    ids = list(ids)
    keys = np.asarray(keys)
    edges: set[tuple] = set()
    order_ids = np.argsort(np.array(ids, dtype=object), kind="stable")
    for band in range(keys.shape[1]):
        col = keys[order_ids, band]
        by_key = np.argsort(col, kind="stable")
        sorted_keys = col[by_key]
        cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
        for group in np.split(by_key, cuts):
            if len(group) > 1:
                edges.update(bucket_edges((ids[order_ids[i]] for i in group), max_bucket_size))
    return sorted(edges)


def connected_components(edges: Iterable[tuple[Hashable, Hashable]]) -> dict:
    """node -> root of its component, the component's smallest node (union-find with path
    halving). Only nodes that appear in an edge are in the result."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            if rv < ru:
                ru, rv = rv, ru
            parent[rv] = ru  # the smaller root stays root, so every root is its component's min
    return {x: find(x) for x in parent}


# ---------------------------------------------------------------------------------------------


def _prepare(text: str, max_chars: int) -> bytes:
    """UTF-8 bytes for the kernel, truncated. The kernel lower-cases code point by code point
    (`unicode_tables.single_lower`), which is what str.lower does except for U+0130 (two code points) and a
    capital sigma (final or not by context): texts with those are lower-cased here. (str.lower
    costs as much as the rest of the work on a document.)"""
    text = text[:max_chars]
    if not text.isascii() and ("\u0130" in text or "\u03a3" in text):
        text = text.lower()
    return text.encode("utf-8", "surrogatepass")


class MinHasher:
    """Holds the permutations and the character table; computes signatures and band keys.
    Picklable (Beam ships it to workers); the numba kernel (`classifiers.minhash_kernel`) is
    loaded on first use, compiled ahead of time (`classifiers.kernels`)."""

    def __init__(self, params: MinHashParams | None = None):
        self.params = params or MinHashParams()
        p = self.params
        self.bands, self.rows = p.band_rows
        self._a, self._b = permutations(p.num_perm, p.seed, p.scheme)
        self._scheme = _SCHEME_CODES[p.scheme]
        self._empty = np.uint64((1 << 64) - 1) if p.scheme == "affine64" else np.uint64((1 << 32) - 1)
        self.dtype = np.uint32 if p.scheme == "affine32" else np.uint64
        self._char_languages = frozenset(p.char_languages)

    def __getstate__(self):
        return {"params": self.params}

    def __setstate__(self, state):
        self.__init__(state["params"])

    def char_level_for(self, languages: Iterable[str | None]) -> list[bool]:
        """Per document: shingle by characters (its language is in `char_languages`)?"""
        return [lang in self._char_languages for lang in languages]

    def signatures(self, texts: Sequence[str], char_level: Sequence[bool] | None = None) -> np.ndarray:
        """(n, num_perm) MinHash signatures, dtype uint32 for affine32 (datasketch's hashvalues
        dtype), else uint64. Row i equals datasketch.MinHash(num_perm, seed, scheme) updated
        with shingles(texts[i], ngram or char_ngram, char_level[i], max_chars)."""
        p = self.params
        n = len(texts)
        encoded = [_prepare(t, p.max_chars) for t in texts]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if char_level is None:
            chars = np.zeros(n, dtype=np.bool_)
        else:
            chars = np.asarray(char_level, dtype=np.bool_)
            if chars.shape != (n,):
                raise ValueError("char_level must have one flag per text")
        out = np.empty((n, p.num_perm), dtype=self.dtype)
        if n:
            from classifiers.kernels import kernels

            self.run_kernel(kernels(), data, offsets, chars, out)
        return out

    def run_kernel(self, k, data: np.ndarray, offsets: np.ndarray, chars: np.ndarray, out: np.ndarray) -> None:
        """Fill `out` with the signatures of the documents packed in `data` (UTF-8, split at
        `offsets`), by the kernels `k` (classifiers.kernels: the compiled module, or numba's)."""
        p = self.params
        kernel = k.signatures32 if self.dtype == np.uint32 else k.signatures64
        kernel(
            data,
            offsets,
            chars,
            p.ngram,
            p.char_ngram,
            _word_table(),
            single_lower(),
            self._scheme,
            self._a,
            self._b,
            self._empty,
            out,
        )

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """uint64 (n, bands) bucket keys of `signatures` (see module function `band_keys`)."""
        return band_keys(signatures, self.bands, self.rows)
