"""The distilled quality classifier: fastText trained on the judge's labels.

Llama 3's recipe (Meta, "The Llama 3 Herd of Models", 2024, section 3.1.1): judge a
sample with a large model, train a fast classifier on its verdicts, run that on every
document. Here the judge's continuous 0..5 score is binned into six classes
(round half up); the classifier predicts a distribution over them and its
`quality_score` is the expected class, so it stays continuous like the judge's.

Multilingual by construction: plain fastText words over normalised text (NFKC,
lower-cased, punctuation and symbols split off as their own tokens, and each character
of scripts written without spaces, Han, kana, Thai, Lao, Khmer, Myanmar, a token of its
own), word bigrams on top.

`train()` uses one (rubric, model) group of the labels (the newest by default; the others
are reported as ignored), holds out a deterministic share of them (by text hash) and
reports the classifier's agreement with the judge on them: accuracy of the keep/drop
decision, Spearman rank correlation of the scores, per bucket and overall.

Calibration: the classifier's scores are not the judge's (a classifier trained on few or
skewed labels predicts near the class prior), so the judge's threshold would keep the
wrong share. `train()` picks the classifier's own threshold per bucket so that it keeps,
on the held-out labels, the share the judge keeps at the configured judge thresholds
(buckets with fewer than `calibration_min_labels` held-out labels take the overall
calibrated threshold) and writes it in `<model>.report.json` (`calibration.threshold`),
the one place it lives; the quality stage uses it unless
`stages.quality.calibrated_threshold` is false.

A classifier that learnt nothing (its held-out scores barely spread, or do not rank like
the judge's, or too few labels are held out to tell) is refused (`WeakClassifierError`)
unless `allow_weak` is set; then the report carries the same numbers as a warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from classifiers.fasttext_quiet import fasttext_module
from classifiers.judge.labels import LabelSelection, read_labels, select_labels, text_hash
from classifiers.judge.params import QualityParams
from classifiers.scorer import QualityResult

N_CLASSES = 6  # scores 0..5
LABEL_PREFIX = "__label__"
REPORT_SUFFIX = ".report.json"


class DistillParams(BaseModel):
    """How `curate distill` trains the classifier (fastText's knobs under plain names)."""

    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0
    epochs: int = Field(10, gt=0)
    learning_rate: float = Field(0.2, gt=0.0)
    word_ngrams: int = Field(2, ge=1)
    dim: int = Field(64, gt=0)
    min_count: int = Field(2, ge=1)
    # Hash buckets for word n-grams: the model file holds buckets x dim floats.
    buckets: int = Field(200_000, ge=1)
    # Words of a document the classifier reads (training and prediction alike): by default the
    # judge's max_doc_tokens, as the judge's labels speak of that prefix only (a word here, with
    # punctuation split off, is one Llama token or more, so this covers what the judge read)
    max_words: int = Field(QualityParams().max_doc_tokens, gt=0)
    # Training threads; fastText training is reproducible with one thread only.
    threads: int = Field(1, gt=0)

    # Which labels: one (rubric, model) group of the labels directory. None: the newest
    # group (of the most recent labels file). A rubric without version (`fineweb_edu`)
    # matches any version.
    rubric: str | None = None
    model: str | None = None

    # Calibration: a bucket with fewer held-out labels than this takes the overall
    # calibrated threshold.
    calibration_min_labels: int = Field(30, ge=1)

    # A classifier that learnt nothing is refused unless allow_weak: on the held-out
    # labels, fewer than min_holdout of them, a spread (standard deviation) of its scores
    # under min_score_spread, a Spearman correlation with the judge under min_spearman
    # (or undefined), or an overall keep rate at the calibrated thresholds further than
    # max_keep_rate_gap from the judge's.
    allow_weak: bool = False
    min_holdout: int = Field(20, ge=1)
    min_score_spread: float = Field(0.05, ge=0.0)
    min_spearman: float = Field(0.2, ge=-1.0, le=1.0)
    max_keep_rate_gap: float = Field(0.1, ge=0.0, le=1.0)


class WeakClassifierError(ValueError):
    """The distilled classifier learnt too little to be used (see DistillParams.allow_weak)."""


# ----------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=1)
def _split_marks():
    """Which code points become a token of their own (" c "): Unicode punctuation and symbols,
    and the characters of scripts written without spaces between words. A lookup table over
    every code point (1.1 MB, uint8)."""
    from classifiers.unicode_tables import in_categories

    no_space_scripts = [
        (0x0E00, 0x0EFF),  # Thai, Lao
        (0x1000, 0x109F),  # Myanmar
        (0x1780, 0x17FF),  # Khmer
        (0x3040, 0x30FF),  # Hiragana, Katakana
        (0x3400, 0x4DBF),  # CJK extension A
        (0x4E00, 0x9FFF),  # CJK unified ideographs
        (0xF900, 0xFAFF),  # CJK compatibility ideographs
        (0x20000, 0x2FFFF),  # CJK extensions B-F
    ]
    marks = in_categories("PS")
    for a, b in no_space_scripts:
        marks[a : b + 1] = 1
    return marks


def _build_nfkc_table():
    import numpy as np

    from classifiers.quality_consts import NFKC_COMPOSITE, NFKC_HARD
    from classifiers.unicode_tables import N_CODE_POINTS

    nfkc, combining = functools.partial(unicodedata.normalize, "NFKC"), unicodedata.combining
    # NFKC's quick check "Maybe": the second code point of each canonical pair that NFC composes
    # (a primary composite), with the first ones it composes with; and Hangul's vowel and
    # trailing jamo, composed by rule (left to Python)
    maybe: dict[int, list[int]] = {}
    composite = set()  # the code points with a canonical decomposition
    for cp in range(N_CODE_POINTS):
        d = unicodedata.decomposition(chr(cp)).split()
        if d and not d[0].startswith("<"):
            composite.add(cp)
        if len(d) == 2 and not d[0].startswith("<"):
            first, second = int(d[0], 16), int(d[1], 16)
            if unicodedata.normalize("NFC", chr(first) + chr(second)) == chr(cp):
                maybe.setdefault(second, []).append(first)
    hard = {*range(0x1161, 0x1176), *range(0x11A8, 0x11C3), 0x3A3, *(composite & maybe.keys())}
    table = np.full(N_CODE_POINTS, NFKC_HARD, np.int32)
    tail: list[int] = []
    for cp in range(N_CODE_POINTS):
        ch = chr(cp)
        out = nfkc(ch)
        if cp in hard or any(ord(x) in hard for x in out):
            continue
        at = -(N_CODE_POINTS + len(tail))
        if out != ch:
            table[cp] = at
            tail += [len(out), *map(ord, out)]
        elif cp in maybe:
            table[cp] = at
            tail += [-len(maybe[cp]) - 1, combining(ch), *sorted(maybe[cp])]
        else:
            table[cp] = combining(ch) + (NFKC_COMPOSITE if cp in composite else 0)
    return np.concatenate([table, np.array(tail, np.int32)])


@functools.lru_cache(maxsize=1)
def _nfkc_table():
    """Per code point what NFKC makes of it, for the kernel (laid out as quality_consts says)."""
    from classifiers.unicode_tables import cached_table

    return cached_table("nfkc-quick", 3, _build_nfkc_table)


def normalize(text: str, max_words: int = DistillParams().max_words) -> str:
    """One line of space-separated lower-case tokens, at most `max_words` of them: the words of
    the NFKC-normalised, lower-cased text, each marked character (_split_marks) a token of its
    own (the compiled kernel, classifiers/quality_kernel.py)."""
    return normalized_lines([text], max_words)[0].tobytes().decode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=1)
