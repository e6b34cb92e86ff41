"""The quality stage end to end with the real vLLM engine on the CPU and the tiny random Llama
(its verdicts mean nothing; the code path is the real one): `curate judge` labels a
stratified sample (a rerun skips what is labelled), `curate distill` trains the fastText
classifier and reports agreement, and `curate run` scores documents with either."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from classifiers.judge import read_labels
from pipeline.cli import main
from tests.corpus import bench_docs, write_jsonl

pytest.importorskip("vllm")
pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def judge_sets(model_dir) -> list[str]:
    sets = {"model": str(model_dir), "rubric": "fineweb_edu", "max_doc_tokens": 256, "batch_size": 16,
            "enforce_eager": "true", "kv_cache_memory_bytes": 64 << 20}
    return [a for k, v in sets.items() for a in ("--set", f"stages.quality.{k}={v}")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    docs = [{"id": x["id"], "text": x["text"]} for x in bench_docs(150)
            if x["category"] in ("a_multilingual", "b_english")]
    return write_jsonl(d / "docs.jsonl", docs), len(docs)


@pytest.fixture(scope="module")
def labels(corpus, tiny_llama_dir, tmp_path_factory):
    path, _ = corpus
    out = tmp_path_factory.mktemp("labels") / "labels"
    argv = ["judge", "--input", str(path), "--sample", "120", "--output", str(out), *judge_sets(tiny_llama_dir)]
    assert main(argv) == 0
    return out, argv


def test_judge_labels_a_stratified_sample_and_a_rerun_skips_it(labels, capsys):
    out, argv = labels
    rows = read_labels(out)
    assert 60 <= len(rows) <= 120
    assert len({r["bucket"] for r in rows}) >= 10  # stratified over many languages
    assert all(r["rubric"] == "fineweb_edu@v1" or r["rubric"].startswith("fineweb_edu@") for r in rows)
    assert all(r["score"] is None or 0.0 <= r["score"] <= 5.0 for r in rows)
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 judged" in capsys.readouterr().out
    assert len(read_labels(out)) == len(rows)


def test_distill_then_run_with_the_classifier(labels, corpus, tmp_path, capsys):
    out, _ = labels
    model = tmp_path / "quality.bin"
    assert main(["distill", "--labels", str(out), "--output", str(model),
                 "--set", "distill.holdout_fraction=0.3"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy at threshold" in printed and model.exists()
    report = json.loads((tmp_path / "quality.bin.report.json").read_text())
    assert report["n_holdout"] > 0
    path, n = corpus
    res = tmp_path / "run"
    assert main(["run", "--input", str(path), "--output", str(res), "--set", "mode=annotate",
                 "--set", "stages.quality.enabled=true", "--set", f"stages.quality.model_path={model}"]) == 0
    t = pq.read_table(res / "annotated")
    scored = [s for s, r in zip(t.column("quality_score").to_pylist(), t.column("drop_rule").to_pylist())
              if r is None or r.startswith(("quality/", "exact_dedup/", "minhash_dedup/", "mixture/"))]
    assert scored and all(s is not None and 0.0 <= s <= 5.0 for s in scored)


def test_run_with_the_llama_judge_through_beam(corpus, tiny_llama_dir, tmp_path):
    path, n = corpus
    res = tmp_path / "judged"
    assert main(["run", "--input", str(path), "--output", str(res),
                 "--set", "stages.quality.enabled=true", "--set", "stages.quality.classifier=llama_judge",
                 "--set", "stages.quality.threshold.default=0", *judge_sets(tiny_llama_dir)]) == 0
    m = json.loads((res / "manifest.json").read_text())
    assert m["ledger"]["balanced"] and m["stages"]["quality"]["enabled"]
    t = pq.read_table(res / "mixture")
    assert t.num_rows > 0 and t.column("quality_score").null_count == 0
