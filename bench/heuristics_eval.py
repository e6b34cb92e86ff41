"""How much clean text and real code the heuristic filters drop, and how fast they run.

    python -m bench.heuristics_eval [--quick]

1. Clean prose: the language-ID dev set's sentences, grouped into paragraphs of 5, 10 and 15
   consecutive sentences of one language (one line each, sentences joined by a space). For each
   language: the share the default filters drop, with the first failing rule, and the share
   dropped by a rule other than the minimum word count (short paragraphs are *meant* to fail
   Gopher's 50-word minimum; the other rules should pass clean prose).
2. Real code: the Python standard library's .py files through the code rules, per rule, with
   the files that are dropped.
3. The benchmark corpus: drops per category, and documents per second on one core (evaluate()
   only, data already in memory; best of several runs, since the machine is shared).

Reads the shared data through bench/data.py ($CURATE_DATA_DIR). Writes bench/results/heuristics.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

from bench import data
from classifiers.heuristics import HeuristicsParams, evaluate

STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
RESULTS = Path(__file__).parent / "results" / "heuristics.md"
PARAGRAPH_SIZES = (5, 10, 15)


def paragraphs(sentences: list[str], size: int, limit: int | None = None) -> list[str]:
    """The first `limit` (all if None) paragraphs of `size` consecutive sentences (bench/data.py)."""
    out = [text for _, text in data.paragraphs({"": sentences}, size)]
    return out[:limit] if limit else out


def stdlib_files(limit: int | None = None) -> list[Path]:
    files = sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)
    if limit:
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    return files


def read_bench_corpus(limit: int | None = None) -> list[dict]:
    """The first `limit` (all if None) documents of the benchmark corpus (bench/data.py)."""
    docs = [
        {
            "id": d["id"],
            "text": d["text"],
            "category": d["category"],
            "language": d["lang"],
            "kind": "code" if d["category"] == "c_code" else "text",
        }
        for d in islice(data.iter_bench_corpus(), limit)
    ]
    if not docs:
        raise SystemExit(f"no documents under {data.BENCH_CORPUS} (set CURATE_DATA_DIR)")
    return docs


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}" if d else "-"


def eval_prose(dev: dict[str, list[str]], params: HeuristicsParams, per_lang_limit: int | None):
    """rows[lang][size] = (n, dropped, dropped_not_by_word_count, Counter(first rule))."""
    rows: dict[str, dict[int, tuple]] = {}
    rule_totals: dict[int, Counter] = {size: Counter() for size in PARAGRAPH_SIZES}
    for lang in sorted(dev):
        rows[lang] = {}
        for size in PARAGRAPH_SIZES:
            paras = paragraphs(dev[lang], size, per_lang_limit)
            first = Counter()
            other = 0
            for text in paras:
                r = evaluate(text, lang, "text", params)
                if r.rule:
                    first[r.rule] += 1
                    if any(f != "gopher_quality.word_count" for f in r.failed_rules):
                        other += 1
            rows[lang][size] = (len(paras), sum(first.values()), other, first)
            rule_totals[size].update(first)
    return rows, rule_totals


def eval_stdlib(files: list[Path], params: HeuristicsParams):
    first = Counter()
    anyfail = Counter()
    dropped: list[tuple[str, str, dict]] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        r = evaluate(text, "python", "code", params)
        anyfail.update(r.failed_rules)
        if r.rule:
            first[r.rule] += 1
            dropped.append((str(path.relative_to(STDLIB)), r.rule, r.signals))
    return first, anyfail, dropped


def eval_bench(docs: list[dict], params: HeuristicsParams, repeats: int):
    by_cat: dict[str, Counter] = defaultdict(Counter)
    n_cat = Counter()
    for d in docs:
        r = evaluate(d["text"], d["language"], d["kind"], params)
        n_cat[d["category"]] += 1
        if r.rule:
            by_cat[d["category"]][r.rule] += 1
    timings = {}
    subsets = (
        ("all", docs),
        ("text", [d for d in docs if d["kind"] == "text"]),
        ("code", [d for d in docs if d["kind"] == "code"]),
    )
    # annotate mode computes every signal; filter mode (what `curate run` does unless it
    # annotates) stops at a document's first failing rule
    for mode, first_only in (("annotate", False), ("filter", True)):
        for label, subset in subsets:
            mb = sum(len(d["text"].encode("utf-8")) for d in subset) / 1e6
            best_cpu = best_wall = float("inf")
            for _ in range(repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                for d in subset:
                    evaluate(d["text"], d["language"], d["kind"], params, first_failure_only=first_only)
                best_cpu = min(best_cpu, time.process_time() - c0)
                best_wall = min(best_wall, time.perf_counter() - t0)
            timings[f"{label}, {mode}"] = (len(subset), mb, best_cpu, best_wall)
    return n_cat, by_cat, timings, os.getloadavg()


def render(prose, stdlib, bench, args) -> str:
    rows, rule_totals = prose
    first_code, any_code, dropped_code, n_files = stdlib
    n_cat, by_cat, timings, load = bench
    out = ["# Heuristic filters: drops on clean text and real code, and speed", ""]
    out.append(
        f"Produced by `python -m bench.heuristics_eval{' --quick' if args.quick else ''}` "
        "with the default `HeuristicsParams()`."
    )
    out.append("")
    out.append("## 1. Clean prose (language-ID dev set paragraphs)")
    out.append("")
    out.append(
        "Paragraphs of N consecutive sentences of one language, one line each. `drop%`: "
        "share dropped by the default filters. `non-length%`: share dropped by some rule "
        "other than `gopher_quality.word_count` (Gopher's 50-word minimum, which short "
        "paragraphs are meant to fail). Top rule: the most common first failing rule."
    )
    out.append("")
    head = "| lang |" + "".join(f" n{s} | drop% {s} | non-length% {s} |" for s in PARAGRAPH_SIZES)
    out.append(head + " top first rules (5 sentences) |")
    out.append("|" + " --- |" * (2 + 3 * len(PARAGRAPH_SIZES)))
    totals = {s: [0, 0, 0] for s in PARAGRAPH_SIZES}
    for lang, by_size in rows.items():
        cells = []
        for s in PARAGRAPH_SIZES:
            n, dropped, other, _ = by_size[s]
            totals[s][0] += n
            totals[s][1] += dropped
            totals[s][2] += other
            cells.append(f" {n} | {pct(dropped, n)} | {pct(other, n)} |")
        top = ", ".join(f"{r} {c}" for r, c in by_size[PARAGRAPH_SIZES[0]][3].most_common(3))
        out.append(f"| {lang} |" + "".join(cells) + f" {top} |")
    cells = "".join(f" {t[0]} | {pct(t[1], t[0])} | {pct(t[2], t[0])} |" for t in totals.values())
    out.append("| **all** |" + cells + " |")
    out.append("")
    for s in PARAGRAPH_SIZES:
        n = totals[s][0]
        ranked = ", ".join(f"`{r}` {pct(c, n)}%" for r, c in rule_totals[s].most_common())
        out.append(f"- First failing rule over all {s}-sentence paragraphs: {ranked or 'none'}")
    out.append("")
    out.append("## 2. Python standard library through the code rules")
    out.append("")
    out.append(
        f"{n_files} files under `{STDLIB}` (site-packages excluded). "
        f"Dropped: {sum(first_code.values())} ({pct(sum(first_code.values()), n_files)}%)."
    )
    out.append("")
    out.append("| rule | first failing rule (files) | fails the rule at all (files) |")
    out.append("| --- | --- | --- |")
    for rule in sorted(set(first_code) | set(any_code)):
        out.append(f"| `{rule}` | {first_code[rule]} | {any_code[rule]} |")
    out.append("")
    if dropped_code:
        out.append("Dropped files:")
        out.append("")
        for name, rule, sig in dropped_code[:80]:
            key = rule.split(".", 1)[1]
            shown = {
                k: round(v, 3)
                for k, v in sig.items()
                if k in {"max_line_length", "mean_line_length", "alphanumeric_fraction", "data_char_fraction"}
                and (key in k or k.startswith(key[:4]))
            }
            out.append(f"- `{name}`: `{rule}` {shown if shown else ''}")
        if len(dropped_code) > 80:
            out.append(f"- ... and {len(dropped_code) - 80} more")
        out.append("")
    out.append("## 3. Benchmark corpus")
    out.append("")
    out.append("Drops per category (kind `code` for `c_code`, else `text` with the manifest's language):")
    out.append("")
    out.append("| category | docs | dropped % | top first rules |")
    out.append("| --- | --- | --- | --- |")
    for cat in sorted(n_cat):
        c = by_cat[cat]
        top = ", ".join(f"`{r}` {v}" for r, v in c.most_common(4))
        out.append(f"| {cat} | {n_cat[cat]} | {pct(sum(c.values()), n_cat[cat])} | {top} |")
    out.append("")
    out.append(
        f"Throughput, one process (one core), `evaluate()` only on documents already in "
        f"memory (the compiled kernels loaded before timing), best of {args.repeats} runs; "
        "annotate mode computes every signal, filter mode stops at the first failing rule. "
        "Per CPU-second of this process (what one core does; robust to other jobs on a "
        "shared machine) and per wall-clock second:"
    )
    out.append("")
    out.append("| documents | docs | MB | CPU s | docs per CPU-s | MB per CPU-s | wall s | docs/s wall |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, (n, mb, cpu, wall) in timings.items():
        out.append(
            f"| {label} | {n} | {mb:.1f} | {cpu:.2f} | {n / cpu:,.0f} | {mb / cpu:.2f} | {wall:.2f} | {n / wall:,.0f} |"
        )
    out.append("")
    out.append(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average when timed: "
        f"{', '.join(f'{x:.1f}' for x in load)}."
    )
    out.append("")
    out.append(NOTES)
    return "\n".join(out)


NOTES = """## How to read these numbers

