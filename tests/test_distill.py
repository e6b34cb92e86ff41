"""Distillation: judge labels -> fastText quality classifier -> agreement report.

Training runs on REAL documents: the text every machine with Python has, as the demo
corpus uses it (pipeline/demo.py): the standard library's sources (bucket `code`) and
English prose from `pydoc_data.topics` and the library's docstrings (bucket `en`); nothing
outside the repository's environment is read. Their labels come from a simple
deterministic PROXY, not from a judge: 5 x the share of whitespace-separated words that
are purely alphabetic (prose scores high, code low). It stands in for the Llama judge's
0..5 score so the test needs no GPU; what is tested is the mechanics (labels in Parquet,
choice of one rubric/model group, hold-out split, training, reload, prediction,
agreement arithmetic, calibration, refusal of a classifier that learnt nothing), plus
that the classifier learns a learnable target.
"""

from __future__ import annotations

import functools
import json
import math
import random
import unicodedata
from pathlib import Path

import pytest

from classifiers.judge import (
    JUDGE_ERROR,
    OFF_FORMAT,
    QualityParams,
    QualityResult,
    label_records,
    labelled_keys,
    read_labels,
    text_hash,
    write_labels,
)
from classifiers.judge.labels import select_labels
from classifiers.quality import make_scorer
from classifiers.quality_fasttext import (
    REPORT_SUFFIX,
    DistillParams,
    FastTextQualityScorer,
    WeakClassifierError,
    _split_marks,
    agreement,
    agreement_by_bucket,
    calibrate,
    in_holdout,
    keep_threshold,
    normalize,
    normalized_lines,
    rank,
    score_class,
    spearman,
    train,
)
from pipeline.cli import main
from pipeline.demo import code_docs, prose_docs
from pipeline.stages.quality import QualityStage, decision
from tests.corpus import bench_docs, dev_sentences_by_language

# The judge keeps about half of each bucket at these (the proxy puts prose near 4, code
# near 2.4), so that calibration has something to do.
THRESHOLD = {"default": 2.5, "en": 4.0}
SMALL = DistillParams(
    holdout_fraction=0.25, epochs=15, learning_rate=0.5, dim=32, buckets=20_000,
    max_words=300, min_count=1,
)  # fmt: skip


def proxy_score(text: str) -> float:
    """PROXY label (not a judge): 5 x share of purely alphabetic words."""
    words = text.split()
    return 5.0 * sum(w.isalpha() for w in words) / len(words) if words else 0.0


@functools.lru_cache(maxsize=1)
def _corpus() -> tuple[dict, ...]:
    prose = [dict(d, bucket="en") for d in prose_docs(600)]
    code = [{"id": d["id"], "text": d["text"], "bucket": "code"} for d in code_docs(500)]
    docs, seen = [], set()  # interleaved, so that any prefix holds both buckets
    for i in range(max(len(prose), len(code))):
        for d in (x[i] for x in (prose, code) if i < len(x)):
            if len(d["text"].split()) >= 20 and d["text"] not in seen:  # no empty or repeated files
                seen.add(d["text"])
                docs.append(d)
    return tuple(docs)


def corpus_docs(limit: int = 1400) -> list[dict]:
    """Real documents from Python's standard library (see the module docstring), with a bucket."""
    docs = list(_corpus())[:limit]
    assert len(docs) >= min(limit, 900), len(docs)  # the library holds enough of both
    return docs


def label_rows(docs, *, rubric="proxy@v1", model="proxy", score=proxy_score) -> list[dict]:
    return [
        dict(d, text_hash=text_hash(d["text"]), rubric=rubric, model=model, score=score(d["text"]),
             candidate_mass=1.0, probabilities={}, flag=None)
        for d in docs
    ]  # fmt: skip


# ------------------------------------------------------------------ statistics


def test_spearman_on_known_values():
    assert rank([10, 20, 20, 30]) == [1.0, 2.5, 2.5, 4.0]
    # y ranks with a tie: [1, 2, 3.5, 5, 3.5]; rho = 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3], [2, 2, 2]) is None  # undefined for a constant
    assert spearman([1], [1]) is None


