"""The per-code-point tables: what the cache gives is what Python's Unicode database says, and a
cache that cannot be used costs a rebuild, not a failure."""

from __future__ import annotations

import unicodedata

import numpy as np

from classifiers import unicode_tables as U


def test_tables_are_pythons_unicode_database(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path))
    built = U.cached_table("major-categories", 1, U._build_major_categories)  # builds, writes
    again = U.cached_table("major-categories", 1, lambda: np.zeros(1))  # reads what was written
    assert (built == again).all() and len(list(tmp_path.glob("unicode-major-categories-*/table.npy"))) == 1
    for cp in (0x41, 0x301, 0x663, 0x21, 0x20AC, 0x20, 0x0, 0xD800, 0x4E00, 0x1F600, 0x10FFFF):
        assert U.MAJOR[again[cp]] == unicodedata.category(chr(cp))[0], hex(cp)
    lower = U.cached_table("single-lower", 1, U._build_single_lower)
    for ch in "AÉΣİẞ":
        expected = ch.lower() if len(ch.lower()) == 1 else ch  # İ lower-cases to two code points
        assert chr(lower[ord(ch)]) == expected
    assert (U.in_categories("LMN")[[0x41, 0x301, 0x663, 0x21, 0x20]] == [1, 1, 1, 0, 0]).all()


def test_an_unusable_cache_builds_in_memory(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("CURATE_CACHE", str(blocked))
    table = U.cached_table("single-lower", 1, U._build_single_lower)
    assert table[ord("A")] == ord("a")
    broken = tmp_path / "cache"
    (broken / f"unicode-x-ucd{unicodedata.unidata_version}-r1").mkdir(parents=True)
    (broken / f"unicode-x-ucd{unicodedata.unidata_version}-r1" / "table.npy").write_bytes(b"garbage")
    monkeypatch.setenv("CURATE_CACHE", str(broken))
    assert U.cached_table("x", 1, lambda: np.arange(U.N_CODE_POINTS))[5] == 5
