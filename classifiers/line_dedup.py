"""Line-level deduplication, the pure part: line keys, stable line hashes, the removal itself
and the per-document arithmetic that tells the mixture what a removal leaves. No Beam.

What it does (Llama 3, Dubey et al. 2024, section 3.1.1, after ccNet, Wenzek et al. 2019):
lines that occur in more than `max_line_repeats` documents of one group are removed from every
document they occur in (Llama 3: more than 6 times in each bucket of 30M documents). This
removes navigation menus, cookie banners, legal footers and other template text the document
filters and document-level dedup leave behind; Llama 3 reports it also removes some frequent
good text and still measured strong improvements. A document left with fewer than
`min_chars_after` characters is rejected as `line_dedup/emptied`.

How a line is compared: NFKC, case-folded, ASCII digits mapped to 0 (ccNet does the same, so
"Page 3 of 12" and "Copyright 2023" match across pages and years), whitespace runs collapsed,
stripped. Lines whose key is shorter than `min_line_chars` are never counted nor removed.

Occurrences are counted once per document, and once per distinct document text: a line that a
document repeats (a refrain, a table row) is not boilerplate on that account alone (Gopher's
duplicate-line rules judge that), and exact copies of a document count as one document, as if
counted after exact dedup.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from classifiers.text import approx_token_count

# The line key keeps 56 bits of a blake2b digest: small enough to travel as a 9-byte varint in
# Beam's coder for Python ints (a value >= 2**63 costs 24 bytes there). Within one group of N
# distinct lines, ~N**2 / 2**57 pairs of lines share a key: about 7 pairs among 10^9 lines,
# each only adding two lines' counts together.
LINE_HASH_BITS = 56
_DIGITS = str.maketrans("123456789", "000000000")


class LineDedupParams(BaseModel):
    """Line-level dedup (`stages.line_dedup`). Off by default: it is the one stage that edits
    document text rather than keeping or dropping documents, and its count threshold is only
    meaningful against a known group size (Llama 3's "more than 6 in 30M documents"): switch it
    on with `groups` sized for the corpus (documents per scope / 30M)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_line_repeats: int = Field(6, ge=1)
    """A line found in more than this many documents of a group is removed from all of them
    (Llama 3: 6)."""
    min_line_chars: int = Field(10, ge=1)
    """Lines whose normalised key is shorter are left alone and not counted: blank lines, "}",
    "Note:", "Example" are frequent everywhere, cost shuffle bytes, and their removal would only
    break a document's structure."""
    min_chars_after: int = Field(200, ge=1)
    """A document left with fewer characters (not counting each line's surrounding whitespace)
    is rejected as `line_dedup/emptied`: what is left of a page that was mostly template is a
    fragment (~40 words; Gopher's own minimum is 50 words)."""
    scope: Literal["global", "bucket", "language"] = "bucket"
    """Which documents count together: all, one mixture bucket, or one language."""
    groups: int = Field(1, ge=1)
    """Each scope is split into this many groups by a hash of the document id, and lines are
    counted per group (Llama 3 counted in groups of 30M documents, so a fixed threshold means
    the same frequency whatever the corpus size)."""
    skip_buckets: list[str] = Field(default_factory=lambda: ["code"])
    """Buckets whose documents take no part: in code, `return nil` or `import os` is in every
    other file and removing it breaks the program."""
    max_lines: int = Field(100_000, ge=1)
    """Only a document's first `max_lines` lines are counted (and can be removed): bounds the
    shuffle on giant documents."""


def line_key(line: str) -> str:
    """The comparison form of one line (see the module docstring)."""
    return " ".join(unicodedata.normalize("NFKC", line).casefold().translate(_DIGITS).split())


def group_salt(scope_value: str, group: int) -> bytes:
    """16-byte blake2b salt naming a counting group: the same line in two groups hashes apart."""
    return hashlib.blake2b(f"{scope_value}\x1f{group}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


def line_hash(key: str, salt: bytes) -> int:
    """Stable 56-bit hash of a line key within a group."""
    d = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, salt=salt).digest()
    return int.from_bytes(d, "little") >> (64 - LINE_HASH_BITS)


def _keys(text: str, lines: list[str]) -> list[str]:
    # Normalising the whole text at once is ~3x faster than line by line; it is used when it
    # keeps the line boundaries (NFKC and case folding never add or remove a "\n" in practice,
    # and the count is checked).
    whole = unicodedata.normalize("NFKC", text).casefold().translate(_DIGITS)
    keys = whole.split("\n")
    if len(keys) != len(lines):
        return [line_key(line) for line in lines]
    return [" ".join(k.split()) for k in keys]


def content_chars(text: str) -> int:
    """Characters of a text not counting each line's surrounding whitespace: what
    `min_chars_after` is compared with (a document of blank lines has none)."""
    return _content(text.split("\n"))


def _content(lines: list[str]) -> int:
    return sum(len(line.strip()) for line in lines)


def doc_lines(text: str, salt: bytes, min_line_chars: int, max_lines: int) -> tuple[list[tuple], int]:
    """(items, content chars of the whole text). One item per distinct counted line: (line
    hash, line index or tuple of the indices where the line repeats, bytes its removal takes,
    content chars its removal takes). A removed line takes its UTF-8 bytes and one newline."""
    lines = text.split("\n")
    content = _content(lines)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        keys = _keys("\n".join(lines), lines)
    else:
        keys = _keys(text, lines)
    found: dict[int, list] = {}
    for i, (line, key) in enumerate(zip(lines, keys)):
        if len(key) < min_line_chars:
            continue
        h = line_hash(key, salt)
        nbytes = (len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))) + 1
        nchars = len(line.strip())
        f = found.get(h)
        if f is None:
            found[h] = [i, nbytes, nchars]
        else:
            f[0] = (*f[0], i) if isinstance(f[0], tuple) else (f[0], i)
            f[1] += nbytes
            f[2] += nchars
    return [(h, f[0], f[1], f[2]) for h, f in found.items()], content