- **Short documents.** Gopher's 50-word minimum (`gopher_quality.word_count`) is kept as
  published: it removes short pages on purpose, in every language alike, since words in
  unspaced scripts are counted script-aware (a Chinese character is 1/1.5 word, a kana 1/2, a
  Thai/Lao/Khmer/Myanmar code point 1/4). Five dev-set sentences are often under 50 words
  (Russian, Finnish, Latin, Tamil, Telugu, Marathi: 25-50% of 5-sentence paragraphs), so the
  5-sentence columns mostly measure length; `non-length%` and the 10/15-sentence columns
  measure the other rules. Set `min_words` lower to keep short documents.
- **The dev set is sorted.** Its sentences come alphabetically ordered, so consecutive
  sentences often share their opening words ("Contenidos clasificados con los tags ...",
  bot-written Kazakh and Welsh Wikipedia stubs, Urdu pages with repeated HTTP headers). The
  Gopher repetition rules flag those paragraphs correctly; they are not clean-prose errors.
- **Serbian** dev sentences carry Wikipedia's script-conversion markup `-{...}-`; C4's
  page-level "{" rule drops them, as C4 would.
- **One-line paragraphs.** Each paragraph here is one line. When its last sentence lacks a final
  mark (Leipzig fragments ending in ":" or ")"), all of its text is in a line C4 would delete,
  so `c4.terminal_punct_lines` drops it, and FineWeb's line-punctuation ratio is 0 as well.
  On multi-line documents both rules weigh the lines (C4 by characters, FineWeb by count).
