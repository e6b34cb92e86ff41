"""A distilled fastText quality model for the race, trained on PROXY labels.

`curate distill` (judge labels -> fastText) is the product's way to get this model; the race
needs one now and without a GPU, so it trains the same classifier with the same function
(`classifiers.quality_fasttext.train`, default DistillParams) on labels that stand in for the
judge's: a sample of the quick benchmark corpus scored by our heuristic filters, 4.0 for a
document that passes every rule, 1.0 for one that fails any (language from the corpus's own
`lang` column). What the race measures is the classifier's cost on every surviving document,
which does not depend on where its labels came from; its verdicts agree with the heuristics by
construction, so it keeps most of what they keep.

    python -m bench.proxy_quality          # writes bench/.cache/race-quality-proxy.bin (+ .report.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.data import BENCH_CORPUS, iter_bench_corpus
from classifiers.heuristics import evaluate
from classifiers.quality_fasttext import REPORT_SUFFIX, DistillParams, train
from classifiers.text import stable_hash64

CACHE = Path(__file__).resolve().parent / ".cache"
MODEL = CACHE / "race-quality-proxy.bin"  # (not quality-proxy.bin: another tool writes that)
SAMPLE_SHARE = 0.4  # of the quick corpus (about 6,500 documents)
PASS_SCORE, FAIL_SCORE = 4.0, 1.0


def proxy_labels(corpus: Path = BENCH_CORPUS, share: float = SAMPLE_SHARE) -> list[dict]:
    rows = []
    for rec in iter_bench_corpus(corpus):
        if stable_hash64(f"proxy:{rec['id']}") / 2**64 >= share:
            continue
        lang = rec.get("lang") or ""
        res = evaluate(rec["text"], lang if len(lang) <= 3 else "", "text")
        bucket = "code" if rec.get("category") == "c_code" else ("en" if lang == "en" else lang)
        rows.append(
            {
                "id": rec["id"],
                "text": rec["text"],
                "bucket": bucket,
                "score": PASS_SCORE if res.keep else FAIL_SCORE,
                "rubric": "proxy:heuristics@v1",
                "model": "heuristics",
            }
        )
    return rows


def ensure_model(path: Path = MODEL) -> Path:
    """Train the proxy model unless it is cached."""
    if path.is_file() and Path(str(path) + REPORT_SUFFIX).is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    report = train(proxy_labels(), path, params=DistillParams())
    print(
        f"proxy quality model: {report.n_train} train / {report.n_holdout} held out, agreement with the "
        f"proxy on held-out {report.holdout.accuracy_at_threshold:.3f}, {report.train_seconds:.1f} s -> {path}",
        file=sys.stderr,
    )
    return path


def main() -> int:
    path = ensure_model()
    report = json.loads(Path(str(path) + REPORT_SUFFIX).read_text())
    print(
        json.dumps(
            {k: report[k] for k in ("model_path", "n_train", "n_holdout", "class_counts", "holdout", "train_seconds")},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
