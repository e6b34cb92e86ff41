"""Text utilities shared by the stages: normalisation, stable hashes, token-count approximation.

Pure functions, no Beam. Hashes here are stable across processes and machines (never Python's
salted `hash()`), since the pipeline shuffles on them and reruns must agree.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata

_CRLF = re.compile(r"\r\n?")


def normalize_text(text: str, form: str = "NFC") -> str:
    """The text every later stage sees and the output keeps: Unicode-normalised (NFC by
    default), newlines unified to \\n, surrounding whitespace stripped."""
    if form != "none" and not unicodedata.is_normalized(form, text):
        text = unicodedata.normalize(form, text)
    if "\r" in text:
        text = _CRLF.sub("\n", text)
    return text.strip()


def dedup_key_text(text: str) -> str:
    """What exact dedup compares: compatibility-normalised, case-folded, whitespace collapsed.
    Two documents that differ only in case, spacing or full/half-width forms are duplicates.
    (Split and joined: the white space of str.split() is re's \\s, and the runs it collapses
    lose their ends as .strip() did, in a third of the time of a regex substitution.)"""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize_url(url: str) -> str:
    """The URL as URL dedup compares it: trimmed, fragment dropped, scheme and host lower-cased."""
    url = url.strip().split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def stable_hash64(data: bytes | str, salt: bytes = b"") -> int:
    """Unsigned 64-bit blake2b digest: stable everywhere, cheap, well mixed."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return struct.unpack("<Q", hashlib.blake2b(data, digest_size=8, salt=salt[:16]).digest())[0]


# FNV-1a, 64 bits, over code points or bytes: the compiled kernels' hash tables (Llama 3's
# vocabulary, the stop-word sets); fast, not meant to be stable across versions
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def unit_interval(key: str, seed: int) -> float:
    """Deterministic uniform number in [0, 1) from a key and a seed (sampling decisions)."""
    return stable_hash64(f"{seed}\x1f{key}") / 2.0**64


# Offline token-count approximation, used when no tokenizer.json is configured: about four
# UTF-8 bytes per token, the usual rule of thumb for BPE tokenizers on English (Llama 2's
# tokenizer gives 3.5-4.5 bytes/token on English prose and code; it is lower, so this
# under-counts, on CJK text). The manifest labels counts made this way as approximate.
APPROX_BYTES_PER_TOKEN = 4
APPROX_TOKENIZER_NAME = f"approx:utf8_bytes/{APPROX_BYTES_PER_TOKEN}"


def approx_token_count(n_utf8_bytes: int) -> int:
    return max(1, -(-n_utf8_bytes // APPROX_BYTES_PER_TOKEN))