def test_spearman_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    x = [rng.randint(0, 9) for _ in range(200)]  # many ties
    y = [v + rng.gauss(0, 3) for v in x]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_agreement_arithmetic_by_hand():
    judge = [4.0, 1.0, 3.0, 2.6, 0.5]
    clf = [3.5, 2.6, 2.0, 2.4, 0.0]
    a = agreement(judge, clf, [2.5] * 5)
    # keep: judge T F T T F, classifier T T F F F -> agree on docs 0 and 4
    assert a.n == 5 and a.accuracy_at_threshold == pytest.approx(2 / 5)
    assert a.judge_keep_rate == pytest.approx(3 / 5)
    assert a.classifier_keep_rate == pytest.approx(2 / 5)
    assert a.mean_abs_error == pytest.approx((0.5 + 1.6 + 1.0 + 0.2 + 0.5) / 5)
    assert a.spearman == pytest.approx(spearman(judge, clf))
    by_hand = {"default": 2.5, "code": 2.0}
    overall, per = agreement_by_bucket(judge, clf, ["en", "en", "code", "code", "fr"], by_hand)
    # code keeps at 2.0: doc 2 (3.0 vs 2.0) keep/keep, doc 3 (2.6 vs 2.4) keep/keep
    assert per["code"].accuracy_at_threshold == 1.0
    assert per["en"].accuracy_at_threshold == pytest.approx(0.5)
    assert overall.accuracy_at_threshold == pytest.approx(4 / 5)
    assert per["fr"].n == 1 and per["fr"].spearman is None


def test_score_classes_split_and_normalisation():
    assert [score_class(s) for s in (0.0, 0.49, 0.5, 2.5, 4.4, 4.6, 5.0)] == [0, 0, 1, 3, 4, 5, 5]
    digests = [text_hash(str(i)) for i in range(4000)]
    held = [d for d in digests if in_holdout(d, 0.2, seed=1)]
    assert 0.17 < len(held) / len(digests) < 0.23
    assert held == [d for d in digests if in_holdout(d, 0.2, seed=1)]  # deterministic
    assert held != [d for d in digests if in_holdout(d, 0.2, seed=2)]
    assert normalize("Hello,  World!\nNew ﬁle") == "hello , world ! new file"
    assert normalize("東京は晴れ。") == "東 京 は 晴 れ 。"
    assert normalize("नमस्ते दुनिया") == "नमस्ते दुनिया"  # combining marks stay in words
    assert normalize("a b c d", max_words=2) == "a b"
    long_words = ("x" * 50 + " ") * 3 + "end"  # longer than the first prefix it reads
    assert normalize(long_words, max_words=2) == "x" * 50 + " " + "x" * 50
    assert normalize("a\ud800b, c") == "a\ud800b , c"  # a lone surrogate (a JSON escape) goes through
    # str.isspace's white space (U+001C and U+0085 too) separates; marks side by side stay apart
    assert normalize("a\x1cb\x85c\u2028d\te  f") == "a b c d e f"
    assert normalize("a!!b (c)", max_words=5) == "a ! ! b (" and normalize("x y", max_words=2) == "x y"
    # lower-cased as str.lower does: a final sigma by its context, U+0130 to two code points,
    # U+023A's 2 bytes to U+2C65's 3, after NFKC (U+03F9 is a capital sigma then)
    assert normalize("ΟΔΟΣ ΣΑΣ Σ.") == "οδος σας σ ." and normalize("\u03f9Ο\u03f9") == "σος"
    assert normalize("İSTANBUL \u023a\u023a") == "i\u0307stanbul \u2c65\u2c65"


def test_normalize_is_the_one_table_lookup_per_character():
    """The vectorised spacing is str.translate with a " c " entry per punctuation, symbol and
    unspaced-script character, on real text in every language of the sample and on code."""
    marks = _split_marks()
    table = {int(cp): f" {chr(cp)} " for cp in marks.nonzero()[0]}
    assert len(table) > 100_000 and table[ord("!")] == " ! " and ord("a") not in table

    def reference(text: str, max_words: int) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).lower().translate(table).split()[:max_words])

    docs = [d["text"] for d in bench_docs()] + [s for ss in dev_sentences_by_language().values() for s in ss]
    assert len(docs) > 5000
    for text in docs:
        assert normalize(text, 400) == reference(text, 400)


