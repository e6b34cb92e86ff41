"""configs/llama3.yaml on a real multilingual corpus (the dev set's languages as documents,
English help pages, Go and Python code): the achieved token shares, computed from the Parquet
files themselves, are within 0.5 points of the targets."""
from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.dataset as ds
import pytest
import yaml

from bench.data import dev_sentences_by_language, iter_bench_corpus, long_documents
from pipeline.cli import main
from pipeline.config import DEFAULT_CONFIG
from tests.corpus import write_jsonl

pytestmark = pytest.mark.slow
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def llama3_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("mix")
    multi = [{"id": f"dev-{lang}-{i}", "text": text}
             for i, (lang, text) in enumerate(long_documents(dev_sentences_by_language(), min_words=150))
             if lang != "en"]
    english, code = [], []
    for rec in iter_bench_corpus():
        if rec["category"] == "b_english":
            english.append({"id": rec["id"], "text": rec["text"]})
        elif rec["category"] == "c_code" and len(code) < 1500:
            code.append({"id": rec["id"], "text": rec["text"], "path": rec["id"]})
    write_jsonl(d / "multi.jsonl.zst", multi, compress=True)
    write_jsonl(d / "english.jsonl.zst", english, compress=True)
    write_jsonl(d / "code.jsonl.zst", code, compress=True)
    cfg = yaml.safe_load((DEFAULT_CONFIG.parent / "llama3.yaml").read_text())
    cfg["sources"] = [
        {"name": "text", "paths": [str(d / "multi.jsonl.zst"), str(d / "english.jsonl.zst")]},
        {"name": "code", "paths": [str(d / "code.jsonl.zst")], "kind": "code", "path_field": "path"},
    ]
    cfg["output"]["path"] = str(d / "out")
    (d / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(d / "run.yaml")]) == 0
    return d / "out", cfg


def test_llama3_shares_read_back_from_parquet(llama3_run):
    out, cfg = llama3_run
    m = json.loads((out / "manifest.json").read_text())
    assert m["ledger"]["balanced"]
    t = ds.dataset(out / "mixture", format="parquet", partitioning="hive").to_table(
        columns=["bucket", "n_tokens", "repeats"])
    tokens: dict[str, int] = defaultdict(int)
    for b, n, r in zip(*(t.column(c).to_pylist() for c in ("bucket", "n_tokens", "repeats"))):
        tokens[b] += n * r
    total = sum(tokens.values())
    share = {b: v / total for b, v in tokens.items()}
    targets = cfg["stages"]["mixture"]["targets"]
    multilingual = sum(v for b, v in share.items() if b not in ("en", "code"))
    assert share["code"] == pytest.approx(targets["code"], abs=TOLERANCE)
    assert multilingual == pytest.approx(targets["multilingual"], abs=TOLERANCE)
    assert share["en"] == pytest.approx(1 - targets["code"] - targets["multilingual"], abs=TOLERANCE)
    langs = [b for b in share if b not in ("en", "code")]
    assert len(langs) >= 30, sorted(share)
    for b, v in m["buckets"].items():  # every bucket's own target, against the Parquet figures
        if v.get("target_share"):
            assert share.get(b, 0.0) == pytest.approx(v["target_share"], abs=TOLERANCE), b
    assert not m["mixture"]["unmet"], m["mixture"]["unmet"]
    # the manifest agrees with the files
    assert {b: v["tokens"] for b, v in m["buckets"].items() if v["tokens"]} == dict(tokens)
    assert max(t.column("repeats").to_pylist()) <= cfg["stages"]["mixture"]["max_repeats"]

