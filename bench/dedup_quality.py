"""Near-duplicate detection quality of the MinHash LSH configuration (classifiers.minhash).

    python -m bench.dedup_quality [--quick]

Builds an evaluation from real documents and controlled edits of them:

* originals: paragraphs of the language-ID dev set (8-15 consecutive sentences of one language;
  zh/ja/ko/th shingled by characters), Python's pydoc topics (`pydoc_data.topics`) and
  standard-library source files (real code);
* variants of every original: word (character, for zh/ja/ko/th) substitution, deletion and
  insertion at 1-30% of the units, a sentence (code: paragraph) shuffle, web boilerplate added
  at both ends, crops to 50-80%;
* distractors: every other dev-set paragraph, stdlib file and pydoc topic, plus the benchmark
  corpus's GNOME / LibreOffice help pages and Go sources (not its lingua/Python documents, which
  overlap the above), exact duplicates removed: more than 10,000 unrelated real documents.

All documents go through signatures -> band keys -> buckets -> `bucket_edges` ->
`connected_components`, as in the pipeline. Reported:

* recall per edit type and rate: "pair" = the variant shares a band with its original (what the
  LSH S-curve predicts), "cluster" = it ends in its original's cluster (what dedup does);
* recall per bin of TRUE Jaccard similarity of the variant's and the original's shingle sets,
  next to the S-curve 1-(1-s^r)^b averaged over the bin's variants;
* false merges: candidate pairs (sharing a band) between documents of different families, with
  their true Jaccard; a pair of unrelated documents (true Jaccard < 0.3) is a false merge.
  Real corpora also hold partial duplicates (0.3-0.75: generated files from one template, help
  pages from one skeleton), which LSH links at the S-curve's rate; they are counted apart.
  Acceptance: no false merge, and pair recall >= 0.95 for variants of true Jaccard >= 0.8.
* the benchmark corpus's own near-duplicates (1-3% word edits, made by another script): pair
  recall.

Writes its section of bench/results/minhash.md and prints it.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import sysconfig
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data import BENCH_CORPUS, DEV_SET, iter_bench_corpus, iter_dev_sentences
from classifiers.minhash import (
    MinHasher,
    MinHashParams,
    candidate_edges,
    connected_components,
    s_curve,
    shingles,
)

RESULTS = Path(__file__).parent / "results" / "minhash.md"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
RATES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.30)
CROPS = (0.5, 0.6, 0.7, 0.8)
# Two documents sharing under 30% of their shingles are unrelated: a candidate pair below that is
# a false merge. Pairs at 0.3-0.5 exist in real corpora (generated code from one template, help
# pages from one skeleton); LSH links them with the S-curve's probability (0.1-5% at 14 x 8).
UNRELATED_BELOW = 0.3
ACCEPT_JACCARD, ACCEPT_RECALL = 0.8, 0.95
HEADER = (
    "Skip to main content | Home | News | About us | Contact | Search this site | "
    "Sign in or create an account to continue |"
)
FOOTER = (
    "| Copyright 2024 All rights reserved. | Privacy policy | Terms of use | "
    "Cookie settings | Follow us on Facebook, Twitter and Instagram | "
    "Subscribe to our newsletter"
)


@dataclass
class Doc:
    text: str
    kind: str  # prose | code
    lang: str
    family: int  # originals and their variants share one; every distractor has its own
    edit: str = "original"  # original | distractor | <edit type>
    rate: float = 0.0
    parts: list[str] = field(default_factory=list)  # sentences (prose) for shuffles


# ------------------------------------------------------------------------------------------------
# Real documents


def dev_paragraphs(rng: random.Random) -> list[tuple[str, list[str]]]:
    """(language, sentences): consecutive dev-set sentences of one language, 8-15 each, every
    sentence used once."""
    by_lang: dict[str, list[str]] = defaultdict(list)
    for lang, sentence in iter_dev_sentences(DEV_SET):
        by_lang[lang].append(sentence)
    out = []
    for lang, sents in by_lang.items():
        i = 0
        while i + 8 <= len(sents):
            k = rng.randint(8, 15)
            out.append((lang, sents[i : i + k]))
            i += k
    return out


def stdlib_files(max_chars: int = 200_000) -> list[tuple[str, str]]:
    """(relative path, source) of the standard library's .py files (site-packages excluded)."""
    out = []
    for path in sorted(STDLIB.rglob("*.py")):
        rel = path.relative_to(STDLIB).as_posix()
        if rel.startswith("site-packages/"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip() and len(text) <= max_chars:
            out.append((rel, text))
    return out


def pydoc_topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return sorted(topics.items())


def bench_corpus_extras() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """From the benchmark corpus: (id, kind, text) of its help pages and Go sources, and
    (language, original text, near-duplicate text) of its near-duplicates. Empty if absent."""
    if not (BENCH_CORPUS / "manifest.tsv.zst").exists():
        return [], []
    texts: dict[str, str] = {}
    extras, dups = [], []
    for rec in iter_bench_corpus(BENCH_CORPUS):
        texts[rec["id"]] = rec["text"]
        if rec.get("source") in ("lohelp", "gnome_help_C") and rec.get("category") == "b_english":
            extras.append((rec["id"], "prose", rec["text"]))
        elif rec.get("source") == "go":
            extras.append((rec["id"], "code", rec["text"]))
        elif rec.get("category") == "d_near_dup":
            dups.append((rec.get("dup_of", ""), rec["text"], rec.get("lang", "")))
    pairs = [(lang, texts[o], t) for o, t, lang in dups if o in texts]
    return extras, pairs


# ------------------------------------------------------------------------------------------------
# Controlled edits. Units are whitespace-separated words, or characters for char-level docs.


def _units(doc: Doc, char_level: bool) -> tuple[list[str], str]:
    return (list(doc.text), "") if char_level else (doc.text.split(), " ")


def edit_units(units: list[str], op: str, rate: float, vocab: list[str], rng: random.Random) -> list[str]:
    units = list(units)
    k = max(1, round(rate * len(units)))
    if op == "substitute":
        for i in rng.sample(range(len(units)), min(k, len(units))):
            units[i] = rng.choice(vocab)
    elif op == "delete":
        drop = set(rng.sample(range(len(units)), min(k, len(units) - 1)))
        units = [u for i, u in enumerate(units) if i not in drop]
    elif op == "insert":
        for _ in range(k):
            units.insert(rng.randrange(len(units) + 1), rng.choice(vocab))
    else:
        raise ValueError(op)
    return units


def shuffle_parts(doc: Doc, rng: random.Random) -> str:
    if doc.parts:
        parts, sep = list(doc.parts), " "
    else:  # code and help pages: blank-line separated blocks, else lines
        parts, sep = re.split(r"\n\s*\n", doc.text), "\n\n"
        if len(parts) < 3:
            parts, sep = doc.text.split("\n"), "\n"
    order = list(range(len(parts)))
    while len(order) > 1 and order == sorted(order):
        rng.shuffle(order)
    return sep.join(parts[i] for i in order)


def variants(doc: Doc, char_level: bool, vocab: list[str], rng: random.Random) -> list[Doc]:
    units, sep = _units(doc, char_level)
    out = []

    def add(text: str, edit: str, rate: float = 0.0):
        out.append(Doc(text, doc.kind, doc.lang, doc.family, edit, rate))

    for op in ("substitute", "delete", "insert"):
        for rate in RATES:
            add(sep.join(edit_units(units, op, rate, vocab, rng)), op, rate)
    add(shuffle_parts(doc, rng), "shuffle")
    add(f"{HEADER}\n{doc.text}\n{FOOTER}", "boilerplate")
    for keep in CROPS:
        n = max(1, round(keep * len(units)))
        start = rng.randrange(len(units) - n + 1)
        add(sep.join(units[start : start + n]), "crop", keep)
    return out


# ------------------------------------------------------------------------------------------------


def build(quick: bool, params: MinHashParams, seed: int = 7) -> tuple[list[Doc], list]:
    rng = random.Random(seed)
    char_langs = set(params.char_languages)
    paragraphs = dev_paragraphs(rng)
    rng.shuffle(paragraphs)
    code = stdlib_files()
    rng.shuffle(code)
    topics = pydoc_topics()
    rng.shuffle(topics)
    extras, corpus_dups = bench_corpus_extras()

    n_prose, n_code, n_topics = (150, 40, 10) if quick else (700, 200, 40)
    originals: list[Doc] = []
    distractors: list[Doc] = []
    for i, (lang, sents) in enumerate(paragraphs):
        sep = "" if lang in ("zh", "ja") else " "
        d = Doc(sep.join(sents), "prose", lang, 0, parts=list(sents))
        (originals if i < n_prose else distractors).append(d)
    eligible = 0
    for _rel, text in code:
        d = Doc(text, "code", "code", 0)
        if eligible < n_code and 200 <= len(text) <= 20_000:
            eligible += 1
            originals.append(d)
        else:
            distractors.append(d)
    for i, (_, text) in enumerate(topics):
        (originals if i < n_topics else distractors).append(Doc(text, "prose", "en", 0))
    for _, kind, text in extras:
        distractors.append(Doc(text, kind, "code" if kind == "code" else "en", 0))

    # exact duplicates (same shingle set: same signature) are not "unrelated"
    pool = originals + distractors
    mh = MinHasher(params)
    sigs = mh.signatures([d.text for d in pool], mh.char_level_for(d.lang for d in pool))
    seen: set[bytes] = set()
    unique = []
    for d, sig in zip(pool, sigs):
        if sig.tobytes() not in seen:
            seen.add(sig.tobytes())
            unique.append(d)
    is_original = {id(d) for d in originals}
    originals = [d for d in unique if id(d) in is_original]
    distractors = [d for d in unique if id(d) not in is_original]

    vocab: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for d in originals + distractors[:20000]:
        cl = d.lang in char_langs
        units = list(d.text) if cl else d.text.split()
        vocab[(d.lang, cl)].extend(units[:400])
    docs: list[Doc] = []
    for fam, d in enumerate(originals):
        d.family = fam
        docs.append(d)
        cl = d.lang in char_langs
        docs.extend(variants(d, cl, vocab[(d.lang, cl)], rng))
    for j, d in enumerate(distractors):
        d.family, d.edit = len(originals) + j, "distractor"
        docs.append(d)
    return docs, corpus_dups


def _buckets(keys: np.ndarray) -> list[np.ndarray]:
    """Row indices of every bucket (same key in the same band) with 2+ members."""
    out = []
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        col = keys[order, band]
        cuts = np.flatnonzero(col[1:] != col[:-1]) + 1
        out.extend(g for g in np.split(order, cuts) if len(g) > 1)
    return out


def evaluate(quick: bool) -> str:
    params = MinHashParams()
    mh = MinHasher(params)
    b, r = mh.bands, mh.rows
    t0 = time.perf_counter()
    docs, corpus_dups = build(quick, params)
    n = len(docs)
    char_level = mh.char_level_for(d.lang for d in docs)
    t1 = time.perf_counter()
    sigs = mh.signatures([d.text for d in docs], char_level)
    keys = mh.band_keys(sigs)
    t2 = time.perf_counter()

    shingle_sets: dict[int, set] = {}

    def sset(i: int) -> set:
        if i not in shingle_sets:
            cl = char_level[i]
            shingle_sets[i] = set(
                shingles(docs[i].text, params.char_ngram if cl else params.ngram, cl, params.max_chars)
            )
        return shingle_sets[i]

    def true_j(i: int, j: int) -> float:
        a, c = sset(i), sset(j)
        return len(a & c) / len(a | c)

    # edges as the pipeline makes them (ids: row numbers), then the reference clustering
    roots = connected_components(candidate_edges(range(n), keys, params.max_bucket_size))
    buckets = _buckets(keys)

    original_of = {}
    for i, d in enumerate(docs):
        if d.edit == "original":
            original_of[d.family] = i
    rows = []  # (edit, rate, kind, J, pair hit, cluster hit)
    for i, d in enumerate(docs):
        if d.edit in ("original", "distractor"):
            continue
        o = original_of[d.family]
        pair = bool(np.any(keys[i] == keys[o]))
        cluster = roots.get(i, i) == roots.get(o, o)
        rows.append((d.edit, d.rate, d.kind, true_j(i, o), pair, cluster))

    # cross-family candidate pairs
    cross: set[tuple[int, int]] = set()
    for g in buckets:
        fams = {docs[i].family for i in g}
        if len(fams) > 1:
            members = sorted(g.tolist())
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    u, v = members[x], members[y]
                    if docs[u].family != docs[v].family:
                        cross.add((u, v))
    cross_j = sorted(((true_j(u, v), u, v) for u, v in cross), reverse=True)
    mixed = defaultdict(set)
    for node, root in roots.items():
        mixed[root].add(docs[node].family)
    n_eval_families = len(original_of)
    mixed_clusters = [f for f in mixed.values() if len(f) > 1]
    mixed_eval = [f for f in mixed_clusters if min(f) < n_eval_families]

    # the benchmark corpus's own near-duplicates: pair recall only
    dup_rows = []
    if corpus_dups:
        flat = [t for _, o, v in corpus_dups for t in (o, v)]
        cls = mh.char_level_for(lang for lang, _, _ in corpus_dups)
        ks = mh.band_keys(mh.signatures(flat, [c for c in cls for _ in (0, 1)]))
        for k, ((_, o, v), cl) in enumerate(zip(corpus_dups, cls)):
            n_ = params.char_ngram if cl else params.ngram
            so, sv = set(shingles(o, n_, cl)), set(shingles(v, n_, cl))
            dup_rows.append((cl, len(so & sv) / len(so | sv), bool(np.any(ks[2 * k] == ks[2 * k + 1]))))
    t3 = time.perf_counter()

    # ---------------------------------------------------------------- report
    n_orig = sum(d.edit == "original" for d in docs)
    n_dis = sum(d.edit == "distractor" for d in docs)
    n_var = len(rows)
    kinds = defaultdict(int)
    for d in docs:
        if d.edit in ("original", "distractor"):
            kinds[("char " if d.lang in params.char_languages else "") + d.kind] += 1
    out = [
        f"## Dedup quality ({'quick' if quick else 'full'} run)",
        "",
        f"`python -m bench.dedup_quality{' --quick' if quick else ''}`: "
        f"MinHashParams defaults: threshold {params.threshold}, {params.num_perm} permutations, "
        f"**{b} bands x {r} rows** (S-curve 50% point at "
        f"J = {(1 - 0.5 ** (1 / b)) ** (1 / r):.3f}), word {params.ngram}-grams, "
        f"char {params.char_ngram}-grams for {', '.join(params.char_languages)}, "
        f"max_bucket_size {params.max_bucket_size}.",
        "",
        f"{n:,} documents: {n_orig:,} originals, {n_var:,} edited variants, "
        f"{n_dis:,} distractors (unrelated real documents; by kind, originals + distractors: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
        + "). "
        f"Signatures + band keys {t2 - t1:.1f} s, building {t1 - t0:.1f} s, "
        f"rest (exact Jaccard in Python) {t3 - t2:.1f} s.",
        "",
    ]

    def recall_line(sel, label):
        if not sel:
            return None
        js = np.array([x[3] for x in sel])
        return (
            f"| {label} | {len(sel)} | {js.mean():.3f} | {np.mean([x[4] for x in sel]):.3f} | "
            f"{s_curve(js, b, r).mean():.3f} | {np.mean([x[5] for x in sel]):.3f} |"
        )

    out += [
        "### Recall per edit",
        "",
        "pair: shares a band with its original; expected: the S-curve at each variant's true "
        "Jaccard, averaged; cluster: same connected component as its original.",
        "",
        "| edit | variants | mean true J | pair recall | expected (S-curve) | cluster recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op in ("substitute", "delete", "insert"):
        for rate in RATES:
            out.append(recall_line([x for x in rows if x[0] == op and x[1] == rate], f"{op} {rate:.0%}"))
    out.append(recall_line([x for x in rows if x[0] == "shuffle"], "sentence shuffle"))
    out.append(recall_line([x for x in rows if x[0] == "boilerplate"], "boilerplate at both ends"))
    for keep in CROPS:
        out.append(recall_line([x for x in rows if x[0] == "crop" and x[1] == keep], f"crop to {keep:.0%}"))
    for kind in ("prose", "code"):
        out.append(recall_line([x for x in rows if x[2] == kind], f"all {kind} variants"))
    out += [
        "",
        "### Recall by true Jaccard",
        "",
        "| true Jaccard | variants | mean true J | pair recall | expected (S-curve) | cluster recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    edges_j = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    for lo, hi in zip(edges_j[:-1], edges_j[1:]):
        sel = [x for x in rows if lo <= x[3] < hi or (hi == 1.0 and x[3] == 1.0)]
        line = recall_line(sel, f"[{lo:.2f}, {hi:.2f}{']' if hi == 1.0 else ')'}")
        if line:
            out.append(line)
    acc = [x for x in rows if x[3] >= ACCEPT_JACCARD]
    acc_recall = float(np.mean([x[4] for x in acc])) if acc else float("nan")
    acc_cluster = float(np.mean([x[5] for x in acc])) if acc else float("nan")
    out.append(recall_line(acc, f"**>= {ACCEPT_JACCARD}**"))

    bins = [0.0, 0.1, 0.2, UNRELATED_BELOW, 0.4, 0.5, 0.75, 1.01]
    hist = np.histogram([j for j, _, _ in cross_j], bins=bins)[0]
    false_merges = [x for x in cross_j if x[0] < UNRELATED_BELOW]
    out += [
        "",
        "### False merges between different documents",
        "",
        f"Candidate pairs (sharing at least one band) between documents of different families "
        f"(an original with its variants is one family; each distractor is its own): "
        f"{len(cross_j):,}. By their true Jaccard:",
        "",
        "| true Jaccard | "
        + " | ".join(f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}" for lo, hi in zip(bins[:-1], bins[1:]))
        + " |",
        "| --- " * (len(bins)) + "|",
        "| pairs | " + " | ".join(str(h) for h in hist) + " |",
        "",
        f"False merges (true Jaccard < {UNRELATED_BELOW}, i.e. documents sharing less than "
        f"{UNRELATED_BELOW:.0%} of their shingles): **{len(false_merges)}**. Pairs at or above "
        f"it are partial or near-duplicates inside the source material (Go's per-platform "
        f"generated files, Python's generated codecs, help pages from one skeleton): "
        f"{len(cross_j) - len(false_merges):,} pairs among "
        f"{len({w for _, u, v in cross_j for w in (u, v)}):,} documents, linked at the "
        f"rate the S-curve gives for their similarity. Clusters spanning several families: "
        f"{len(mixed_clusters)} (largest {max(map(len, mixed_clusters), default=0)} families); "
        f"{len(mixed_eval)} of them contain one of the {n_eval_families} evaluation families.",
    ]
    if cross_j:
        out += ["", "Most and least similar cross-family candidate pairs (true J, kinds, openings):", ""]
        for j, u, v in cross_j[:3] + cross_j[-5:]:
            out.append(
                f"- {j:.3f}: {docs[u].edit} {docs[u].kind}/{docs[u].lang} "
                f"`{docs[u].text[:60]!r}` ~ {docs[v].edit} {docs[v].kind}/{docs[v].lang} "
                f"`{docs[v].text[:60]!r}`"
            )
    if dup_rows:
        js = np.array([x[1] for x in dup_rows])
        hits = np.array([x[2] for x in dup_rows])
        out += [
            "",
            "### The benchmark corpus's near-duplicates",
            "",
            f"{len(dup_rows):,} pairs (1-3% word edits, made by the corpus builder): "
            f"mean true J {js.mean():.3f}, pair recall "
            f"**{hits.mean():.3f}** (S-curve expects {s_curve(js, b, r).mean():.3f}); "
            f"pairs with J >= {ACCEPT_JACCARD}: {int((js >= ACCEPT_JACCARD).sum())}, recall "
            f"{hits[js >= ACCEPT_JACCARD].mean():.3f}.",
        ]
    ok_recall = acc_recall >= ACCEPT_RECALL
    ok_fm = not false_merges and n_dis >= (0 if quick else 10_000)
    out += [
        "",
        "### Acceptance",
        "",
        f"- pair recall for true Jaccard >= {ACCEPT_JACCARD}: {acc_recall:.3f} "
        f"(cluster {acc_cluster:.3f}), needs >= {ACCEPT_RECALL}: "
        f"**{'PASS' if ok_recall else 'FAIL'}**",
        f"- false merges among {n_dis:,} distractors + {n_orig + n_var:,} originals/variants: "
        f"{len(false_merges)}, needs 0{'' if quick else ' with >= 10,000 distractors'}: "
        f"**{'PASS' if ok_fm else 'FAIL'}**",
        "",
    ]
    return "\n".join(x for x in out if x is not None)


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section `name` of the results file, keeping the others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else (
            "# MinHash near-dedup (classifiers/minhash.py)\n\n"
            "Sections written by `python -m bench.minhash_bench` (signature throughput) and "
            "`python -m bench.dedup_quality [--quick]` (detection quality); each run rewrites its "
            "own section.\n"
        )
    )
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer originals (about a minute)")
    args = ap.parse_args(argv)
    report = evaluate(args.quick)
    print(report)
    write_section("dedup_quality_quick" if args.quick else "dedup_quality", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
