"""Readers for the shared real data the benchmarks use.

* the language-ID dev set (`lingua_sentences.tsv.zst`: `lang<TAB>sentence`, 75 languages, in
  the file's order, which keeps each language's sentences consecutive);
* the benchmark corpus (`part-*.jsonl.zst` + `manifest.tsv.zst`).

The data directory is $CURATE_DATA_DIR, else ../shared/data beside the repository. This module is
the benchmarks' one way to it: no other file names it. The tests never read it: they read the
small samples committed under tests/data (built from it by tests/data/build_fixtures.py), with
these same parsers given those paths (tests/corpus.py).
"""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_DIR = Path(os.environ.get("CURATE_DATA_DIR") or DEFAULT_DATA_DIR)
DEV_SET = DATA_DIR / "langid-dev" / "lingua_sentences.tsv.zst"
BENCH_CORPUS = DATA_DIR / "bench-corpus"


def _zst_lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")
        for line in text:
            yield line.rstrip("\n")


def iter_dev_sentences(path: Path | str = DEV_SET) -> Iterator[tuple[str, str]]:
    """(ISO 639-1 language, sentence) for every line of the dev set, in file order."""
    for line in _zst_lines(Path(path)):
        if line:
            lang, sentence = line.split("\t", 1)
            yield lang, sentence


def dev_sentences_by_language(
    languages: Iterable[str] | None = None, per_language: int | None = None, path: Path | str = DEV_SET
) -> dict[str, list[str]]:
    """language -> its sentences in file order (the first `per_language` of each, if given),
    restricted to `languages` if given."""
    wanted = set(languages) if languages is not None else None
    out: dict[str, list[str]] = defaultdict(list)
    for lang, sentence in iter_dev_sentences(path):
        if wanted is not None and lang not in wanted:
            continue
        bucket = out[lang]
        if per_language is None or len(bucket) < per_language:
            bucket.append(sentence)
    return dict(out)


def paragraphs(by_language: dict[str, list[str]], k: int, sep: str = " ") -> list[tuple[str, str]]:
    """(language, paragraph) made of k consecutive sentences of one language, non-overlapping;
    a language's incomplete last group is dropped."""
    return [
        (lang, sep.join(sents[i : i + k]))
        for lang, sents in by_language.items()
        for i in range(0, len(sents) - k + 1, k)
    ]


def long_documents(
    by_language: dict[str, list[str]], min_words: int = 500, max_chars: int = 6000, sentences_per_line: int = 4
) -> list[tuple[str, str]]:
    """(language, document) of consecutive sentences of one language, at least `min_words`
    whitespace-separated words (or `max_chars` characters, for languages written without
    spaces), with a line break every `sentences_per_line` sentences, like web text."""
    docs = []
    for lang, sents in by_language.items():
        lines: list[str] = []
        cur: list[str] = []
        words = chars = 0
        for s in sents:
            cur.append(s)
            words += len(s.split())
            chars += len(s) + 1
            if len(cur) == sentences_per_line:
                lines.append(" ".join(cur))
                cur = []
            if words >= min_words or chars >= max_chars:
                if cur:
                    lines.append(" ".join(cur))
                docs.append((lang, "\n".join(lines)))
                lines, cur, words, chars = [], [], 0, 0
    return docs


def iter_bench_corpus(directory: Path | str = BENCH_CORPUS) -> Iterator[dict]:
    """Every document of the benchmark corpus as its JSON record, joined with its manifest row
    (category, source, lang, ...) when the record lacks those fields."""
    directory = Path(directory)
    manifest = read_bench_manifest(directory)
    for part in sorted(directory.glob("part-*.jsonl.zst")):
        for line in _zst_lines(part):
            if line:
                rec = json.loads(line)
                meta = manifest.get(rec.get("id"), {})
                yield {**meta, **rec}


def read_bench_manifest(directory: Path | str = BENCH_CORPUS) -> dict[str, dict[str, str]]:
    """id -> the manifest's other columns (as strings), from manifest.tsv.zst."""
    path = Path(directory) / "manifest.tsv.zst"
    if not path.exists():
        return {}
    lines = _zst_lines(path)
    header = next(lines).split("\t")
    out = {}
    for line in lines:
        if line:
            row = dict(zip(header, line.split("\t")))
            out[row.get("id", "")] = row
    return out
