"""Issue 8's bad-input corpus, end to end: every kind of broken record beside good ones, in
every format it applies to; the run goes on, every record is accounted for with its reason."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline.cli import main
from tests.corpus import bench_docs

pytestmark = pytest.mark.slow

# (raw JSONL line, quarantine reason)
BAD_LINES = [
    (b"this is not json", "bad_json"),
    (b"[1, 2, 3]", "not_object"),
    (b"3.14", "not_object"),
    (b'{"id": "m"}', "missing_text"),
    (b'{"id": "n", "text": null}', "missing_text"),
    (b'{"id": "t", "text": 12}', "text_not_string"),
    (b'{"id": "l", "text": ["a", "b"]}', "text_not_string"),
    (b'{"id": "u", "text": "bad \xff\xfe bytes"}', "invalid_utf8"),
    (b'{"id": "s", "text": "lone \\ud800 surrogate"}', "invalid_unicode"),
    (b'{"id": "z", "text": "nul \\u0000 byte"}', "nul_bytes"),
]


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = [x for x in bench_docs(40) if x["category"] == "b_english"][:30]
    lines = [json.dumps({"id": x["id"], "text": x["text"]}).encode() for x in good]
    expected: dict[str, int] = {}

    def add(reason, n=1):
        expected[reason] = expected.get(reason, 0) + n

    # 1. plain jsonl: every bad line, interleaved with good ones
    mixed = []
    for i, (bad, reason) in enumerate(BAD_LINES):
        mixed += [lines[i], bad]
        add(reason)
    (d / "mixed.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
    # 2. gzip and zstd copies of a few bad lines (same reasons through the codecs), distinct ids
    for codec, comp in (("gz", gzip.compress), ("zst", zstandard.ZstdCompressor().compress)):
        blob = (
            b"\n".join(
                [lines[10].replace(b'"id": "', f'"id": "{codec}-'.encode(), 1), BAD_LINES[0][0], BAD_LINES[7][0]]
            )
            + b"\n"
        )
        (d / f"codec.jsonl.{codec}").write_bytes(comp(blob))
        add("bad_json")
        add("invalid_utf8")
    # 3. truncated zstd and gzip files: records before the damage are kept, the rest is one entry
    # (several hundred KB, so that the damage is past the first compressed blocks)
    for codec, comp in (("gz", gzip.compress), ("zst", zstandard.ZstdCompressor(level=1).compress)):
        data = comp(
            b"".join(
                json.dumps({"id": f"trunc-{codec}-{i}", "text": good[12 + i % 10]["text"]}).encode() + b"\n"
                for i in range(300)
            )
        )
        (d / f"trunc.jsonl.{codec}").write_bytes(data[:-300])
        add("truncated_or_corrupt")
    # 4. zero-byte files
    (d / "empty.jsonl").write_bytes(b"")
    (d / "empty.jsonl.zst").write_bytes(b"")
    add("empty_file", 2)
    # 5. Parquet whose text column has the wrong type (one entry per row), and a good Parquet file
    pq.write_table(pa.table({"id": ["p1", "p2", "p3"], "text": [1, 2, 3]}), d / "wrongtype.parquet")
    add("text_not_string", 3)
    pq.write_table(
        pa.table({"id": [x["id"] + "-pq" for x in good[22:30]], "text": [x["text"] for x in good[22:30]]}),
        d / "good.parquet",
    )
    # 6. an empty document (readable: rejected by normalize, not quarantined)
    (d / "blank.jsonl").write_bytes(b'{"id": "blank", "text": "   \\n  "}\n')
    # 7. a 50 MB single document: read, bounded work in LID / heuristics / MinHash
    big_text = ("All work and no play makes a dull document. " * 1_200_000)[:50_000_000]
    (d / "huge.jsonl").write_bytes(json.dumps({"id": "huge", "text": big_text}).encode() + b"\n")
    return d, expected


def test_bad_input_corpus_exact_counts(bad_corpus, tmp_path):
    d, expected = bad_corpus
    out = tmp_path / "out"
    rc = main(
        [
            "run",
            "--input",
            str(d / "*"),
            "--output",
            str(out),
            "--set",
            "stages.mixture.enabled=false",
            "--set",
            "output.rejected_text=false",
        ]
    )
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["quarantined"] == dict(sorted(expected.items()))
    led = m["ledger"]
    assert led["balanced"] and led["quarantined"] == sum(expected.values())
    assert led["input"] == led["kept"] + led["rejected"] + led["quarantined"]
    quar = pq.read_table(out / "quarantine").to_pylist()
    assert len(quar) == led["quarantined"]
    assert all(q["file"] and q["reason"] for q in quar)
    trunc = [q for q in quar if q["reason"] == "truncated_or_corrupt"]
    assert all(q["byte_offset"] is not None and q["byte_offset"] > 0 for q in trunc)
    assert m["rejected"].get("normalize/empty") == 1
    # records before the damage were read and kept or rejected like any other
    kept_or_rejected = led["kept"] + led["rejected"]
    assert kept_or_rejected >= 30 + 2 + 8 + 1 + 1  # good jsonl, codec files, parquet, blank, huge
    rej = {r["id"]: r["rule"] for r in pq.read_table(out / "rejected").to_pylist()}
    kept = set(pq.read_table(out / "mixture", columns=["id"]).column("id").to_pylist())
    for codec in ("gz", "zst"):
        seen = {i for i in set(rej) | kept if i.startswith(f"trunc-{codec}-")}
        assert 100 < len(seen) < 300, (codec, len(seen))
    # the 50 MB document went through every stage (a repetitive text: heuristics reject it)
    assert "huge" in rej and rej["huge"].startswith("heuristics/")