- **Stop words.** Lists exist for all 75 languages here (Gopher's own list for English);
  other languages skip the rule. For the agglutinative languages (ka, kk, ko, ta, te, xh,
  zu) function words are often suffixes, so 5 sentences sometimes hold fewer than two
  free-standing ones; at 10 sentences the rule rarely fires. The lists for lg, sn, st, tn, ts,
  xh, yo, zu, and the longer lists for ka, kk, ko, ta, te, eu, az, mn, la, were picked from the
  most frequent function words of this dev set, so their numbers here are not an independent
  estimate.
- **Repetition fractions** are of the document's characters (spaces and punctuation
  included, as in datatrove's Gopher filter): n-gram rules count the characters of the words
  in repeated n-grams, line/paragraph rules the characters of the repeated lines/paragraphs.
- **Code:** the stdlib files that fail are auto-generated (their first lines say so: `token.py`,
  `keyword.py`, `pydoc_data/topics.py`, ...), a test whose body is integer literals, or a test
  with an 1,181-character line.
- **Speed (issue 18).** Same command, same machine (2 shared cores, load average 4-6): at commit
  9d36e9d, `all` ran at 1,305 documents per CPU-second (annotate mode; the script timed no
  other); now 2,069 in annotate mode and 2,226 in filter mode. An A/B in one process, rounds
  alternating the two versions over the 16,303 documents (filter mode): 1,437 -> 2,291 (prose
  1.3-1.5x, code 2.2x), every signal identical (and `tests/test_heuristics_identical.py`).
  What bought it: the rule thresholds read once per params object; the word pass without its
  letterless-token regex (`str.isalpha` first, a letter search only on the other tokens);
  `str.strip` given only the punctuation the text holds; sentence ends as two regexes the
  engine can skip through; per-line flags as C-level map chains; the n-gram words hashed in
  the numba kernel from one UTF-32 buffer; the code rules' alphanumeric count on bytes (a
  regex substitution took ~2 ms per non-ASCII file) and the base64-run split only when a
  64-byte run exists.