def test_nfkc_in_the_kernel_is_pythons_on_the_hard_cases():
    """The kernel's NFKC (a code point's own NFKC, then the quick check) and lower-casing give
    what unicodedata.normalize and str.lower give, on random strings of the code points where they
    are hard: every code point that composes with one before it, first ones of such pairs,
    precomposed letters (a mark after one may be reordered into it), combining marks of many classes (out of order too), compatibility characters (U+FDFA's 18 code
    points; U+03F9, a capital sigma after NFKC), Hangul jamo and syllables, Σ, İ, U+023A, a
    surrogate, white space that NFKC makes a space, NFKC's own odd cases (U+0344, U+0F73)."""
    marks = _split_marks()
    table = {int(cp): f" {chr(cp)} " for cp in marks.nonzero()[0]}

    def reference(text: str, max_words: int) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).lower().translate(table).split()[:max_words])

    seconds, firsts, composites = set(), set(), set()
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp)).split()
        if d and not d[0].startswith("<"):
            composites.add(cp)
        if len(d) == 2 and not d[0].startswith("<"):
            firsts.add(int(d[0], 16))
            seconds.add(int(d[1], 16))
    rng = random.Random(7)
    combining = [cp for cp in range(0x300, 0x2000) if unicodedata.combining(chr(cp))]
    compat = [cp for cp in range(0xA0, 0x10000) if unicodedata.normalize("NFKC", chr(cp)) != chr(cp)]
    pool = [
        *map(ord, "aAeEiIoOuUnNsScC  .,!-'"),
        *sorted(seconds),
        *rng.sample(sorted(firsts), 300),
        *rng.sample(sorted(composites), 300),
        *rng.sample(combining, 100),
        *rng.sample(compat, 300),
        *range(0x1100, 0x1113), *range(0x1161, 0x1176), *range(0x11A8, 0x11C3), 0xAC00, 0xAC01, 0xB098,
        0xFDFA, 0x3F9, 0x3A3, 0x3C3, 0x130, 0x23A, 0xD800, 0x85, 0x3000, 0xA0, 0x2026, 0xFB01, 0x344, 0xF73,
        0x995, 0x9C7, 0x9BE, 0x928, 0x93C, 0x627, 0x654, 0x651, 0xFF21, 0x1E9B, 0x4E00,
    ]  # fmt: skip
    texts = ["".join(chr(rng.choice(pool)) for _ in range(rng.randint(1, 15))) for _ in range(20_000)]
    texts[100:100] = ["\ufdfa" * 15, "ab \ufdfa" * 5]  # lines 30x their bytes: the kernel makes room
    for max_words in (2, 5, 1024):  # a prefix of 8 x max_words code points holds each text whole
        data, starts = normalized_lines(texts, max_words)
        lines = [data[a:b].tobytes().decode("utf-8", "surrogatepass") for a, b in zip(starts, starts[1:])]
        wrong = [(t, line) for t, line in zip(texts, lines) if line != reference(t, max_words)]
        assert not wrong, (len(wrong), wrong[:3])


def test_a_batch_of_lines_is_each_texts_line():
    """normalized_lines (the scorer's one kernel call per batch) gives each text's `normalize`
    line, where they start included, also where some texts' first prefix holds too few words and
    is normalised again, longer (long words, then in the middle and at the end of the batch)."""
    long_words = ("y" * 3000 + " ") * 4 + "tail"
    docs = [d["text"] for d in bench_docs()][:300]
    texts = [long_words, *docs[:150], long_words, "", *docs[150:], long_words + " z"]
    for max_words in (3, 400, 1024):
        data, starts = normalized_lines(texts, max_words)
        assert starts[0] == 0 and starts[-1] == data.size and len(starts) == len(texts) + 1
        lines = [data[a:b].tobytes().decode("utf-8", "surrogatepass") for a, b in zip(starts, starts[1:])]
        assert lines == [normalize(t, max_words) for t in texts]
    assert normalized_lines([], 5)[1].tolist() == [0]


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    rows = label_rows(corpus_docs())
    # Two label files (as two `curate judge` runs would write), plus rows without a
    # score that training must skip: a judge error and an off-format verdict.
    rows.append(dict(rows[0], id="err", text="x", text_hash=text_hash("x"), score=None,
                     flag=JUDGE_ERROR))  # fmt: skip
    half = len(rows) // 2
    write_labels(rows[:half], root / "labels" / "part-0.parquet")
    write_labels(rows[half:], root / "labels" / "part-1.parquet")
    model_path = root / "quality.bin"
    report = train(root / "labels", model_path, threshold=THRESHOLD, params=SMALL)
    return root, rows, model_path, report


