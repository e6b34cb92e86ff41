"""Distillation: judge labels -> fastText quality classifier -> agreement report.

Training runs on REAL documents of the bench corpus. Their labels come from a simple
deterministic PROXY, not from a judge: 5 x the share of whitespace-separated words that
are purely alphabetic (prose scores high, code and number soup low). It stands in for
the Llama judge's 0..5 score so the test needs no GPU; what is tested is the mechanics
(labels in Parquet, hold-out split, training, reload, prediction, agreement arithmetic),
plus that the classifier learns a learnable target.
"""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import pytest

from classifiers.judge import (
    JUDGE_ERROR,
    JudgeResult,
    QualityParams,
    label_records,
    labelled_keys,
    make_scorer,
    read_labels,
    text_hash,
    write_labels,
)
from classifiers.quality_fasttext import (
    REPORT_SUFFIX,
    DistillParams,
    FastTextQualityScorer,
    agreement,
    agreement_by_bucket,
    in_holdout,
    normalize,
    rank,
    score_class,
    spearman,
    train,
)

BENCH = Path("/work/shared/data/bench-corpus")
THRESHOLD = {"default": 2.5, "code": 2.0}
SMALL = DistillParams(
    holdout_fraction=0.25, epochs=15, learning_rate=0.5, dim=32, buckets=20_000,
    max_words=300, min_count=1,
)  # fmt: skip


def proxy_score(text: str) -> float:
    """PROXY label (not a judge): 5 x share of purely alphabetic words."""
    words = text.split()
    return 5.0 * sum(w.isalpha() for w in words) / len(words) if words else 0.0


def bench_docs(limit: int = 1400) -> list[dict]:
    """Documents of two bench-corpus parts with a bucket from the manifest."""
    import zstandard

    def lines(path):
        with open(path, "rb") as fh:
            yield from io.TextIOWrapper(
                zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8"
            )

    meta = {}
    for i, line in enumerate(lines(BENCH / "manifest.tsv.zst")):
        if i:
            doc_id, category, _source, lang, *_ = line.rstrip("\n").split("\t")
            meta[doc_id] = (category, lang)
    docs = []
    for part in sorted(BENCH.glob("part-*.jsonl.zst"))[:2]:
        for line in lines(part):
            d = json.loads(line)
            category, lang = meta[d["id"]]
            if category == "d_near_dup":
                continue
            bucket = "code" if category == "c_code" else lang
            docs.append({"id": d["id"], "text": d["text"], "bucket": bucket})
            if len(docs) >= limit:
                return docs
    return docs


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
    overall, per = agreement_by_bucket(judge, clf, ["en", "en", "code", "code", "fr"], THRESHOLD)
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


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    docs = bench_docs()
    rows = [
        dict(d, text_hash=text_hash(d["text"]), rubric="proxy@v1", model="proxy",
             score=proxy_score(d["text"]), candidate_mass=1.0, probabilities={}, flag=None)
        for d in docs
    ]  # fmt: skip
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
    assert report.holdout.accuracy_at_threshold > 0.85
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
    overall, per = agreement_by_bucket(
        [r["score"] for r in held], predicted, [r["bucket"] for r in held], THRESHOLD
    )
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
    docs = bench_docs(limit=30)
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
    assert isinstance(scorer.score(["x"])[0], JudgeResult)