- **Speed, compiled passes (2026-12-05, 2 cores Intel Xeon).** Filter mode, all 16,303
  documents (the corpus of the issue's 1,932): 6,259 documents per CPU-second at commit 4f67fbd
  (run alternately with the first compiled pass on the same machine), now 9,879-10,889 over
  six runs (prose ~8,600, code ~17,000); annotate 5,768 -> ~9,500-9,900. Every signal identical (the
  golden file, and tests comparing each compiled pass with its Python definition). What bought
  it, in order: the word pass (split on whitespace, strip punctuation, letter and digit classes)
  in one numba loop over the code points with a flag table built from Python's own predicates
  (`classifiers/heuristics/compiled_kernels.py`; text with an unspaced script keeps the Python pass);
  the same loop counting each line's words and the sentence ends (the two sentence-end regexes
  emulated exactly); its joined words handed to the n-gram kernel, which groups equal n-grams
  in a hash table instead of sorting them per size; code files' literal-data count in one loop
  over the bytes instead of three regexes, and their lines measured in one more instead of
  splitting the file; per-language constants cached.
- **Speed, the rest compiled (2026-12-05 evening, same machine).** Filter mode 9,984 -> 12,650
  documents per CPU-second (prose 8,846 -> 12,651, code 17,019 -> 18,584), annotate 9,875 ->
  12,358; on the full corpus's first 25,052 documents (per document, one core): text in an
  unspaced script 405 -> 132 us, other non-ASCII prose 129 -> 106 us, ASCII prose 121 -> 102 us.
  What bought it: text in an unspaced script (Chinese, Japanese, Thai, ...) takes a compiled
  pass too (`_TOKEN_RE`'s tokens and their counts, each script's characters, each line's tokens,
  unspaced characters and length, the sentence ends), where it took a regex per line; the
  stop-word count reads the pass's words as joined code points through the language's list as
  an open-addressing table of FNV-1a hashes (exact: equal hashes are compared code point by code
  point), and the n-gram rules take their word limit and character shares from the same buffer,
  so no list of strings is made; repeated lines and paragraphs counted with one set and C sums;
  the threshold test inline in the rule loop. Every signal identical (the golden file, and tests
  comparing each pass with its Python definition on every case text). What is left on prose
  (~100 us per web document): the rule loop and the lazy properties (~25 rules, ~20 facts), the
  line rules' Python (bullets, ellipses, terminal punctuation, duplicates), the two kernels.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small samples, one timing run")
    ap.add_argument("--repeats", type=int, default=None, help="timing runs (best is kept)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    params = HeuristicsParams()

    t0 = time.perf_counter()
    if not data.DEV_SET.exists():
        raise SystemExit(f"{data.DEV_SET} not found (set CURATE_DATA_DIR)")
    dev = data.dev_sentences_by_language()
    prose = eval_prose(dev, params, per_lang_limit=20 if args.quick else None)
    print(f"prose done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    files = stdlib_files(limit=200 if args.quick else None)
    first, anyfail, dropped = eval_stdlib(files, params)
    print(f"stdlib done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    docs = read_bench_corpus(limit=2000 if args.quick else None)
    bench = eval_bench(docs, params, args.repeats)
    print(f"bench done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)

    report = render(prose, (first, anyfail, dropped, len(files)), bench, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