def _classes():
    """Each code point's class for the kernel (uint8): SPACE where str.isspace, else MARK where
    _split_marks, else 0."""
    from classifiers.quality_consts import MARK, SPACE
    from classifiers.unicode_tables import isspace

    classes = _split_marks() * MARK
    classes[isspace() != 0] = SPACE
    return classes


def normalized_lines(texts: Sequence[str], max_words: int = DistillParams().max_words, limit: int = 0):
    """`normalize`'s lines of `texts` as UTF-8 bytes (uint8, a surrogate as "surrogatepass"
    writes it), one after another, and where each starts (int64, one more than the texts: the
    last ends there), from one call of the kernel (and one more for the texts it leaves to
    Python's NFKC, or whose prefix was too short)."""
    # Normalise a prefix only, a longer one for the texts whose prefix holds no more than
    # max_words words (the last word of a cut prefix may be partial, so it must lie beyond the
    # ones kept).
    return _lines(texts, max_words, limit or max_words * 8, [False] * len(texts))


def _lines(texts: Sequence[str], max_words: int, limit: int, in_python: list[bool]):
    import numpy as np

    from classifiers.kernels import kernels
    from classifiers.unicode_tables import single_lower

    prefixes = [unicodedata.normalize("NFKC", t[:limit]).lower() if p else t[:limit] for t, p in zip(texts, in_python)]
    chunks = [p.encode("utf-8", "surrogatepass") for p in prefixes]
    starts = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=starts[1:])
    data = np.frombuffer(b"".join(chunks), np.uint8)
    ready = np.array(in_python, np.bool_)
    line, at, more, hard = kernels().quality_words(
        data, starts, ready, _classes(), single_lower(), _nfkc_table(), max_words
    )
    redo = {}  # text -> its line, made again: by Python's NFKC, or from a longer prefix
    for again, limit_again, python in (
        (np.flatnonzero(hard).tolist(), limit, True),
        ([i for i in np.flatnonzero(~more & ~hard).tolist() if len(texts[i]) > limit], limit * 4, False),
    ):
        if again:
            lines, where = _lines(
                [texts[i] for i in again], max_words, limit_again, [python or in_python[i] for i in again]
            )
            redo.update((i, lines[where[k] : where[k + 1]]) for k, i in enumerate(again))
    if not redo:
        return line, at
    sizes = np.diff(at)
    pieces, after = [], 0
    for i in sorted(redo):
        sizes[i] = redo[i].size
        pieces += [line[at[after] : at[i]], redo[i]]
        after = i + 1
    pieces.append(line[at[after] :])
    at = np.zeros_like(at)
    np.cumsum(sizes, out=at[1:])
    return np.concatenate(pieces), at


