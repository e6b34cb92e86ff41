"""Language ID on the real dev set: raw lid.176 top-1 vs `LanguageIdentifier`, and throughput.

    python -m bench.langid_eval [--quick]

1. Accuracy per configured language and macro-averaged over them, on single sentences and on
   5-sentence paragraphs (consecutive sentences of one language, joined by a space): the raw
   model's top-1 (labels normalised, `no` -> `nb`), then each step of ours added in turn.
   Also how much of the dev set's *unconfigured* languages lands in a configured language
   (raw top-1; ours; ours after the minimum scores).
2. The most frequent confusions (true -> predicted) of raw and ours.
3. Minimum scores: per configured language, the score percentiles of correct paragraphs and
   the share of correct sentences/paragraphs that pass the configured minimum.
4. Sampling of long documents (>= 500 words built from the dev set, line breaks every 4
   sentences): accuracy and speed per `max_chars` / `sample_windows`.
5. Throughput on 500-word documents, one process: documents per CPU-second (= per core, robust
   to the other jobs on the shared machine) and wall-clock docs/s, best of several runs: raw
   fastText on the whole folded text and on its first 1000 characters vs `predict()`.

--quick uses the first 200 sentences per language and fewer timing runs.
Writes bench/results/langid.md and prints it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.data import dev_sentences_by_language, iter_bench_corpus, long_documents, paragraphs
from classifiers.langid import LangIdParams, LanguageIdentifier, decide

RESULTS = Path(__file__).resolve().parent / "results" / "langid.md"
BATCH = 256  # the pipeline's default batch size


def timed(fn, texts: list[str], runs: int) -> tuple[list, float, float]:
    """(result, best CPU seconds, best wall seconds) of predict_batched over `runs` runs. CPU
    time of this (single-threaded) process is what one core spends, whatever else the shared
    machine runs; wall time is reported beside it."""
    best_cpu = best_wall = float("inf")
    res: list = []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        res = predict_batched(fn, texts)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return res, best_cpu, best_wall


def predict_batched(fn, texts: list[str]) -> list:
    out = []
    for i in range(0, len(texts), BATCH):
        out.extend(fn(texts[i:i + BATCH]))
    return out


def per_language_accuracy(items: list[tuple[str, str]], preds: list[str]) -> dict[str, float]:
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (lang, _), p in zip(items, preds):
        h = hits[lang]
        h[0] += p == lang
        h[1] += 1
    return {lang: h / n for lang, (h, n) in hits.items()}


def macro(acc: dict[str, float], languages: list[str]) -> float:
    present = [acc[lang] for lang in languages if lang in acc]
    return sum(present) / len(present)


def leak_rate(items, preds, configured) -> float:
    """Share of sentences of unconfigured languages predicted as a configured language."""
    pairs = [(lang, p) for (lang, _), p in zip(items, preds) if lang not in configured]
    return sum(p in configured for _, p in pairs) / max(1, len(pairs))


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Variant:
    """One way of predicting: the raw model (optionally on lower-cased text) or ours."""

    def __init__(self, name: str, ident: LanguageIdentifier, raw: bool = False, lower: bool = False):
        self.name, self.ident, self.raw, self.lower = name, ident, raw, lower

    def __call__(self, texts: list[str]) -> list[tuple[str, float]]:
        if self.raw:
            texts = [t.lower() for t in texts] if self.lower else texts
            return [r[0] for r in predict_batched(lambda b: self.ident.predict_raw(b, k=1), texts)]
        return predict_batched(self.ident.predict, texts)


def accuracy_section(name: str, items, variants, configured: list[str], params: LangIdParams, out: list[str]):
    texts = [t for _, t in items]
    results = {v.name: v(texts) for v in variants}
    labels = {n: [lang for lang, _ in r] for n, r in results.items()}
    buckets = {n: [decide(lang, score, params)[0] for lang, score in r] for n, r in results.items()}
    accs = {n: per_language_accuracy(items, labels[n]) for n in labels}
    bucket_accs = {n: per_language_accuracy(items, buckets[n]) for n in labels}
    ours = variants[-1].name
    raw = variants[0].name
    conf_set = set(configured)

    out.append(f"\n## {name}: {len(items)} texts, {len(configured)} configured languages\n")
    out.append("Language = the predicted language is the true one; bucket = the document also "
               "passes its language's minimum score (decide()). Leak = share of the texts in the "
               "dev set's other (unconfigured) languages that get a configured language / bucket.\n")
    rows = [[n, macro(accs[n], configured), min(accs[n][lang] for lang in configured),
             macro(bucket_accs[n], configured), leak_rate(items, labels[n], conf_set),
             leak_rate(items, buckets[n], conf_set)] for n in labels]
    out.append(table(["method", "macro accuracy (language)", "worst language", "macro accuracy (bucket)",
                      "leak (language)", "leak (bucket)"], rows))
    no_ms = [lang for lang in configured if lang != "ms"]
    if len(no_ms) < len(configured):
        out.append(f"\nWithout ms (see the ms/id section): raw {macro(accs[raw], no_ms):.3f}, "
                   f"ours {macro(accs[ours], no_ms):.3f} (language); raw {macro(bucket_accs[raw], no_ms):.3f}, "
                   f"ours {macro(bucket_accs[ours], no_ms):.3f} (bucket).")
    out.append("\nPer language (sorted by ours): raw top-1 vs ours, language and bucket:\n")
    order = sorted(configured, key=lambda lang: (accs[ours][lang], lang))
    out.append(table(["lang", "raw", "ours", "raw, bucket", "ours, bucket"],
                     [[lang, accs[raw][lang], accs[ours][lang], bucket_accs[raw][lang],
                       bucket_accs[ours][lang]] for lang in order]))
    for n in (raw, ours):
        conf = Counter((lang, p) for (lang, _), p in zip(items, labels[n]) if lang != p and lang in conf_set)
        out.append(f"\nMost frequent confusions of configured languages, {n} (true -> predicted):\n")
        out.append(", ".join(f"{a}->{b} {c}" for (a, b), c in conf.most_common(15)))
    leaks = Counter((lang, b) for (lang, _), b in zip(items, buckets[ours])
                    if lang not in conf_set and b in conf_set)
    out.append(f"\nUnconfigured languages kept in a configured bucket, ours (true -> bucket):\n")
    out.append(", ".join(f"{a}->{b} {c}" for (a, b), c in leaks.most_common(10)) or "none")
    return results


# Spellings that differ between standard Malaysian (Dewan Bahasa dan Pustaka) and standard
# Indonesian (KBBI): a sentence using one side's form is very likely in that language.
MALAYSIAN = set("kerana sahaja boleh wang kerajaan iaitu pejabat kereta polis universiti kualiti "
                "syarikat".split())
INDONESIAN = set("karena saja bisa uang pemerintah yaitu kantor mobil polisi universitas kualitas "
                 "perusahaan".split())


def ms_id_section(by_all, results_by_text, out):
    out.append("\n## Why ms stays low: the dev set's `ms` is mostly Indonesian\n")
    out.append("Sentences using a spelling specific to standard Malaysian "
               f"({' '.join(sorted(MALAYSIAN))}) or to standard Indonesian "
               f"({' '.join(sorted(INDONESIAN))}), and what ours predicts for them:\n")
    rows = []
    for lang in ("ms", "id"):
        for name, words in (("Malaysian-only", MALAYSIAN), ("Indonesian-only", INDONESIAN)):
            other = INDONESIAN if words is MALAYSIAN else MALAYSIAN
            hits = [s for s in by_all.get(lang, [])
                    if (w := set(s.lower().split())) & words and not w & other]
            preds = Counter(results_by_text[s][0] for s in hits)
            rows.append([lang, name, len(hits), preds.get("ms", 0), preds.get("id", 0)])
    out.append(table(["dev-set label", "sentences with", "count", "predicted ms", "predicted id"], rows))


def threshold_section(par_items, par_results, sent_items, sent_results, configured, params, out):
    out.append("\n## Minimum scores\n")
    out.append("Scores of correct predictions (ours) per configured language: percentiles on "
               "paragraphs, and the share of correct sentences / paragraphs at or above the "
               "configured minimum.\n")
    rows = []
    for lang in configured:
        ps = sorted(s for (t, _), (p, s) in zip(par_items, par_results) if t == lang and p == lang)
        ss = [s for (t, _), (p, s) in zip(sent_items, sent_results) if t == lang and p == lang]
        m = params.min_score(lang)
        if not ps:
            continue
        q = statistics.quantiles(ps, n=100, method="inclusive") if len(ps) > 1 else ps * 99
        rows.append([lang, m, q[1], q[4], q[49], sum(s >= m for s in ss) / max(1, len(ss)),
                     sum(s >= m for s in ps) / len(ps)])
    out.append(table(["lang", "min score", "p2 (para)", "p5 (para)", "median (para)",
                      "sentences >= min", "paragraphs >= min"], rows))


SAMPLINGS = [(250, 1), (500, 1), (1000, 1), (1000, 3), (2000, 1), (2000, 3)]


def sampling_section(by_lang, configured, out, quick: bool):
    docs = long_documents(by_lang, min_words=500)
    docs = [(lang, d) for lang, d in docs if lang in configured]
    texts = [d for _, d in docs]
    chars = [len(d) for d in texts]
    real = [r["text"] for r in iter_bench_corpus() if r.get("category") in ("a_multilingual", "b_english")
            and len(r["text"]) > 2000]
    if quick:
        real = real[:500]
    whole = LanguageIdentifier(LangIdParams(max_chars=10_000_000))
    real_whole = [lang for lang, _ in predict_batched(whole.predict, real)]
    out.append(f"\n## Sampling long documents\n\n(a) {len(docs)} documents of >= 500 words "
               f"(median {int(statistics.median(chars))} characters) from the configured "
               "languages' dev-set sentences, a line break every 4 sentences: accuracy, and "
               "documents per CPU-second (one core, best of runs). (b) The "
               f"{len(real)} text documents of the benchmark corpus longer than 2,000 characters "
               "(dev-set sentence documents, GNOME/LibreOffice help pages): agreement with the "
               "prediction on the whole document.\n")
    rows = []
    for max_chars, windows in SAMPLINGS + [(10_000_000, 1)]:
        ident = LanguageIdentifier(LangIdParams(max_chars=max_chars, sample_windows=windows))
        res, cpu, _ = timed(ident.predict, texts, 1 if quick else 3)
        acc = per_language_accuracy(docs, [lang for lang, _ in res])
        agree = [lang for lang, _ in predict_batched(ident.predict, real)]
        rows.append([("whole document" if max_chars >= 10_000_000 else max_chars), windows,
                     macro(acc, configured), min(acc.values()), f"{len(texts) / cpu:,.0f}",
                     sum(a == b for a, b in zip(agree, real_whole)) / max(1, len(real))])
    out.append(table(["max_chars", "windows", "(a) macro accuracy", "(a) worst language", "(a) docs/s",
                      "(b) agreement with whole document"], rows))


def throughput_section(by_all, ident_default: LanguageIdentifier, out, quick: bool):
    docs = [d for _, d in long_documents(by_all, min_words=500)]
    words = statistics.mean(len(d.split()) for d in docs)
    chars = statistics.mean(len(d) for d in docs)
    runs = 2 if quick else 3
    model = ident_default.model

    def raw_fasttext(batch):
        return model.predict([t.replace("\n", " ") for t in batch], k=1)

    def raw_fasttext_1000(batch):
        return model.predict([t[:1000].replace("\n", " ") for t in batch], k=1)

    rows = []
    for name, fn in [("fastText predict, whole folded text, k=1", raw_fasttext),
                     ("fastText predict, first 1000 chars, k=1", raw_fasttext_1000),
                     ("LanguageIdentifier.predict (defaults)", ident_default.predict)]:
        _, cpu, wall = timed(fn, docs, runs)
        rows.append([name, f"{len(docs) / cpu:,.0f}", f"{len(docs) / wall:,.0f}",
                     f"{len(docs) * chars / cpu / 1e6:.1f}"])
    out.append(f"\n## Throughput\n\n{len(docs)} documents of >= 500 words from all 75 dev-set "
               f"languages (mean {words:.0f} words, {chars:.0f} characters), batches of {BATCH}, "
               f"one process, best of {runs} runs. Per core = documents per CPU-second of the "
               "process (fastText predicts on one thread); wall-clock docs/s beside it is lower "
               "when other jobs share the 2 cores.\n")
    out.append(table(["what", "docs/s per core (CPU time)", "docs/s (wall)", "MB/s per core"], rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 sentences per language, fewer timing runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    params = LangIdParams()
    configured = list(params.languages)
    per_lang = 200 if args.quick else None
    by_all = dev_sentences_by_language(per_language=per_lang)
    missing = [lang for lang in configured if lang not in by_all]
    configured = [lang for lang in configured if lang in by_all]

    ours = LanguageIdentifier(params)
    bare = LanguageIdentifier(params.model_copy(update={"orthography_rules": False,
                                                        "prefer_configured_ratio": None}))
    ortho = LanguageIdentifier(params.model_copy(update={"prefer_configured_ratio": None}))
    prefer = LanguageIdentifier(params.model_copy(update={"prefer_configured_ratio": 0.5}))
    variants = [Variant("raw lid.176 top-1", ours, raw=True),
                Variant("raw top-1, lower-cased text", ours, raw=True, lower=True),
                Variant("+ merged top-k (no->nb, sh split over hr/sr), sampled", bare),
                Variant("+ orthography rules", ortho),
                Variant("+ prefer configured (ratio 0.5)", prefer),
                Variant("ours (defaults)", ours)]

    out = [f"# Language ID: {ours.model_path.name} on the dev set\n",
           f"Produced by `python -m bench.langid_eval{' --quick' if args.quick else ''}`. "
           f"Dev set: {sum(map(len, by_all.values()))} sentences, {len(by_all)} languages "
           f"(README: drawn from Leipzig web corpora, some label noise). Configured languages "
           f"(LangIdParams defaults): {' '.join(configured)}."]
    if missing:
        out.append(f"Configured but not in the dev set: {' '.join(missing)}.")

    sent_items = [(lang, s) for lang, sents in by_all.items() for s in sents]
    sent_results = accuracy_section("Single sentences", sent_items, variants, configured, params, out)
    par_items = paragraphs(by_all, 5)
    par_results = accuracy_section("5-sentence paragraphs", par_items, variants, configured, params, out)
    ms_id_section(by_all, {t: r for (_, t), r in zip(sent_items, sent_results[variants[-1].name])}, out)
    threshold_section(par_items, par_results[variants[-1].name], sent_items, sent_results[variants[-1].name],
                      configured, params, out)
    sampling_section({lang: s for lang, s in by_all.items() if lang in configured}, configured, out,
                     args.quick)
    throughput_section(by_all, ours, out, args.quick)
    out.append(f"\n(total {time.perf_counter() - t_start:.0f} s)\n")

    text = "\n".join(out) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
