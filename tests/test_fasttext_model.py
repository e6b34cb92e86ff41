"""The compiled fastText predictor (classifiers/fasttext_model.py and fasttext_kernel.py) against
fastText's own predict: every label and probability bit-identical and in fastText's order, for
the bundled lid.176.ftz (quantised, hierarchical softmax, character n-grams) and models trained
as `curate distill` trains them, on real text in every language of the language-ID sample, code
and prose, and on lines written to hit each rule of fastText's reading (separators, the line's
end, labels, bytes above 127); models it does not compute go to fastText."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifiers import fasttext_kernel as fk
from classifiers.fasttext_consts import NO_WORDS, OK, SURROGATE
from classifiers.fasttext_model import FastTextModel, load_predictor
from classifiers.fasttext_quiet import fasttext_module
from classifiers.langid import BUNDLED_MODEL, LangIdParams, prepare_text
from classifiers.quality_fasttext import (
    DistillParams,
    FastTextQualityScorer,
    _expected_scores,
    normalize,
    score_class,
)
from tests.corpus import dev_sentences_by_language, sample_docs
from tests.test_distill import proxy_score


@functools.lru_cache(maxsize=1)
def _texts() -> tuple[str, ...]:
    docs = [d["text"] for d in sample_docs()]
    for sentences in dev_sentences_by_language(per_language=20).values():
        docs += [" ".join(sentences[i : i + 5]) for i in range(0, 20, 5)]
    return tuple(docs)


def _train(path, texts, **kwargs):
    """A fastText model trained on the texts' normalised lines, the proxy's classes as labels."""
    train_file = path.with_suffix(".txt")
    train_file.write_text(
        "".join(f"__label__{score_class(proxy_score(t))} {normalize(t)}\n" for t in texts), encoding="utf-8"
    )
    fasttext_module().train_supervised(input=str(train_file), verbose=0, thread=1, seed=0, **kwargs).save_model(
        str(path)
    )
    return path


@pytest.fixture(scope="module")
def product_model(tmp_path_factory):
    """Trained as `curate distill` trains (its default knobs, softmax), on real text."""
    p = DistillParams()
    path = tmp_path_factory.mktemp("ft") / "quality.bin"
    return _train(
        path, _texts(), epoch=p.epochs, lr=p.learning_rate, wordNgrams=p.word_ngrams, dim=p.dim,
        minCount=p.min_count, bucket=p.buckets, loss="softmax",
    )  # fmt: skip


def _fasttext(path):
    return fasttext_module().load_model(str(path))


def _as_fasttext(model, line: str) -> list[tuple[str, np.float32]]:
    """fastText's answer for one line, read as its Python wrapper reads it (the line then its end)."""
    labels, probs = model.f.multilinePredict([line + "\n"], -1, 0.0, "strict")
    return [(lab.removeprefix("__label__"), p) for lab, p in zip(labels[0], probs[0])]


def _as_compiled(compiled: FastTextModel, line: str, k: int = -1) -> list[tuple[str, np.float32]]:
    data = np.frombuffer(line.encode("utf-8"), np.uint8)
    outcome, probs, ids, count = compiled.predict_bytes(data, np.array([0, data.size]), k)
    assert outcome[0] in (OK, NO_WORDS)
    return [(compiled.labels[i].removeprefix("__label__"), probs[0, j]) for j, i in enumerate(ids[0, : count[0]])]


def test_the_scorer_gives_fastTexts_scores_and_distributions_on_real_text(product_model):
    texts = _texts()
    assert len(texts) > 700
    scorer = FastTextQualityScorer(product_model)
    assert isinstance(scorer._model, FastTextModel)
    got = scorer.score(list(texts))
    want = _expected_scores(_fasttext(product_model), [normalize(t) for t in texts])
    assert len({len(r.probabilities) for r in got}) == 1 and len(got[0].probabilities) >= 4  # several classes
    for text, r, (score, mass, dist) in zip(texts, got, want):
        # the same floats in the same order (the scores and masses are sums in that order)
        assert (r.score, r.candidate_mass, list(r.probabilities.items())) == (score, mass, list(dist.items())), text[
            :80
        ]