def score_class(score: float) -> int:
    """The judge's 0..5 score to a class: round half up, clipped."""
    return min(N_CLASSES - 1, max(0, math.floor(score + 0.5)))


# ------------------------------------------------------------------------ agreement


def rank(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    if n != len(y):
        raise ValueError("pearson: sequences differ in length")
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None  # undefined for a constant sequence
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks."""
    return pearson(rank(x), rank(y))


@dataclass
class Agreement:
    n: int
    accuracy_at_threshold: float | None  # share where both keep, or both drop
    spearman: float | None
    mean_abs_error: float | None
    judge_keep_rate: float | None
    classifier_keep_rate: float | None


def agreement(
    judge: Sequence[float],
    predicted: Sequence[float],
    thresholds: Sequence[float],
    classifier_thresholds: Sequence[float] | None = None,
) -> Agreement:
    """The judge keeps at `thresholds`, the classifier at `classifier_thresholds` (its
    calibrated ones; default: the judge's)."""
    n = len(judge)
    if classifier_thresholds is None:
        classifier_thresholds = thresholds
    if not (n == len(predicted) == len(thresholds) == len(classifier_thresholds)):
        raise ValueError("agreement: sequences differ in length")
    if n == 0:
        return Agreement(0, None, None, None, None, None)
    keep_j = [s >= t for s, t in zip(judge, thresholds)]
    keep_c = [s >= t for s, t in zip(predicted, classifier_thresholds)]
    return Agreement(
        n=n,
        accuracy_at_threshold=sum(a == b for a, b in zip(keep_j, keep_c)) / n,
        spearman=spearman(judge, predicted),
        mean_abs_error=sum(abs(a - b) for a, b in zip(judge, predicted)) / n,
        judge_keep_rate=sum(keep_j) / n,
        classifier_keep_rate=sum(keep_c) / n,
    )


def agreement_by_bucket(
    judge: Sequence[float],
    predicted: Sequence[float],
    buckets: Sequence[str],
    threshold: Mapping[str, float] | float,
    classifier_threshold: Mapping[str, float] | float | None = None,
) -> tuple[Agreement, dict[str, Agreement]]:
    """Overall and per-bucket agreement; each document judged at its bucket's threshold
    (the classifier at its bucket's `classifier_threshold`, default: the judge's)."""
    thr = _threshold_fn(threshold)
    per_doc = [thr(b) for b in buckets]
    cthr = _threshold_fn(classifier_threshold) if classifier_threshold is not None else thr
    per_doc_c = [cthr(b) for b in buckets]
    overall = agreement(judge, predicted, per_doc, per_doc_c)
    per_bucket: dict[str, Agreement] = {}
    for bucket in sorted(set(buckets)):
        idx = [i for i, b in enumerate(buckets) if b == bucket]
        per_bucket[bucket] = agreement(
            [judge[i] for i in idx],
            [predicted[i] for i in idx],
            [per_doc[i] for i in idx],
            [per_doc_c[i] for i in idx],
        )
    return overall, per_bucket


# ---------------------------------------------------------------------- calibration


def keep_threshold(scores: Sequence[float], share: float) -> float:
    """A threshold t in 0..5 such that `score >= t` holds for as close to `share` of
    `scores` as their ties allow: midway between the last score kept and the first one
    dropped (between the top score and 5 to keep none, the lowest and 0 to keep all)."""
    if not scores:
        raise ValueError("keep_threshold: no scores")
    desc = sorted(scores, reverse=True)
    n, want = len(desc), round(share * len(desc))
    values = sorted(set(desc), reverse=True)
    # Candidate cuts: above every score, then below each distinct value in turn.
    best_t, best_gap = (desc[0] + 5.0) / 2 if desc[0] < 5.0 else 5.0, want
    kept = 0
    for i, v in enumerate(values):
        while kept < n and desc[kept] >= v:
            kept += 1
        below = values[i + 1] if i + 1 < len(values) else 0.0
        t = (v + below) / 2 if v > below else v
        if abs(kept - want) < best_gap:
            best_t, best_gap = t, abs(kept - want)
    return min(5.0, max(0.0, best_t))


@dataclass
class Calibration:
    """The classifier's keep thresholds, chosen on the held-out labels so that it keeps
    the share the judge keeps at `judge_threshold`; `fallback`: buckets with held-out
    labels but fewer than `min_labels` of them, which take the overall ("default")."""

    threshold: dict[str, float]
    judge_threshold: dict[str, float]
    min_labels: int
    fallback: list[str]
    overall: Agreement  # judge at its thresholds vs the classifier at the calibrated ones
    per_bucket: dict[str, Agreement]


def calibrate(
    judge: Sequence[float],
    predicted: Sequence[float],
    buckets: Sequence[str],
    judge_threshold: Mapping[str, float],
    min_labels: int = 30,
) -> Calibration:
    thr = _threshold_fn(judge_threshold)
    keeps = [s >= thr(b) for s, b in zip(judge, buckets)]
    calibrated = {"default": keep_threshold(predicted, sum(keeps) / len(keeps))}
    fallback = []
    for bucket in sorted(set(buckets)):
        idx = [i for i, b in enumerate(buckets) if b == bucket]
        if len(idx) < min_labels:
            fallback.append(bucket)
            continue
        calibrated[bucket] = keep_threshold([predicted[i] for i in idx], sum(keeps[i] for i in idx) / len(idx))
    overall, per_bucket = agreement_by_bucket(judge, predicted, buckets, judge_threshold, calibrated)
    return Calibration(calibrated, dict(judge_threshold), min_labels, fallback, overall, per_bucket)


def read_calibration(model_path: str | Path) -> dict | None:
    """The calibration written beside a distilled model ({"threshold": the classifier's,
    "judge_threshold": the judge's it matches, ...}); None: none there, e.g. a model
    distilled before calibration existed."""
    report = Path(str(model_path) + REPORT_SUFFIX)
    if not report.is_file():
        return None
    cal = json.loads(report.read_text()).get("calibration") or {}
    return cal if cal.get("threshold") else None


def _stdev(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def weakness(n_holdout: int, spread: float, rho: float | None, cal: Calibration, params: DistillParams) -> list[str]:
    """Why the classifier is too weak to use (empty: it is not)."""
    out = []
    if n_holdout < params.min_holdout:
        out.append(f"only {n_holdout} held-out labels (< {params.min_holdout}) to check it on")
    if spread < params.min_score_spread:
        out.append(f"its scores barely spread (sd {spread:.4f} < {params.min_score_spread})")
    if rho is None or rho < params.min_spearman:
        out.append(
            "its scores do not rank like the judge's (spearman "
            f"{'undefined' if rho is None else f'{rho:.3f}'} < {params.min_spearman})"
        )
    j, c = cal.overall.judge_keep_rate or 0.0, cal.overall.classifier_keep_rate or 0.0
    if abs(j - c) > params.max_keep_rate_gap:
        out.append(f"no threshold keeps the judge's share ({c:.0%} vs {j:.0%})")
    return out


def _threshold_fn(threshold: Mapping[str, float] | float):
    if isinstance(threshold, Mapping):
        if "default" not in threshold:
            raise ValueError('threshold needs a "default" entry')
        return lambda bucket: threshold.get(bucket, threshold["default"])
    return lambda bucket: float(threshold)


# --------------------------------------------------------------------------- model


def _load_fasttext(path: str | Path):
    from classifiers.fasttext_model import load_predictor

    return load_predictor(path)


def _expected(classes: Sequence[int], probs: Sequence[float]) -> tuple[float, float]:
    """(the expected class of a predicted distribution (0 where it is empty), clipped to 0..5;
    its probabilities' sum), the distribution being each class's probability, in the model's order."""
    mass = sum(probs)
    expected = sum(c * p for c, p in zip(classes, probs)) / mass if mass > 0 else 0.0
    return min(5.0, max(0.0, expected)), mass


def _expected_scores(model, lines: list[str]) -> list[tuple[float, float, dict[str, float]]]:
    """(score, the probabilities' sum, label -> probability) per line, by fastText's predict."""
    labels, probs = model.predict(lines, k=-1)
    out = []
    for labs, ps in zip(labels, probs):
        dist = {lab[len(LABEL_PREFIX) :]: float(p) for lab, p in zip(labs, ps)}
        out.append((*_expected([int(k) for k in dist], list(dist.values())), dist))
    return out


class FastTextQualityScorer:
    """The distilled classifier behind the same Scorer interface as the judge. Predicted by the
    compiled predictor where it reads the model (classifiers/fasttext_model.py: what `curate
    distill` trains; the same probabilities as fastText's), else by fastText."""

    def __init__(self, model_path: str | Path, max_words: int | None = None) -> None:
        self.model_path = Path(model_path)
        if max_words is None:
            # The classifier reads what it was trained on: max_words from its report.
            report = Path(str(self.model_path) + REPORT_SUFFIX)
            max_words = DistillParams().max_words
            if report.is_file():
                max_words = json.loads(report.read_text())["params"]["max_words"]
        self.max_words = max_words
        self._model = _load_fasttext(self.model_path)

    def score(self, texts: list[str]) -> list[QualityResult]:
        if self._model is None:
            raise RuntimeError("FastTextQualityScorer is closed")
        from classifiers.fasttext_model import FastTextModel

        if isinstance(self._model, FastTextModel):
            scored = self._predict(*normalized_lines(texts, self.max_words))
        else:
            scored = _expected_scores(self._model, [normalize(t, self.max_words) for t in texts])
        return [QualityResult(score=s, candidate_mass=mass, probabilities=dist, flag=None) for s, mass, dist in scored]

    def _predict(self, data, starts) -> list[tuple[float, float, dict[str, float]]]:
        """The compiled predictor over the normalised lines' UTF-8 bytes, in one call."""
        from classifiers.fasttext_consts import SURROGATE

        outcome, probs, ids, count = self._model.predict_bytes(data, starts, -1)
        if (outcome == SURROGATE).any():  # the model's predict answers it (with fastText's own error)
            lines = [data[a:b].tobytes().decode("utf-8", "surrogatepass") for a, b in zip(starts, starts[1:])]
            return _expected_scores(self._model, lines)
        names = [lab[len(LABEL_PREFIX) :] for lab in self._model.labels]
        values = [int(name) for name in names]
        out = []
        for ps, row, n in zip(probs.tolist(), ids.tolist(), count.tolist()):
            out.append(
                (*_expected([values[i] for i in row[:n]], ps[:n]), {names[i]: p for i, p in zip(row[:n], ps[:n])})
            )
        return out

    def close(self) -> None:
        self._model = None

    def __enter__(self) -> FastTextQualityScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -------------------------------------------------------------------------- train


@dataclass
class DistillReport:
    model_path: str
    n_labels: int  # rows given
    n_unusable: int  # not used: other (rubric, model) groups, flagged, or older repeats of a text
    n_train: int
    n_holdout: int
    class_counts: dict[str, int]  # training classes
    rubrics: list[str]  # of the labels used (one group)
    judge_models: list[str]
    threshold: dict[str, float]  # the judge's keep thresholds (stages.quality.threshold)
    holdout: Agreement  # the classifier's raw score at the judge's thresholds
    per_bucket: dict[str, Agreement]
    train_seconds: float
    params: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)  # LabelSelection: which labels, what was ignored
    calibration: Calibration | None = None  # the classifier's own thresholds, and its agreement at them
    score_spread: float | None = None  # sd of the classifier's held-out scores
    judge_score_spread: float | None = None  # sd of the judge's held-out scores
    weak: list[str] = field(default_factory=list)  # why it learnt too little (allowed: allow_weak)

    def to_dict(self) -> dict:
        return asdict(self)

    def numbers(self) -> str:
        """The numbers that tell whether the classifier learnt anything, on one line."""
        rho = self.holdout.spearman
        cal = self.calibration
        keeps = ""
        if cal is not None:
            keeps = (
                f", keeps {_pct(cal.overall.classifier_keep_rate)} at its calibrated threshold"
                f" {cal.threshold['default']:.3f} (judge {_pct(cal.overall.judge_keep_rate)})"
            )
        return (
            f"{self.n_train + self.n_holdout} labels ({self.n_holdout} held out), score spread"
            f" {self.score_spread:.4f} (judge {self.judge_score_spread:.3f}), spearman"
            f" {'undefined' if rho is None else f'{rho:.3f}'}{keeps}, keeps"
            f" {_pct(self.holdout.classifier_keep_rate)} at the judge's threshold"
        )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def in_holdout(digest: str, fraction: float, seed: int) -> bool:
    """Deterministic split by text hash: the same text is always on the same side."""
    h = hashlib.sha256(f"{seed}:{digest}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def _no_split_message(selection: LabelSelection, n_train: int, n_hold: int) -> str:
    """Why there is nothing (or too little) to train on, and what to do (no prefix)."""
    group = f"rubric {selection.rubric}, model {selection.model}"
    flags = ", ".join(f"{f} {n}" for f, n in selection.flags.items()) or "no flag"
    if selection.n_used == 0 and selection.n_flagged:
        return (
            f"all {selection.n_flagged} labels of {group} were flagged ({flags}): the judge did"
            " not answer in the rubric's format, so there is nothing to learn from; check the"
            " judge (model, rubric, prompt format) and judge again rather than label more"
        )
    text = (
        f"{selection.n_used} usable labels of {group} give {n_train} to train and {n_hold} to"
        " hold out; label more documents"
    )
    if selection.n_flagged:
        text += f" ({selection.n_flagged} more were flagged: {flags})"
    return text


def train(
    labels: str | Path | Iterable[Mapping],
    output_model_path: str | Path,
    *,
    threshold: Mapping[str, float] | float = 2.5,
    params: DistillParams | None = None,
) -> DistillReport:
    """Train on label rows (oldest first; or a Parquet file/directory of them) of one
    (rubric, model) group; write the model and `<model>.report.json` (with the calibrated
    thresholds); return the report. Raises ValueError (no prefix) when the labels cannot
    train a model, WeakClassifierError when it learnt too little (nothing is written)."""
    fasttext = fasttext_module()
    params = params or DistillParams()
    if isinstance(threshold, Mapping):
        threshold = dict(threshold)
        _threshold_fn(threshold)
    else:
        threshold = {"default": float(threshold)}
    rows = read_labels(labels) if isinstance(labels, (str, Path)) else list(labels)
    if not rows:
        raise ValueError("no label rows; label documents with `curate judge` first")
    used, selection = select_labels(rows, rubric=params.rubric, model=params.model)

    train_rows, hold_rows = [], []
    for row in used:
        digest = row.get("text_hash") or text_hash(row["text"])
        (hold_rows if in_holdout(digest, params.holdout_fraction, params.seed) else train_rows).append(row)
    if not train_rows or not hold_rows:
        raise ValueError(_no_split_message(selection, len(train_rows), len(hold_rows)))

    out_path = Path(output_model_path)
    class_counts: dict[str, int] = {}
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as fh:
        train_file = fh.name
        for row in train_rows:
            cls = str(score_class(float(row["score"])))
            class_counts[cls] = class_counts.get(cls, 0) + 1
            fh.write(f"{LABEL_PREFIX}{cls} {normalize(row['text'], params.max_words)}\n")
    try:
        model = fasttext.train_supervised(
            input=train_file,
            epoch=params.epochs,
            lr=params.learning_rate,
            wordNgrams=params.word_ngrams,
            dim=params.dim,
            minCount=params.min_count,
            bucket=params.buckets,
            thread=params.threads,
            seed=params.seed,
            loss="softmax",
            verbose=0,
        )
    finally:
        os.unlink(train_file)
    train_seconds = time.perf_counter() - t0

    lines = [normalize(r["text"], params.max_words) for r in hold_rows]
    predicted = [s for s, _, _ in _expected_scores(model, lines)]
    judge = [float(r["score"]) for r in hold_rows]
    buckets = [r.get("bucket") or "default" for r in hold_rows]
    overall, per_bucket = agreement_by_bucket(judge, predicted, buckets, threshold)
    cal = calibrate(judge, predicted, buckets, threshold, params.calibration_min_labels)
    spread = _stdev(predicted)
    report = DistillReport(
        model_path=str(out_path),
        n_labels=len(rows),
        n_unusable=len(rows) - len(used),
        n_train=len(train_rows),
        n_holdout=len(hold_rows),
        class_counts=dict(sorted(class_counts.items())),
        rubrics=[selection.rubric] if selection.rubric else [],
        judge_models=[selection.model] if selection.model else [],
        threshold=threshold,
        holdout=overall,
        per_bucket=per_bucket,
        train_seconds=train_seconds,
        params=params.model_dump(),
        selection=asdict(selection),
        calibration=cal,
        score_spread=spread,
        judge_score_spread=_stdev(judge),
        weak=weakness(len(hold_rows), spread, overall.spearman, cal, params),
    )
    if report.weak and not params.allow_weak:
        raise WeakClassifierError(
            f"the distilled classifier learnt too little: {'; '.join(report.weak)} — "
            f"{report.numbers()}; not written (label more documents, or pass --allow-weak"
            " to write it anyway)"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(out_path))
    Path(str(out_path) + REPORT_SUFFIX).write_text(json.dumps(report.to_dict(), indent=2))
    return report
