"""MinHash signature throughput, one core: classifiers.minhash vs datasketch.

    python -m bench.minhash_bench [--repeats 3]

Documents: 500-word documents of real text, (a) English: Python's pydoc topics and the
benchmark corpus's GNOME / LibreOffice help pages, (b) the
language-ID dev set's sentences, consecutive sentences of one language per document, every
language written with spaces (zh/ja/th are left out: "500 words" means nothing there), and
(c) the standard library's source files as they are (real code, any length).
Compared, with the same shingles and the same signatures (checked on a sample):
* ours: `MinHasher.signatures` (tokenise + shingle + SHA-1 + permute, one numba kernel);
* datasketch `MinHash.bulk` given the shingles (its hashing and permutations only);
* datasketch with shingling: our reference `shingles()` (regex) + `MinHash.bulk`.
Each figure is the best of --repeats runs, wall-clock and CPU time of this process (the machine
is shared). Also: band keys, and time and peak memory for one 72 MB document (`max_chars` bounds
both).
Writes its section of bench/results/minhash.md and prints it.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import datasketch
import numba
import numpy as np

from bench.data import DEV_SET, iter_dev_sentences
from bench.dedup_quality import bench_corpus_extras, pydoc_topics, stdlib_files, write_section
from classifiers.minhash import MinHasher, MinHashParams, shingles

WORDS = 500


def english_docs() -> list[str]:
    texts = [text for _, text in pydoc_topics()]
    texts += [text for _, kind, text in bench_corpus_extras()[0] if kind == "prose"]
    words = " ".join(texts).split()
    return [" ".join(words[i : i + WORDS]) for i in range(0, len(words) - WORDS + 1, WORDS)]


def multilingual_docs() -> list[str]:
    by_lang: dict[str, list[str]] = defaultdict(list)
    for lang, sentence in iter_dev_sentences(DEV_SET):
        if lang not in ("zh", "ja", "th"):
            by_lang[lang].extend(sentence.split())
    out = []
    for words in by_lang.values():
        out.extend(" ".join(words[i : i + WORDS]) for i in range(0, len(words) - WORDS + 1, WORDS))
    return out


def best_time(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU (process) time of `repeats` runs. On a machine shared
    with other jobs the CPU time is the fairer per-core figure."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


HUGE_PROBE = """
import os, threading, time
from classifiers.minhash import MinHasher
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
mh = MinHasher()
mh.signatures(["warm up"])
huge = ("word " * 10 + "different words here. ") * 1_000_000  # 72 MB
base, peak, done = rss(), [0], threading.Event()
def sample():  # the kernel releases the GIL, so this thread samples while it runs
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)
sampler = threading.Thread(target=sample)
sampler.start()
t = time.perf_counter()
mh.signatures([huge])
dt = time.perf_counter() - t
done.set()
sampler.join()
print(len(huge), dt, max(peak[0], rss()) - base)
"""


def huge_document() -> tuple[int, float, float]:
    """(characters, seconds, peak RSS increase in MiB while hashing it) for one huge document,
    in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", HUGE_PROBE],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) / 2**20


def run(repeats: int) -> str:
    params = MinHashParams()
    mh = MinHasher(params)
    mh.signatures(["warm up the kernel"])  # compile / load numba's cache
    sets = {
        "English 500-word (pydoc topics, GNOME and LibreOffice help)": english_docs(),
        "multilingual 500-word (dev set, 72 languages)": multilingual_docs(),
    }
    code = [text for _, text in stdlib_files()]
    rows = []
    for name, docs in sets.items():
        mb = sum(len(d.encode()) for d in docs) / 1e6
        # same signatures as datasketch (a sample)
        sample = docs[:20]
        ours = mh.signatures(sample)
        ref = datasketch.MinHash.bulk(
            [shingles(d, params.ngram) for d in sample], num_perm=params.num_perm, seed=params.seed
        )
        assert all(np.array_equal(o, r.hashvalues) for o, r in zip(ours, ref))
        t_ours = best_time(lambda: mh.signatures(docs), repeats)  # noqa: B023 - called at once
        pre = [shingles(d, params.ngram) for d in docs]
        t_bulk = best_time(lambda: datasketch.MinHash.bulk(pre, num_perm=params.num_perm, seed=params.seed), repeats)  # noqa: B023
        t_shingle = best_time(lambda: [shingles(d, params.ngram) for d in docs], repeats)  # noqa: B023 - called at once
        sigs = mh.signatures(docs)
        t_keys = best_time(lambda: mh.band_keys(sigs), repeats)  # noqa: B023 - called at once
        rows.append((name, len(docs), mb, t_ours, t_bulk, t_shingle, t_keys))
    mb_code = sum(len(d.encode()) for d in code) / 1e6
    t_code = best_time(lambda: mh.signatures(code), repeats)
    huge_chars, t_huge, rss_huge = huge_document()

    out = [
        "## Signature throughput (one core)",
        "",
        f"`python -m bench.minhash_bench --repeats {repeats}` (best of {repeats}; 2-core "
        f"{platform.processor() or platform.machine()} VM shared with other jobs). "
        f"{params.num_perm} permutations, word {params.ngram}-grams, scheme {params.scheme}; "
        f"numba {numba.__version__}, numpy {np.__version__}, datasketch "
        f"{datasketch.__version__}. Our signatures equal datasketch's (checked here on a "
        f"sample, in tests on random and real texts).",
        "",
        "Figures are documents per second as wall-clock / CPU-time (the CPU time of this "
        "process: the per-core figure when other jobs share the cores).",
        "",
        "| documents | n | MB | ours docs/s | ours MB/s | datasketch bulk docs/s | "
        "shingling + bulk docs/s | ours vs shingling + bulk | band keys docs/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def rate(n, t):
        return f"{n / t[0]:,.0f} / {n / t[1]:,.0f}"

    for name, n, mb, t_ours, t_bulk, t_sh, t_keys in rows:
        both = (t_bulk[0] + t_sh[0], t_bulk[1] + t_sh[1])
        out.append(
            f"| {name} | {n:,} | {mb:.1f} | **{rate(n, t_ours)}** | "
            f"{mb / t_ours[0]:.1f} / {mb / t_ours[1]:.1f} | {rate(n, t_bulk)} | "
            f"{rate(n, both)} | {both[1] / t_ours[1]:.1f}x | {rate(n, t_keys)} |"
        )
    out += [
        "",
        f"Standard-library sources ({len(code):,} files, {mb_code:.1f} MB): "
        f"{rate(len(code), t_code)} files/s, {mb_code / t_code[0]:.1f} / "
        f"{mb_code / t_code[1]:.1f} MB/s.",
        f"One {huge_chars / 1e6:.0f} MB document (fresh process): {t_huge * 1e3:.0f} ms, peak "
        f"RSS +{rss_huge:.0f} MiB while hashing it (only its first max_chars = "
        f"{params.max_chars:,} characters are shingled).",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    report = run(args.repeats)
    print(report)
    write_section("minhash_bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