def test_train_reports_agreement_on_the_holdout(trained):
    root, rows, model_path, report = trained
    usable = {r["text_hash"]: r for r in rows if r["score"] is not None}
    assert report.n_labels == len(rows)
    assert report.n_train + report.n_holdout == len(usable)
    assert report.n_unusable == len(rows) - len(usable)
    assert 0.2 < report.n_holdout / len(usable) < 0.3
    assert report.rubrics == ["proxy@v1"] and report.judge_models == ["proxy"]
    assert sum(report.class_counts.values()) == report.n_train
    # The proxy is learnable from words: the classifier must track it.
    assert report.holdout.spearman > 0.65
    assert report.holdout.accuracy_at_threshold > 0.5
    assert report.selection["n_used"] == len(usable) and report.selection["ignored"] == []
    assert report.weak == [] and report.score_spread > 0.3
    assert {"en", "code"} <= set(report.per_bucket)
    assert sum(a.n for a in report.per_bucket.values()) == report.n_holdout
    saved = json.loads(Path(str(model_path) + REPORT_SUFFIX).read_text())
    assert saved["holdout"]["spearman"] == pytest.approx(report.holdout.spearman)
    assert saved["params"]["max_words"] == SMALL.max_words

    # Reload and recompute the agreement independently from the saved model.
    held = [r for h, r in sorted(usable.items()) if in_holdout(h, SMALL.holdout_fraction, SMALL.seed)]
    assert len(held) == report.n_holdout
    scorer = make_scorer(QualityParams(enabled=True, model_path=str(model_path)))
    assert isinstance(scorer, FastTextQualityScorer) and scorer.max_words == SMALL.max_words
    results = scorer.score([r["text"] for r in held])
    predicted = [r.score for r in results]
    assert all(0.0 <= p <= 5.0 and r.flag is None for p, r in zip(predicted, results))
    assert all(r.candidate_mass == pytest.approx(1.0, abs=1e-3) for r in results)
    overall, per = agreement_by_bucket([r["score"] for r in held], predicted, [r["bucket"] for r in held], THRESHOLD)
    assert overall.accuracy_at_threshold == pytest.approx(report.holdout.accuracy_at_threshold)
    assert overall.spearman == pytest.approx(report.holdout.spearman, abs=1e-9)
    assert per["code"].spearman == pytest.approx(report.per_bucket["code"].spearman, abs=1e-9)
    # The score is the expectation over the classes, hence continuous.
    r0 = results[0]
    assert r0.score == pytest.approx(
        sum(int(k) * p for k, p in r0.probabilities.items()) / sum(r0.probabilities.values())
    )
    assert len({round(p, 3) for p in predicted}) > 20
    scorer.close()
    scorer.close()


def test_training_is_reproducible(trained, tmp_path):
    root, _rows, _model_path, report = trained
    again = train(root / "labels", tmp_path / "again.bin", threshold=THRESHOLD, params=SMALL)
    assert again.holdout == report.holdout


def test_training_needs_labels_on_both_sides(tmp_path):
    rows = [{"id": "1", "text": "only one", "score": 3.0}]
    with pytest.raises(ValueError, match="label more documents"):
        train(rows, tmp_path / "m.bin", params=SMALL)


def test_label_records_skips_what_is_labelled(trained, tmp_path):
    _root, _rows, model_path, _report = trained
    scorer = FastTextQualityScorer(model_path)
    docs = corpus_docs(limit=30)
    records = docs[:20] + [dict(docs[0], id="copy-of-0")]  # a repeated text
    first = list(label_records(records, scorer, rubric="fineweb_edu@v1", model="m", batch_size=7))
    assert [r["id"] for r in first] == [d["id"] for d in docs[:20]]
    assert all(r["text_hash"] == text_hash(r["text"]) for r in first)
    assert all(r["rubric"] == "fineweb_edu@v1" and r["model"] == "m" for r in first)
    # One judge error: it must be retried by the next run, the others skipped.
    first[5] = dict(first[5], score=None, flag=JUDGE_ERROR, probabilities={})
    write_labels(first, tmp_path / "labels" / "run-1.parquet")
    done = labelled_keys(tmp_path / "labels")
    assert len(done) == 19
    second = list(label_records(docs, scorer, rubric="fineweb_edu@v1", model="m", done=done))
    assert [r["id"] for r in second] == [docs[5]["id"]] + [d["id"] for d in docs[20:]]
    # Another rubric version or model is labelled again.
    other = list(label_records(docs[:3], scorer, rubric="fineweb_edu@v2", model="m", done=done))
    assert len(other) == 3
    back = read_labels(tmp_path / "labels")
    assert back[0]["probabilities"] == pytest.approx(first[0]["probabilities"], abs=1e-6)
    assert labelled_keys(tmp_path / "nothing-here") == set()
    assert isinstance(scorer.score(["x"])[0], QualityResult)


