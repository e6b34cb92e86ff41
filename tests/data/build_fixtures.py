"""Build the test fixtures under tests/data/ from the shared data the benchmarks use.

    CURATE_DATA_DIR=/path/to/shared/data .venv/bin/python -m tests.data.build_fixtures

The shared data directory is read through bench/data.py ($CURATE_DATA_DIR, default
../shared/data beside the repository); this script is the only part of tests/ that reads it.
The tests themselves read only what it writes, through tests/corpus.py, so that `make test`
passes in a clone with nothing beside it. Rerunning it on the same data rewrites the same files.

It writes, in the layout of the shared data (so that bench/data.py's parsers read both):

* langid-dev/lingua_sentences.tsv.zst: `lang<TAB>sentence`, in the dev set's order: the first
  DEV_PER_LANGUAGE sentences of each of its 75 languages, more (DEV_MORE) for the languages
  whose tests build many paragraphs;
* bench-corpus/part-00000.jsonl.zst: benchmark-corpus documents in the corpus's order, each
  record as bench.data.iter_bench_corpus yields it (manifest columns joined): the first
  HEAD[category] documents of each category, then the originals of those near-duplicates
  that are not among them, then further Go files (under GO_MAX_CHARS characters) until the
  sample holds GO_FILES of them;
* bench-corpus/sample.json: HEAD and the counts of what was written;
* LICENSES/python-LICENSE.txt: the Python licence, copied from this interpreter's library (the
  other licences there are committed as they are; tests/data/README.md lists the sources).

Sizes (zstd level 19): about 0.52 MB of sentences, 0.6 MB of documents.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from collections import Counter
from pathlib import Path

import zstandard

from bench.data import BENCH_CORPUS, DEV_SET, iter_bench_corpus, iter_dev_sentences

OUT = Path(__file__).resolve().parent
HEAD = {"a_multilingual": 100, "b_english": 400, "c_code": 100, "d_near_dup": 70}
GO_FILES = 300
GO_MAX_CHARS = 6000
DEV_PER_LANGUAGE = 100
# tests/test_heuristics.py: 20 paragraphs of 15 sentences (en, de, ru, hi), 25 of 10 (zh, ja, ko,
# th); tests/test_minhash.py: 25 paragraphs of 10 (these and ar, el, ta, vi)
DEV_MORE = {
    **dict.fromkeys(("en", "de", "ru", "hi"), 300),
    **dict.fromkeys(("zh", "ja", "ko", "th", "ar", "el", "ta", "vi"), 250),
}
LEVEL = 19


def _write_zst(path: Path, lines: list[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = zstandard.ZstdCompressor(level=LEVEL).compress("".join(x + "\n" for x in lines).encode("utf-8"))
    path.write_bytes(blob)
    return len(blob)


def dev_lines() -> list[str]:
    seen: Counter = Counter()
    out = []
    for lang, sentence in iter_dev_sentences(DEV_SET):
        if seen[lang] < DEV_MORE.get(lang, DEV_PER_LANGUAGE):
            seen[lang] += 1
            out.append(f"{lang}\t{sentence}")
    return out


def bench_sample() -> list[dict]:
    corpus = list(iter_bench_corpus(BENCH_CORPUS))
    seen: Counter = Counter()
    keep = set()
    for i, d in enumerate(corpus):
        c = d["category"]
        if seen[c] < HEAD.get(c, 0):
            seen[c] += 1
            keep.add(i)
    if seen != Counter(HEAD):
        raise SystemExit(f"{BENCH_CORPUS}: fewer documents than {HEAD}: {dict(seen)}")
    head_ids = {corpus[i]["id"] for i in keep}
    originals = {corpus[i]["dup_of"] for i in keep if corpus[i].get("dup_of")}
    go = sum(corpus[i]["id"].startswith("go-") for i in keep)
    for i, d in enumerate(corpus):
        if d["id"] in originals and d["id"] not in head_ids:
            keep.add(i)
        elif (
            go < GO_FILES
            and i not in keep
            and d["category"] == "c_code"
            and d["id"].startswith("go-")
            and len(d["text"]) < GO_MAX_CHARS
        ):
            keep.add(i)
            go += 1
    return [corpus[i] for i in sorted(keep)]


def main() -> None:
    lines = dev_lines()
    dev_size = _write_zst(OUT / "langid-dev" / "lingua_sentences.tsv.zst", lines)
    docs = bench_sample()
    bench_size = _write_zst(
        OUT / "bench-corpus" / "part-00000.jsonl.zst", [json.dumps(d, ensure_ascii=False) for d in docs]
    )
    stats = {
        "head": HEAD,
        "documents": len(docs),
        "by_category": dict(sorted(Counter(d["category"] for d in docs).items())),
        "by_source": dict(sorted(Counter(d["source"] for d in docs).items())),
        "go_files": sum(d["id"].startswith("go-") for d in docs),
        "text_bytes": sum(len(d["text"].encode("utf-8")) for d in docs),
    }
    (OUT / "bench-corpus" / "sample.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    lic = OUT / "LICENSES"
    lic.mkdir(exist_ok=True)
    shutil.copyfile(Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt", lic / "python-LICENSE.txt")
    print(f"{len(lines)} sentences, {dev_size:,} bytes; {len(docs)} documents, {bench_size:,} bytes; {stats}")


if __name__ == "__main__":
    main()