EDGE_LINES = [
    "",
    " ",
    "\t \x0b\x0c\r",
    "the a of",
    "the\ta\x00of\rto and",  # fastText's other separators
    "the of </s> and to",  # fastText stops reading at a `</s>` token
    "</s>",
    "the of\nand to the",  # and at a line break
    "__label__0 the __label__zz of",  # labels, known and unknown, are not words
    "__label__ the",
    "é ü ß ñ ç ø å",  # bytes above 127 (sign-extended in fastText's hash)
    "日 本 語 の 文 章 で す",
    "😀 🎉 𝔘𝔫𝔦 the",  # four-byte UTF-8
    "word " * 3000,
    "x" * 10000,
    "unknownwordxyz anotherunknownqq",
]


def test_fastTexts_reading_of_a_line_rule_by_rule(product_model):
    compiled, model = load_predictor(product_model), _fasttext(product_model)
    lines = EDGE_LINES + [normalize(t) for t in _texts()[:50]]
    for line in lines:
        assert _as_compiled(compiled, line) == _as_fasttext(model, line), repr(line[:60])
    # the input rows themselves: the words (the line's end last), then the bigram buckets
    codes = np.frombuffer("the of </s> and".encode("utf-32-le"), np.uint32)
    rows = fk.line_input(codes, compiled.table, compiled.blob, compiled.offsets, compiled.nwords, compiled.bucket,
                         compiled.ngrams, compiled.minn, compiled.maxn, compiled.prune_mode, compiled.prune,
                         compiled.sub_starts, compiled.subs)  # fmt: skip
    ids = [model.get_word_id(w) for w in ("the", "of", "</s>")]
    assert rows[:3].tolist() == ids and len(rows) == 3 + 2


def test_a_surrogate_is_refused_as_fastText_refuses_it(product_model):
    compiled = load_predictor(product_model)
    for text in ("a\ud800", "\udfff b", "x \udc80\ud83d"):  # lone surrogates as "surrogatepass" writes them
        data = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
        assert compiled.predict_bytes(data, np.array([0, data.size]))[0][0] == SURROGATE
    data = np.frombuffer("\ud55c \U0001f600 \ud7ff".encode(), np.uint8)  # ED lead bytes of other characters
    assert compiled.predict_bytes(data, np.array([0, data.size]))[0][0] in (OK, NO_WORDS)
    scorer = FastTextQualityScorer(product_model)
    with pytest.raises((TypeError, UnicodeError)):  # as the fastText path did (readers quarantine these)
        scorer.score(["a \ud800 b"])


def test_equal_probabilities_come_in_fastTexts_order(product_model, tmp_path):
    # Labels with the same output row have equal probabilities on every line; fastText's heap
    # (libstdc++'s push_heap and sort_heap) decides their order, and the kernel follows it.
    compiled = load_predictor(product_model)
    nlabels, dim = compiled.output.shape
    texts = list(_texts()[:200])
    for tied in ([0, 1], [1, 2, 3], [0, 2, 4], list(range(nlabels))):
        path = tmp_path / f"tied-{len(tied)}-{tied[0]}.bin"
        shutil.copy(product_model, path)
        with open(path, "r+b") as f:
            f.seek(-nlabels * dim * 4, 2)
            rows = np.frombuffer(f.read(), np.float32).reshape(nlabels, dim).copy()
            rows[tied] = rows[tied[0]]
            f.seek(-nlabels * dim * 4, 2)
            f.write(rows.tobytes())
        scorer = FastTextQualityScorer(path)
        assert isinstance(scorer._model, FastTextModel)
        got = scorer.score(texts)
        want = _expected_scores(_fasttext(path), [normalize(t) for t in texts])
        assert [(r.score, r.candidate_mass, list(r.probabilities.items())) for r in got] == [
            (s, m, list(d.items())) for s, m, d in want
        ]