# ------------------------------------------------------------------ calibration


def test_keep_threshold_and_calibrate_by_hand():
    assert keep_threshold([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5  # midway: keeps 3 and 4
    assert keep_threshold([1.0, 2.0, 2.0, 2.0, 3.0], 0.4) == 2.5  # ties: 1 kept is nearer 2 than 4
    assert keep_threshold([1.0, 2.0], 0.0) == 3.5  # none: between the top score and 5
    assert keep_threshold([1.0, 2.0], 1.0) == 0.5  # all: between the lowest and 0
    judge = [4.0, 3.0, 1.0, 0.0] * 10 + [4.0, 0.0, 0.0]
    predicted = [2.9, 2.8, 2.2, 2.1] * 10 + [3.0, 1.0, 1.0]
    cal = calibrate(judge, predicted, ["en"] * 40 + ["fr"] * 3, {"default": 2.5}, min_labels=30)
    # en: the judge keeps half; fr (3 labels) is too small and takes the overall threshold.
    assert cal.threshold["en"] == pytest.approx(2.5) and cal.fallback == ["fr"]
    assert "fr" not in cal.threshold and cal.threshold["default"] == pytest.approx(2.5)
    assert cal.per_bucket["en"].classifier_keep_rate == cal.per_bucket["en"].judge_keep_rate == 0.5
    assert cal.per_bucket["fr"].accuracy_at_threshold == 1.0
    assert cal.overall.accuracy_at_threshold == 1.0


def test_calibrated_thresholds_keep_the_judges_share_and_the_stage_uses_them(trained):
    _root, rows, model_path, report = trained
    cal = report.calibration
    # Uncalibrated, the classifier's scores (shrunk toward the mean) keep far fewer.
    assert report.holdout.classifier_keep_rate < report.holdout.judge_keep_rate - 0.15
    assert cal.fallback == [] and set(cal.threshold) == {"default", "en", "code"}
    for a in (cal.overall, *cal.per_bucket.values()):
        assert a.classifier_keep_rate == pytest.approx(a.judge_keep_rate, abs=0.03)
        assert a.accuracy_at_threshold > 0.7
    assert cal.overall.accuracy_at_threshold > report.holdout.accuracy_at_threshold + 0.1
    saved = json.loads(Path(str(model_path) + REPORT_SUFFIX).read_text())
    assert saved["calibration"]["threshold"] == pytest.approx(cal.threshold)
    assert saved["calibration"]["judge_threshold"] == THRESHOLD

    held = [
        r for r in rows if r["score"] is not None and in_holdout(r["text_hash"], SMALL.holdout_fraction, SMALL.seed)
    ]
    params = QualityParams(enabled=True, model_path=str(model_path), threshold=THRESHOLD)
    decide, info = decision(params)
    assert decide.threshold == pytest.approx(cal.threshold)
    assert info["threshold_source"].startswith("calibrated by curate distill")
    stage = QualityStage(params, annotate=True)
    stage.setup()
    out = stage.apply([{"id": r["id"], "text": r["text"], "bucket": r["bucket"]} for r in held])
    stage.teardown()
    for bucket, a in cal.per_bucket.items():
        kept = [d.get("drop") is None for d, r in zip(out, held) if r["bucket"] == bucket]
        assert sum(kept) / len(kept) == pytest.approx(a.classifier_keep_rate)
    # calibrated_threshold false: the configured thresholds, and the manifest says so.
    plain, info = decision(params.model_copy(update={"calibrated_threshold": False}))
    assert plain.threshold == THRESHOLD and info["threshold_source"].startswith("config")
    # Judge thresholds changed since distilling: still the calibrated ones, and it says so.
    moved, info = decision(params.model_copy(update={"threshold": {"default": 3.0}}))
    assert moved.threshold == pytest.approx(cal.threshold)
    assert "distill again to recalibrate" in info["threshold_source"]


def test_a_run_with_the_distilled_model_decides_at_the_calibrated_thresholds(trained, tmp_path):
    _root, _rows, model_path, report = trained
    docs = corpus_docs(limit=60)
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in docs))
    out = tmp_path / "run"
    assert main(["run", "--input", str(src), "--output", str(out), "--set", "mode=annotate",
                 "--set", "stages.quality.enabled=true", "--set", f"stages.quality.model_path={model_path}",
                 "--set", "stages.quality.threshold.default=2.5",
                 "--set", "stages.quality.threshold.en=4.0"]) == 0  # fmt: skip
    q = json.loads((out / "manifest.json").read_text())["stages"]["quality"]
    assert q["threshold"] == pytest.approx(report.calibration.threshold)
    assert q["threshold_source"].startswith("calibrated by curate distill")


