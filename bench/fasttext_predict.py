"""fastText predict, compiled (classifiers/fasttext_model.py) vs fastText's own, for the two models
a run predicts with: the bundled lid.176.ftz on the language-ID stage's input (the prepared,
lower-cased 1,000 characters, k=5) and the race's proxy-trained quality classifier
(bench/proxy_quality.py; product-default DistillParams) on its input (the normalised first 1,024
words, every label). Documents: the first --docs of the race corpus ($CURATE_DATA_DIR/bench-corpus),
in batches of the pipeline's batch size (runner.batch_size), as the stages call the models.
Rates are documents per CPU-second (= per core), the two predictors interleaved, best of
--repeats; the outputs are compared label for label and bit for bit.

    python -m bench.fasttext_predict            # writes bench/results/fasttext.md
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_best(repeats: int, fns: dict) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.process_time()
            fn()
            times[name].append(time.process_time() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=11_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fasttext.md")
    args = ap.parse_args(argv)

    from bench.data import BENCH_CORPUS, iter_bench_corpus
    from bench.proxy_quality import ensure_model
    from classifiers.fasttext_model import FastTextModel, load_predictor
    from classifiers.fasttext_quiet import load_model
    from classifiers.langid import BUNDLED_MODEL, LangIdParams, prepare_text
    from classifiers.quality_fasttext import FastTextQualityScorer, _expected_scores, normalize
    from pipeline.config import RunnerConfig

    docs = [d["text"] for d in itertools.islice(iter_bench_corpus(BENCH_CORPUS), args.docs)]
    params = LangIdParams()
    lid_lines = [prepare_text(t, params).lower() for t in docs]
    quality = ensure_model()
    lid_c, lid_f = load_predictor(BUNDLED_MODEL), load_model(BUNDLED_MODEL)
    assert isinstance(lid_c, FastTextModel)
    scorer, quality_f = FastTextQualityScorer(quality), load_model(quality)
    assert isinstance(scorer._model, FastTextModel)

    a, b = lid_c.predict(lid_lines, k=params.top_k), lid_f.predict(lid_lines, k=params.top_k)
    lid_same = [tuple(x) for x in a[0]] == [tuple(x) for x in b[0]] and all(
        x.tobytes() == y.tobytes() for x, y in zip(a[1], b[1])
    )
    got = scorer.score(docs)
    want = _expected_scores(quality_f, [normalize(t) for t in docs])
    quality_same = [(r.score, r.candidate_mass, list(r.probabilities.items())) for r in got] == [
        (s, m, list(d.items())) for s, m, d in want
    ]

    size = RunnerConfig().batch_size

    def batched(fn, items: list) -> list:
        return [fn(items[i : i + size]) for i in range(0, len(items), size)]

    times = _cpu_best(
        args.repeats,
        {
            "lid compiled": lambda: batched(lambda b: lid_c.predict(b, k=params.top_k), lid_lines),
            "lid fastText": lambda: batched(lambda b: lid_f.predict(b, k=params.top_k), lid_lines),
            "quality compiled": lambda: batched(scorer.score, docs),
            "quality fastText": lambda: batched(lambda b: _expected_scores(quality_f, [normalize(t) for t in b]), docs),
        },
    )
    n = len(docs)
    rows = [
        f"| {name} | {n / min(ts):,.0f} | {1e6 * min(ts) / n:.1f} | {', '.join(f'{t:.2f}' for t in ts)} |"
        for name, ts in times.items()
    ]
    text = "\n".join(
        [
            "# fastText predict: compiled vs fastText",
            "",
            f"`python -m bench.fasttext_predict --docs {args.docs} --repeats {args.repeats}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}; "
            f"{n:,} documents of the race corpus, in batches of {size} (the pipeline's `runner.batch_size`).",
            "Language ID: lid.176.ftz on the stage's prepared text, k=5 (predict alone). Quality: "
            "`FastTextQualityScorer.score` (normalising the first 1,024 words included; fastText's "
            "row: the same normalisation, then fastText's predict).",
            "",
            "| what | docs per CPU-second | us per doc | CPU seconds, all rounds |",
            "| --- | ---: | ---: | --- |",
            *rows,
            "",
            f"Identical outputs (labels, their order, every probability's bits): language ID {lid_same}, "
            f"quality {quality_same}.",
            "",
        ]
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if lid_same and quality_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
