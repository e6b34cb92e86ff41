"""The tests' real text, committed under tests/data/ (tests/data/README.md: what, whence, licences;
tests/data/build_fixtures.py builds it from the shared data). This module is the tests' one reader
of it; no test reads ../shared or $CURATE_DATA_DIR.

* the language-ID sample: sentences of the lingua-rs test set (75 languages; the first 100 of each
  in the dev set's order, 250-300 for a few), with bench/data.py's parsers;
* the benchmark sample: documents of the benchmark corpus in its order (multilingual paragraphs,
  English help pages and pydoc topics, standard-library Python and Go code, near-duplicates with
  their originals), each as bench.data.iter_bench_corpus yields it;
* write_jsonl: records written as a user's JSONL input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path

import zstandard

from bench import data as _data
from bench.data import paragraphs  # noqa: F401  (re-exported: tests build paragraphs of the sample)

DATA = Path(__file__).resolve().parent / "data"
DEV_SET = DATA / "langid-dev" / "lingua_sentences.tsv.zst"
BENCH_SAMPLE = DATA / "bench-corpus"
HEAD: dict[str, int] = json.loads((BENCH_SAMPLE / "sample.json").read_text(encoding="utf-8"))["head"]


@functools.lru_cache(maxsize=1)
def _sample() -> tuple[str, ...]:
    return tuple(json.dumps(d, ensure_ascii=False) for d in _data.iter_bench_corpus(BENCH_SAMPLE))


def _record(d: dict) -> dict:
    return {**d, "dup_of": d.get("dup_of") or None}


def sample_docs() -> list[dict]:
    """Every document of the benchmark sample (fresh dicts), in the corpus's order: the first
    HEAD[category] of each category, the originals of those near-duplicates, and further Go files
    (ids `go-...`, 300 in all)."""
    return [_record(json.loads(s)) for s in _sample()]


def bench_docs(limit_per_category: int | None = None, categories: Iterable[str] | None = None) -> list[dict]:
    """The first `limit_per_category` documents (all the sample holds of them if None) of each
    category of the benchmark corpus, or of `categories`, in the corpus's order, with the
    manifest's category, lang and dup_of."""
    wanted = set(HEAD if categories is None else categories)
    if unknown := wanted - set(HEAD):
        raise ValueError(f"no category {sorted(unknown)} in the sample: {sorted(HEAD)}")
    if limit_per_category is not None and (short := {c: HEAD[c] for c in wanted if HEAD[c] < limit_per_category}):
        raise ValueError(
            f"the sample holds the first {short} documents, not {limit_per_category}: "
            "raise HEAD in tests/data/build_fixtures.py and rebuild"
        )
    seen: dict[str, int] = {}
    out = []
    for d in sample_docs():
        c = d["category"]
        if c in wanted and seen.get(c, 0) < min(HEAD[c], limit_per_category or HEAD[c]):
            seen[c] = seen.get(c, 0) + 1
            out.append(d)
    return out


def near_dup_pairs(n: int) -> list[dict]:
    """The first n near-duplicates of the benchmark corpus with their originals, in the corpus's
    order."""
    if n > HEAD["d_near_dup"]:
        raise ValueError(f"the sample holds {HEAD['d_near_dup']} near-duplicates, not {n}")
    docs = sample_docs()
    dups = [d for d in docs if d["dup_of"]][:n]
    want = {d["id"] for d in dups} | {d["dup_of"] for d in dups}
    return [d for d in docs if d["id"] in want]


def dev_sentences_by_language(
    languages: Iterable[str] | None = None, per_language: int | None = None
) -> dict[str, list[str]]:
    """language -> its first sentences of the language-ID sample (the first `per_language` of
    each if given: all of them must be there), restricted to `languages` if given."""
    out = _data.dev_sentences_by_language(languages, per_language, path=DEV_SET)
    if languages is not None and (missing := set(languages) - set(out)):
        raise ValueError(f"no sentences of {sorted(missing)} in {DEV_SET.name}")
    if per_language is not None and (short := {k: len(v) for k, v in out.items() if len(v) < per_language}):
        raise ValueError(f"the sample holds fewer than {per_language} sentences of {short}")
    return out


def write_jsonl(path: Path, records: list, compress: bool = False) -> Path:
    blob = b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n" for r in records
    )
    path.write_bytes(zstandard.ZstdCompressor().compress(blob) if compress else blob)
    return path