def _same_predictions(path, lines, ks=(1, 5, -1), thresholds=(0.0, 0.1)):
    compiled, model = load_predictor(path), _fasttext(path)
    assert isinstance(compiled, FastTextModel)
    for k in ks:
        for threshold in thresholds:
            got_labels, got_probs = compiled.predict(lines, k, threshold)
            want_labels, want_probs = model.predict(lines, k, threshold)
            assert [tuple(x) for x in got_labels] == [tuple(x) for x in want_labels], (k, threshold)
            for line, a, b in zip(lines, got_probs, want_probs):
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (k, threshold, line[:60])


def test_the_bundled_language_id_model_in_every_language():
    params = LangIdParams()
    lines = [prepare_text(t, params).lower() for t in _texts()]
    lines += [line for line in EDGE_LINES if "\n" not in line]
    _same_predictions(BUNDLED_MODEL, lines)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": "hs"},
        {"loss": "softmax", "minn": 2, "maxn": 4},
        {"loss": "hs", "minn": 3, "maxn": 5, "wordNgrams": 3},
        {"loss": "softmax", "wordNgrams": 1},  # words only: fastText saves 0 buckets
        "quantised",
    ],
    ids=["hierarchical-softmax", "subwords", "hs-subwords-trigrams", "words-only", "quantised-pruned"],
)
def test_other_models_it_computes(kwargs, tmp_path):
    texts = list(_texts()[:400])
    path = tmp_path / "other.bin"
    small = {"dim": 16, "bucket": 20_000, "wordNgrams": 2, "epoch": 5}
    if kwargs == "quantised":
        _train(path, texts, **small)
        model = _fasttext(path)
        model.quantize(input=None, retrain=False, cutoff=2000, qnorm=True, dsub=3)  # a shorter last sub-vector
        path = tmp_path / "other.ftz"
        model.save_model(str(path))
    else:
        _train(path, texts, **{**small, **kwargs})
    _same_predictions(path, [normalize(t) for t in texts[:150]] + [line for line in EDGE_LINES if "\n" not in line])
    if kwargs == {"loss": "softmax", "wordNgrams": 1}:
        assert load_predictor(path).bucket == 0


@pytest.mark.parametrize("loss", ["ova", "ns"])
def test_models_it_does_not_compute_are_predicted_by_fastText(loss, tmp_path):
    # (a quantised output matrix, the other kind it leaves to fastText, needs 256 labels)
    texts = list(_texts()[:300])
    path = _train(tmp_path / "other.bin", texts, loss=loss, dim=16, bucket=20_000, wordNgrams=2, epoch=5)
    assert not isinstance(load_predictor(path), FastTextModel)
    scorer = FastTextQualityScorer(path)
    got = scorer.score(texts[:30])
    want = _expected_scores(_fasttext(path), [normalize(t) for t in texts[:30]])
    assert [(r.score, r.candidate_mass, r.probabilities) for r in got] == list(want)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path, product_model):
    for name, data, says in (
        ("empty.bin", b"", "wrong file format"),  # fastText's own error
        ("text.bin", b"not a model at all\n" * 10, "wrong file format"),
        ("cut.bin", product_model.read_bytes()[:100_000], "not a whole fastText model"),  # fastText: bad_alloc
        ("cut-matrix.bin", product_model.read_bytes()[:-1000], "not a whole fastText model"),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=says):
            load_predictor(tmp_path / name)


def test_both_stages_predict_without_the_fasttext_library(product_model):
    """The language ID and the quality classifier (product models) load no `fasttext` module
    (~50 ms and its memory per process that a run does not use), nor numba (~0.4 s and ~50 MB:
    the kernels are compiled ahead of time)."""
    code = (
        "import sys\n"
        "from classifiers.langid import LanguageIdentifier, LangIdParams\n"
        "from classifiers.quality_fasttext import FastTextQualityScorer\n"
        "ids = LanguageIdentifier(LangIdParams(cascade=False)).predict(['Ceci est une phrase en fran\u00e7ais.'])\n"
        f"scores = FastTextQualityScorer({str(product_model)!r}).score(['A sentence to score.'])\n"
        "assert ids[0][0] == 'fr' and 0 <= scores[0].score <= 5\n"
        "assert 'fasttext' not in sys.modules, 'fasttext imported'\n"
        "assert 'numba' not in sys.modules, 'numba imported (the kernels are compiled ahead of time)'\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=300)