# ------------------------------------------------------- which labels: groups


def test_select_labels_takes_the_newest_group_and_the_newest_label_per_text():
    old = [{"text": t, "rubric": "r@v1", "model": "a", "score": 1.0, "flag": None} for t in "xyz"]
    new = [{"text": t, "rubric": "r@v2", "model": "b", "score": 4.0, "flag": None} for t in "xy"]
    again = [
        {"text": "x", "rubric": "r@v2", "model": "b", "score": 5.0, "flag": None},
        {"text": "w", "rubric": "r@v2", "model": "b", "score": None, "flag": OFF_FORMAT},
    ]
    used, sel = select_labels(old + new + again)
    assert (sel.rubric, sel.model, sel.how) == ("r@v2", "b", "newest")
    assert sorted((r["text"], r["score"]) for r in used) == [("x", 5.0), ("y", 4.0)]
    assert (sel.n_used, sel.n_rows, sel.n_flagged, sel.n_repeats) == (2, 4, 1, 1)
    assert sel.flags == {OFF_FORMAT: 1}
    assert sel.ignored == [{"rubric": "r@v1", "model": "a", "labels": 3, "scored": 3}]
    assert "ignored other groups: r@v1 / a (3 labels)" in sel.describe()
    used, sel = select_labels(old + new, rubric="r@v1")
    assert sel.how == "asked" and {r["score"] for r in used} == {1.0} and len(used) == 3
    used, sel = select_labels(old + new, rubric="r")  # any version: the newest
    assert sel.rubric == "r@v2"
    assert select_labels(old + new, model="a")[1].rubric == "r@v1"
    with pytest.raises(ValueError, match=r"no labels of model 'c'; the labels hold: r@v2 / b \(2 labels\)"):
        select_labels(old + new, model="c")


def test_distill_uses_the_newest_labels_file_and_reports_the_other_group(tmp_path, capsys):
    docs = corpus_docs()
    labels = tmp_path / "labels"
    # Two `curate judge` runs over the same texts, a rubric version and a model apart; the
    # older one's verdicts are inverted, so a classifier trained on them would rank backwards.
    write_labels(
        label_rows(docs, rubric="proxy@v1", model="judge-a", score=lambda t: 5 - proxy_score(t)),
        labels / "labels-20240101T000000.parquet",
    )
    write_labels(label_rows(docs, rubric="proxy@v2", model="judge-b"), labels / "labels-20240301T000000.parquet")
    small = [
        f"distill.{k}={v}"
        for k, v in SMALL.model_dump().items()
        if k in ("holdout_fraction", "epochs", "learning_rate", "dim", "buckets", "max_words", "min_count")
    ]
    small += ["stages.quality.threshold.default=2.5", "stages.quality.threshold.en=4.0"]
    sets = [a for kv in small for a in ("--set", kv)]
    model = tmp_path / "q.bin"
    assert main(["distill", "--labels", str(labels), "--output", str(model), *sets]) == 0
    out = capsys.readouterr().out
    assert f"labels: {len(docs)} used, rubric proxy@v2, model judge-b (the newest group" in out
    assert f"ignored: rubric proxy@v1, model judge-a: {len(docs)} labels" in out
    assert "judge keeps" in out and "accuracy at threshold" in out
    report = json.loads(Path(str(model) + REPORT_SUFFIX).read_text())
    assert report["rubrics"] == ["proxy@v2"] and report["judge_models"] == ["judge-b"]
    assert report["selection"]["ignored"] == [
        {"rubric": "proxy@v1", "model": "judge-a", "labels": len(docs), "scored": len(docs)}
    ]
    assert report["holdout"]["spearman"] > 0.65  # trained on the v2 verdicts, not the inverted ones
    # Asked for the older group, it is used (and its verdicts learnt as they are).
    assert main(["distill", "--labels", str(labels), "--output", str(tmp_path / "old.bin"), *sets,
                 "--set", "distill.rubric=proxy@v1"]) == 0  # fmt: skip
    assert "rubric proxy@v1, model judge-a (as asked" in capsys.readouterr().out