def flatten_indices(indices) -> list[int]:
    """Line indices from items' index fields (an int or a tuple of ints), sorted."""
    out: list[int] = []
    for ix in indices:
        if isinstance(ix, tuple):
            out.extend(ix)
        else:
            out.append(ix)
    out.sort()
    return out


def remove_lines(text: str, indices) -> str:
    """`text` without the lines at `indices` (0-based, split on "\\n"). Blank lines that the
    removal brings together collapse to one, and the result is stripped like every normalised
    document."""
    drop = set(indices)
    if not drop:
        return text
    out: list[str] = []
    gap = False
    for i, line in enumerate(text.split("\n")):
        if i in drop:
            gap = True
            continue
        if gap and out and not line.strip() and not out[-1].strip():
            continue
        out.append(line)
        gap = False
    return "\n".join(out).strip()


def removed_fraction(text: str, indices) -> float:
    """Fraction of the characters of `text` that removing the lines at `indices` takes away."""
    if not text:
        return 0.0
    return 1.0 - len(remove_lines(text, indices)) / len(text)


def emptied(kept_content: int, min_chars_after: int) -> bool:
    """A document left with fewer than `min_chars_after` content characters once its frequent
    lines are removed is dropped (`line_dedup/emptied`), not kept as scraps."""
    return kept_content < min_chars_after


def after_removal(
    n_bytes: int, n_tokens: int, n_content: int, removed_bytes: int, removed_content: int, approx_tokens: bool
) -> tuple[int, int, int]:
    """(bytes, tokens, content chars) a document keeps once lines taking `removed_bytes` bytes
    and `removed_content` content characters are removed, as the mixture plan counts them:
    bytes exact up to the blank lines `remove_lines` collapses; tokens exact for the byte
    approximation, else the document's tokens scaled by the bytes it keeps."""
    kept_bytes = max(0, n_bytes - removed_bytes)
    kept_content = max(0, n_content - removed_content)
    if kept_bytes == 0 or kept_content == 0:
        return 0, 0, 0
    if approx_tokens:
        tokens = approx_token_count(kept_bytes)
    else:
        tokens = max(1, round(n_tokens * kept_bytes / n_bytes)) if n_bytes else 0
    return kept_bytes, tokens, kept_content
