"""The reader: every bad record becomes one quarantine row with a reason; good ones survive."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline.config import NormalizeParams, Source
from pipeline.sources import FileSpec, infer_format, read_file, split_uid

GOOD = [{"id": f"g{i}", "text": f"good document number {i} with some words"} for i in range(5)]
BAD_LINES = [
    (b"this is not json", "bad_json"),
    (b"[1, 2, 3]", "not_object"),
    (b"42", "not_object"),
    (b'{"id": "m"}', "missing_text"),
    (b'{"id": "n", "text": null}', "missing_text"),
    (b'{"id": "t", "text": 12}', "text_not_string"),
    (b'{"id": "l", "text": ["a"]}', "text_not_string"),
    (b'{"id": "u", "text": "bad \xff\xfe bytes"}', "invalid_utf8"),
    (b'{"id": "s", "text": "lone \\ud800 surrogate"}', "invalid_unicode"),
    (b'{"id": "z", "text": "nul \\u0000 byte"}', "nul_bytes"),
    (b'{"id": {"x": 1}, "text": "id is an object"}', "bad_id"),
]


def lines_blob():
    out = []
    for i, (line, _) in enumerate(BAD_LINES):
        out.append(json.dumps(GOOD[i % len(GOOD)] | {"id": f"g{i}"}).encode())
        out.append(line)
    return b"\n".join(out) + b"\n"


def read_all(path, fmt="jsonl", comp="none", **norm):
    spec = FileSpec(0, "s", str(path), fmt, comp, path.stat().st_size)
    items = list(read_file(spec, Source(name="s", paths=[str(path)]), NormalizeParams(**norm), 64))
    docs = [x for k, x in items if k == "doc"]
    quar = [x for k, x in items if k == "quarantine"]
    return docs, quar


@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_each_bad_record_is_quarantined_with_its_reason(tmp_path, comp):
    blob = lines_blob()
    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[comp]
    path = tmp_path / f"x.jsonl{suffix}"
    path.write_bytes(
        {"none": lambda b: b, "gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress}[comp](blob)
    )
    assert infer_format(str(path)) == ("jsonl", comp)
    docs, quar = read_all(path, comp=comp)
    assert [q["reason"] for q in quar] == [r for _, r in BAD_LINES]
    assert len(docs) == len(BAD_LINES)
    assert all(q["file"] == str(path) and q["byte_offset"] is not None for q in quar)
    # the record index counts every record, good or bad; uids are unique
    assert len({d["uid"] for d in docs}) == len(docs)
    assert sorted([split_uid(d["uid"])[1] for d in docs] + [q["record"] for q in quar]) == list(
        range(2 * len(BAD_LINES))
    )


def test_oversized_record_is_quarantined_without_reading_it_whole(tmp_path):
    path = tmp_path / "big.jsonl"
    big = json.dumps({"id": "big", "text": "x" * 200_000}).encode()
    path.write_bytes(b"\n".join([json.dumps(GOOD[0]).encode(), big, json.dumps(GOOD[1]).encode()]) + b"\n")
    docs, quar = read_all(path, max_record_bytes=1000)
    assert [d["id"] for d in docs] == ["g0", "g1"]
    assert [q["reason"] for q in quar] == ["too_large"] and len(quar[0]["raw"]) == 64


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_truncated_compressed_file_keeps_what_came_before(tmp_path, comp):
    blob = b"".join(json.dumps({"id": f"d{i}", "text": f"document {i} " * 20}).encode() + b"\n" for i in range(3000))
    data = gzip.compress(blob) if comp == "gzip" else zstandard.ZstdCompressor().compress(blob)
    path = tmp_path / ("t.jsonl.gz" if comp == "gzip" else "t.jsonl.zst")
    path.write_bytes(data[: len(data) // 2])
    docs, quar = read_all(path, comp=comp)
    assert 0 < len(docs) < 3000
    assert [q["reason"] for q in quar] == ["truncated_or_corrupt"]
    assert quar[0]["record"] == len(docs) or quar[0]["record"] == len(docs) + 1
    assert [d["id"] for d in docs] == [f"d{i}" for i in range(len(docs))]


def test_zero_byte_file(tmp_path):
    for name, comp in (("e.jsonl", "none"), ("e.jsonl.zst", "zstd"), ("e.jsonl.gz", "gzip")):
        path = tmp_path / name
        path.write_bytes(b"")
        docs, quar = read_all(path, comp=comp)
        assert docs == [] and [q["reason"] for q in quar] == ["empty_file"], name


def test_parquet_text_column_of_wrong_type(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": [1, 2]}), path)
    docs, quar = read_all(path, fmt="parquet")
    assert docs == [] and [q["reason"] for q in quar] == ["text_not_string"] * 2
    path2 = tmp_path / "q.parquet"
    pq.write_table(pa.table({"id": ["a", None], "text": ["hello world", "second doc"]}), path2)
    docs, quar = read_all(path2, fmt="parquet")
    assert [d["text"] for d in docs] == ["hello world", "second doc"] and not quar
    assert docs[1]["id"].startswith("s-")  # missing id: stable id from source, file, offset


def test_corrupt_parquet_is_one_entry(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a"] * 100}), path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    docs, quar = read_all(path, fmt="parquet")
    assert [q["reason"] for q in quar] == ["truncated_or_corrupt"]


def test_generated_ids_are_stable_and_text_is_normalised(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_bytes(b'{"text": "  Cafe\\u0301\\r\\nline  "}\n')
    a, _ = read_all(path)
    b, _ = read_all(path)
    assert a[0]["id"] == b[0]["id"]
    assert a[0]["text"] == "Caf\u00e9\nline"


def test_chunked_reread_yields_the_same_records(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(lines_blob())
    spec = FileSpec(3, "s", str(path), "jsonl", "none", path.stat().st_size)
    src, norm = Source(name="s", paths=[str(path)]), NormalizeParams()
    full = [x for k, x in read_file(spec, src, norm, 0) if k == "doc"]
    parts = [x for a in range(0, 30, 7) for k, x in read_file(spec, src, norm, 0, a, a + 7) if k == "doc"]
    assert [d["uid"] for d in parts] == [d["uid"] for d in full]
    assert all(split_uid(d["uid"])[0] == 3 for d in full)


def test_the_last_pass_decodes_only_the_lines_it_needs(tmp_path):
    """With `need` (the last pass: finalize._needs_text), a JSONL line whose text no row takes
    comes back as ("unread", record) without being decoded; the others as on the first read,
    with the same record numbers, bad lines included."""
    path = tmp_path / "n.jsonl"
    path.write_bytes(b"\n" + lines_blob())  # a blank line first: not a record
    spec = FileSpec(2, "s", str(path), "jsonl", "none", path.stat().st_size)
    src, norm = Source(name="s", paths=[str(path)]), NormalizeParams()
    first = {split_uid(x["uid"])[1] if k == "doc" else x["record"]: (k, x) for k, x in read_file(spec, src, norm, 0)}
    wanted = {rec for rec in first if rec % 3 == 0}
    again = list(read_file(spec, src, norm, 0, 4, 19, need=lambda rec: rec in wanted))
    assert [x for k, x in again if k == "unread"] == [r for r in range(4, 19) if r not in wanted]
    read = {split_uid(x["uid"])[1] if k == "doc" else x["record"]: (k, x) for k, x in again if k != "unread"}
    assert sorted(read) == sorted(r for r in wanted if 4 <= r < 19) and read == {r: first[r] for r in read}


def test_bom_huge_ints_and_surrogates_in_fields_are_per_record(tmp_path):
    """Issue 14: a BOM is not a bad record; a 5,000-digit integer anywhere parses (as an id it is
    refused); a lone surrogate in the id or url is that record's quarantine, not the run's end."""
    path = tmp_path / "h.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + b"\n".join(
            [
                b'{"id": "a", "text": "first record after a BOM"}',
                b'{"id": "b", "text": "an extra field holds a huge int", "n": ' + b"9" * 5000 + b"}",
                b'{"id": ' + b"9" * 5000 + b', "text": "the id is a huge int"}',
                b'{"id": "\\ud800", "text": "the id is a lone surrogate"}',
                b'{"id": "e", "url": "http://x/\\udc00", "text": "the url is a lone surrogate"}',
                b'{"id": "f", "url": [' + b"9" * 5000 + b'], "text": "the url is a list holding a huge int"}',
            ]
        )
        + b"\n"
    )
    spec = FileSpec(0, "s", str(path), "jsonl", "none", path.stat().st_size)
    src = Source(name="s", paths=[str(path)], url_field="url")
    items = list(read_file(spec, src, NormalizeParams(), 64))
    docs = [x for k, x in items if k == "doc"]
    quar = {x["record"]: (x["reason"], x["detail"]) for k, x in items if k == "quarantine"}
    assert [d["id"] for d in docs] == ["a", "b", "f"]
    assert docs[2]["url"] == "[" + "9" * 5000 + "]"
    assert quar[2][0] == "bad_id" and "5000 digits" in quar[2][1]
    assert quar[3][0] == "invalid_unicode" and "'id'" in quar[3][1]
    assert quar[4][0] == "invalid_unicode" and "'url'" in quar[4][1]


def test_max_record_bytes_counts_the_texts_utf8_bytes_not_the_escaped_line(tmp_path):
    path = tmp_path / "cjk.jsonl"
    text = "中" * 3000  # 9,000 UTF-8 bytes; 18,000 bytes escaped as \\u4e2d
    path.write_bytes(
        json.dumps({"id": "in", "text": text}).encode()
        + b"\n"
        + json.dumps({"id": "out", "text": text + "中" * 400}).encode()
        + b"\n"
    )
    docs, quar = read_all(path, max_record_bytes=10_000)
    assert [d["id"] for d in docs] == ["in"]
    assert [q["reason"] for q in quar] == ["too_large"] and "text is 10200 bytes" in quar[0]["detail"]


def test_parquet_without_ids_gets_distinct_stable_ids_per_row(tmp_path):
    path = tmp_path / "noid.parquet"
    pq.write_table(pa.table({"text": ["same text"] * 300}), path)
    a, _ = read_all(path, fmt="parquet")
    b, _ = read_all(path, fmt="parquet")
    assert len({d["id"] for d in a}) == 300 and [d["id"] for d in a] == [d["id"] for d in b]