# ------------------------------------------------- a classifier that learnt nothing


@pytest.mark.parametrize("kind", ["constant", "random"])
def test_a_classifier_that_learnt_nothing_is_refused_unless_allowed(kind, tmp_path, capsys):
    rng = random.Random(3)
    score = (lambda t: 3.0) if kind == "constant" else (lambda t: rng.uniform(0.0, 5.0))
    rows = label_rows(corpus_docs(), score=score)
    with pytest.raises(WeakClassifierError) as e:
        train(rows, tmp_path / "m.bin", threshold=THRESHOLD, params=SMALL)
    msg = str(e.value)
    assert "\n" not in msg and "learnt too little" in msg and "--allow-weak" in msg
    assert f"{len(rows)} labels (" in msg and "held out), score spread " in msg
    assert "spearman " in msg and "at its calibrated threshold" in msg and "(judge " in msg
    if kind == "constant":
        assert "spearman undefined" in msg  # the judge's own scores do not vary
    else:
        assert "do not rank like the judge's" in msg
    assert not (tmp_path / "m.bin").exists()  # nothing written

    report = train(rows, tmp_path / "m.bin", threshold=THRESHOLD, params=SMALL.model_copy(update={"allow_weak": True}))
    assert report.weak and (tmp_path / "m.bin").exists()
    assert json.loads(Path(str(tmp_path / "m.bin") + REPORT_SUFFIX).read_text())["weak"] == report.weak

    # The command line: one line, exit 2; with --allow-weak a warning with the same numbers.
    write_labels(rows, tmp_path / "labels" / "labels-20240101T000000.parquet")
    argv = [
        "distill",
        "--labels",
        str(tmp_path / "labels"),
        "--output",
        str(tmp_path / "cli.bin"),
        "--set",
        "distill.holdout_fraction=0.25",
        "--set",
        "distill.buckets=20000",
        "--set",
        "distill.dim=32",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distill: the distilled classifier learnt too little:") and "\n" not in err
    assert not (tmp_path / "cli.bin").exists()
    assert main([*argv, "--allow-weak"]) == 0
    err = capsys.readouterr().err
    assert "warning: the distilled classifier learnt too little" in err and "score spread" in err
    assert (tmp_path / "cli.bin").exists()


def test_too_few_held_out_labels_to_tell_is_refused(tmp_path):
    rows = label_rows(corpus_docs()[:85])  # the issue's case: 85 labels, 10% held out
    with pytest.raises(WeakClassifierError, match=r"only \d+ held-out labels \(< 20\)"):
        train(rows, tmp_path / "m.bin", threshold=THRESHOLD, params=SMALL.model_copy(update={"holdout_fraction": 0.1}))


# ------------------------------------------------------------------ messages


def test_all_flagged_labels_say_so_once(tmp_path, capsys):
    docs = corpus_docs(limit=40)
    rows = [
        dict(r, score=None, candidate_mass=0.01, flag=OFF_FORMAT if i % 8 else JUDGE_ERROR)
        for i, r in enumerate(label_rows(docs))
    ]
    write_labels(rows, tmp_path / "labels" / "labels-20240101T000000.parquet")
    assert main(["distill", "--labels", str(tmp_path / "labels"), "--output", str(tmp_path / "m.bin")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("distill: all 40 labels of rubric proxy@v1, model proxy were flagged")
    assert "distill: distill:" not in err
    assert f"({JUDGE_ERROR} 5, {OFF_FORMAT} 35)" in err and "did not answer in the rubric's format" in err
    assert "label more documents" not in err
    # A few usable labels among flagged ones: label more, and the flags are counted.
    rows[0] = label_rows(docs[:1])[0]
    with pytest.raises(ValueError, match=r"^1 usable labels .* label more documents \(39 more were flagged"):
        train(rows, tmp_path / "m.bin", params=SMALL)
