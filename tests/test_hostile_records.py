"""Issue 14, part B: one record never stops a run. Hostile values in every field of a record, in
JSONL (plain, gzip, zstd) and Parquet, through the real command line: exit 0, a balanced ledger,
and every input record found in exactly one place (mixture, rejected/ with its rule,
quarantine/ with its reason). Also: a UTF-8 BOM, Parquet without an id column,
max_record_bytes against the text (not its escaped JSON line), ids shared across files, and
`curate inspect` recounting the ledger from the shards' rows."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline import inspect_cmd, schema
from pipeline.cli import main
from tests.corpus import bench_docs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
MAX_RECORD_BYTES = 100_000

# Hostile values, as raw JSON bytes (some are not expressible through json.dumps).
DEEP = 20_000
HOSTILE: dict[str, bytes] = {
    "huge_int": b"9" * 5000,
    "huge_neg_int": b"-" + b"1" * 4400,
    "int_at_limit": b"9" * 4300,
    "zero": b"0",
    "big_float": b"1e400",
    "long_float": b"1." + b"3" * 5000,
    "nan": b"NaN",
    "inf": b"Infinity",
    "neg_inf": b"-Infinity",
    "float": b"3.5",
    "true": b"true",
    "false": b"false",
    "null": b"null",
    "empty_object": b"{}",
    "empty_array": b"[]",
    "object": b'{"x": 1, "y": [1, 2]}',
    "array": b'[1, "a", null]',
    "empty_string": b'""',
    "space": b'" "',
    "lone_high_surrogate": b'"\\ud800"',
    "lone_low_surrogate": b'"x\\udfff y"',
    "surrogate_pair": b'"\\ud83d\\ude00 emoji"',
    "escaped_nul": b'"a\\u0000b"',
    "raw_nul": b'"a\x00b"',  # a raw control character inside a JSON string: not JSON
    "invalid_utf8": b'"\xff\xfe"',
    "overlong_utf8": b'"\xc0\xaf"',
    "cesu_surrogate": b'"\xed\xa0\x80"',
    "deep_array": b"[" * DEEP + b"]" * DEEP,
    "deep_object": b'{"a": ' * DEEP + b"1" + b"}" * DEEP,
    "nested_ok": b"[" * 200 + b"1" + b"]" * 200,
    "nested_hostile": b'{"a": [' + b"9" * 5000 + b', "\\ud800", NaN, {"b": "\\u0000"}]}',
    "long_string": b'"' + b"y" * (MAX_RECORD_BYTES + 10) + b'"',
    "bom_in_string": b'"\xef\xbb\xbfx"',
    "control_chars": b'"\\u0001\\u001f\\u007f\\u0085"',
    "bidi_override": b'"\\u202e evil \\u202d"',
    "combining": b'"a' + b"\\u0301" * 5000 + b'"',
    "noncharacters": b'"\\uffff\\ufffe\\ufdd0"',
    "line_separators": b'"\\u2028\\u2029"',
}
FIELDS = ("id", "text", "url", "ts", "path", "meta", "meta_nested")
STRING_LIKE = {
    "empty_string",
    "space",
    "surrogate_pair",
    "escaped_nul",
    "long_string",
    "bom_in_string",
    "control_chars",
    "bidi_override",
    "combining",
    "noncharacters",
    "line_separators",
}
NON_STRING = (
    set(HOSTILE)
    - STRING_LIKE
    - {
        "lone_high_surrogate",
        "lone_low_surrogate",
        "raw_nul",
        "invalid_utf8",
        "overlong_utf8",
        "cesu_surrogate",
        "deep_array",
        "deep_object",
        "null",
    }
)


def expected_reason(field: str, value: str) -> str | None:
    """The quarantine reason a record with `value` in `field` must get, or None (read: it is then
    kept or rejected by a stage, with a rule)."""
    if value in ("invalid_utf8", "overlong_utf8", "cesu_surrogate"):
        return "invalid_utf8"
    if value in ("raw_nul", "deep_array", "deep_object"):
        return "bad_json"
    if field == "text":
        if value == "null":
            return "missing_text"
        if value in NON_STRING:
            return "text_not_string"
        return {
            "lone_high_surrogate": "invalid_unicode",
            "lone_low_surrogate": "invalid_unicode",
            "escaped_nul": "nul_bytes",
            "long_string": "too_large",
        }.get(value)
    if field == "id":
        if value in ("lone_high_surrogate", "lone_low_surrogate"):
            return "invalid_unicode"
        if value in NON_STRING - {"int_at_limit", "zero"}:
            return "bad_id"
        return None
    if field in ("url", "ts", "path") and value in ("lone_high_surrogate", "lone_low_surrogate"):
        return "invalid_unicode"
    return None


def _texts() -> list[str]:
    return [x["text"] for x in bench_docs(60) if x["category"] == "b_english" and not x.get("dup_of")]


def fuzz_lines(texts: list[str]) -> list[tuple[bytes, str, str]]:
    """(JSONL line, field, value name): a good record with one field replaced by a hostile value.
    Every record's text starts with `record <n>:` and its id is `r<n>`, so that whichever field is
    hostile, the other one names the record in the output."""
    out = []
    for field in FIELDS:
        for name, raw in HOSTILE.items():
            n = len(out)
            fields = {
                "id": json.dumps(f"r{n}").encode(),
                "text": json.dumps(f"record {n}: {texts[n % len(texts)]}").encode(),
                "url": json.dumps(f"https://example.com/{n}").encode(),
                "ts": b'"2024-05-01T00:00:00Z"',
                "path": json.dumps(f"src/module_{n}.py").encode(),
                "meta": b'"fine"',
                "meta_nested": b'{"k": [1, 2]}',
            }
            fields[field] = b'{"deep": [' + raw + b"]}" if field == "meta_nested" else raw
            line = b"{" + b", ".join(b'"%s": %s' % (k.encode(), v) for k, v in fields.items()) + b"}"
            out.append((line, field, name))
    # whole-record oddities: duplicate keys (the last wins), a key with a lone surrogate
    n = len(out)
    out.append(
        (
            b'{"id": "r%d", "text": 5, "text": "record %d: duplicate keys, the last one wins"}' % (n, n),
            "record",
            "duplicate_keys",
        )
    )
    n = len(out)
    out.append(
        (
            b'{"id": "r%d", "\\ud800": 1, "text": "record %d: a key with a lone surrogate"}' % (n, n),
            "record",
            "surrogate_key",
        )
    )
    return out


def parquet_files(d: Path) -> dict[str, tuple[pa.Table, list[str | None]]]:
    """Parquet files with hostile columns: name -> (table, expected reason per row)."""

    def text(tag, i):
        return f"record {tag}-{i}: a plain sentence of English words about the weather and the sea."

    def ids(tag, k):
        return [f"{tag}-{i}" for i in range(k)]

    bad_utf8 = pa.array(
        [text("u", 0).encode(), b"bad \xff byte", b"\xed\xa0\x80", text("u", 3).encode()], pa.binary()
    ).view(pa.string())
    files = {
        "float_id": (
            pa.table({"id": [1.5, float("nan"), float("inf")], "text": [text("f", i) for i in range(3)]}),
            ["bad_id"] * 3,
        ),
        "binary_id": (
            pa.table({"id": pa.array([b"\x00\xff", b"x"], pa.binary()), "text": [text("b", i) for i in range(2)]}),
            ["bad_id"] * 2,
        ),
        "list_id": (pa.table({"id": [[1, 2], []], "text": [text("l", i) for i in range(2)]}), ["bad_id"] * 2),
        "decimal_id": (
            pa.table({"id": pa.array([Decimal("9" * 38)], pa.decimal128(38, 0)), "text": [text("d", 0)]}),
            ["bad_id"],
        ),
        "uint_id": (
            pa.table({"id": pa.array([2**64 - 1, 0], pa.uint64()), "text": [text("n", i) for i in range(2)]}),
            [None, None],
        ),
        "invalid_utf8_text": (
            pa.table({"id": ids("u", 4), "text": bad_utf8}),
            [None, "invalid_utf8", "invalid_utf8", None],
        ),
        "timestamp_out_of_range": (
            pa.table(
                {
                    "id": ids("t", 3),
                    "text": [text("t", i) for i in range(3)],
                    "ts": pa.array([0, 253402300800 * 1000 * 1000, 1_700_000_000 * 1000 * 1000], pa.timestamp("us")),
                }
            ),
            [None, "bad_value", None],
        ),
        "text_values": (
            pa.table(
                {"id": ids("v", 5), "text": ["nul \x00 inside", "y" * (MAX_RECORD_BYTES + 1), None, "", text("v", 4)]}
            ),
            ["nul_bytes", "too_large", "missing_text", None, None],
        ),
        "struct_url": (
            pa.table(
                {"id": ids("s", 2), "text": [text("s", i) for i in range(2)], "url": [{"host": "a", "port": 1}, None]}
            ),
            [None, None],
        ),
        "text_int": (pa.table({"id": ids("i", 2), "text": [1, 2]}), ["text_not_string"] * 2),
    }
    for name, (table, _) in files.items():
        pq.write_table(table, d / f"{name}.parquet")
    return files


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    lines = fuzz_lines(_texts())
    blob = b"\n".join(line for line, _, _ in lines) + b"\n"
    blob = b"\xef\xbb\xbf" + blob  # a BOM at the start of the file, too
    (d / "plain.jsonl").write_bytes(blob)
    (d / "code.jsonl.gz").write_bytes(gzip.compress(blob))
    (d / "zst.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(blob))
    # a file name that is not valid UTF-8, holding a quarantined record beside a good one
    bad_name = os.fsencode(str(d)) + b"/name-\xff\xfe.jsonl"
    with open(bad_name, "wb") as f:
        f.write(b'{"id": "nm-0", "text": "record nm-0: a good document in a badly named file"}\nnot json\n')
    (d / "pq").mkdir()
    pfiles = parquet_files(d / "pq")
    (d / "run.yaml").write_text(f"""
sources:
  - {{name: plain, paths: ["{d}/plain.jsonl"], url_field: url, timestamp_field: ts, path_field: path}}
  - {{name: code, paths: ["{d}/code.jsonl.gz"], kind: code, url_field: url, timestamp_field: ts, path_field: path}}
  - {{name: zst, paths: ["{d}/zst.jsonl.zst"], url_field: url, timestamp_field: ts, path_field: path}}
  - {{name: badname, paths: ["{d}/name-*.jsonl"]}}
  - {{name: pq, paths: ["{d}/pq/*.parquet"], url_field: url, timestamp_field: ts}}
stages:
  normalize: {{max_record_bytes: {MAX_RECORD_BYTES}}}
  mixture: {{enabled: false}}
output: {{rejected_text: true}}
""")
    out = tmp_path_factory.mktemp("hostile-out") / "out"
    proc = _run(["run", str(d / "run.yaml"), "--output", str(out)])
    return d, out, lines, pfiles, proc, os.fsdecode(bad_name)


def test_fuzzed_records_never_stop_the_run(fuzz_run):
    d, out, lines, pfiles, proc, _ = fuzz_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    led = m["ledger"]
    n_input = 3 * len(lines) + 2 + sum(t.num_rows for t, _ in pfiles.values())
    assert led["balanced"] and led["input"] == n_input
    assert led["input"] == led["kept"] + led["rejected"] + led["quarantined"]


def test_every_fuzzed_record_is_in_exactly_one_place_with_its_reason(fuzz_run):
    d, out, lines, pfiles, proc, bad_name = fuzz_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = _rows(out / "mixture")
    rejected = _rows(out / "rejected")
    quarantined = _rows(out / "quarantine")
    assert all(r["rule"] for r in rejected) and all(q["reason"] and q["detail"] for q in quarantined)
    m = json.loads((out / "manifest.json").read_text())
    assert m["ledger"]["quarantined"] == len(quarantined) and m["ledger"]["rejected"] == len(rejected)
    assert m["ledger"]["kept"] == len(kept)

    # JSONL sources: line n is record n (the BOM before line 0 does not count)
    where: dict[tuple[str, int], list[str]] = {}
    for q in quarantined:
        if q["source"] in ("plain", "code", "zst"):
            where.setdefault((q["source"], q["record"]), []).append(f"quarantine:{q['reason']}")
    for kind, rows in (("kept", kept), ("rejected", rejected)):
        for r in rows:
            if r["source"] not in ("plain", "code", "zst"):
                continue
            if r["id"].startswith("r") and r["id"][1:].isdigit():
                n = int(r["id"][1:])
            else:  # the id was the hostile field: the text names the record
                n = int(r["text"].split(":", 1)[0].removeprefix("record "))
            where.setdefault((r["source"], n), []).append(kind)
    for src in ("plain", "code", "zst"):
        for n, (_line, field, value) in enumerate(lines):
            places = where.get((src, n), [])
            assert len(places) == 1, (src, n, field, value, places)
            want = expected_reason(field, value)
            got = places[0].removeprefix("quarantine:") if places[0].startswith("quarantine:") else None
            assert got == want, (src, field, value, places)
    assert len(where) == 3 * len(lines)

    # the file whose name is not UTF-8: its quarantine row names it readably, its good record is read
    bad = [q for q in quarantined if q["source"] == "badname"]
    assert [(q["reason"], q["record"]) for q in bad] == [("bad_json", 1)]
    assert bad[0]["file"] == bad_name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    assert "\\xff\\xfe" in bad[0]["file"]
    assert [r["id"] for r in kept + rejected if r["source"] == "badname"] == ["nm-0"]

    # Parquet: each row where its file's expectation says
    pq_quar = {(Path(q["file"]).stem, q["record"]): q["reason"] for q in quarantined if q["source"] == "pq"}
    pq_docs = [r for r in kept + rejected if r["source"] == "pq"]
    for name, (_table, reasons) in pfiles.items():
        for i, reason in enumerate(reasons):
            assert pq_quar.get((name, i)) == reason, (name, i, pq_quar.get((name, i)))
    n_docs = sum(1 for _, reasons in pfiles.values() for r in reasons if r is None)
    assert len(pq_docs) == n_docs == len({r["id"] for r in pq_docs})
    assert len(pq_quar) == sum(1 for _, reasons in pfiles.values() for r in reasons if r is not None)
    assert {"18446744073709551615", "0"} <= {r["id"] for r in pq_docs}


def test_the_fuzzed_output_passes_inspect(fuzz_run, capsys):
    _, out, _, _, proc, _ = fuzz_run
    assert proc.returncode == 0
    capsys.readouterr()
    rc = inspect_cmd.main([str(out), "--verify"])
    o, err = capsys.readouterr()
    assert rc == 0, err
    assert "sha256 checksums verified" in o


# ------------------------------------------------------------------ BOM, Parquet ids, record size, shared ids

CJK = "中文文本的质量评估需要考虑很多因素，例如语言是否通顺，内容是否有信息量。"


@pytest.fixture(scope="module")
def assorted_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("assorted")
    texts = _texts()
    # 5. a UTF-8 BOM at the start of a file (plain, gzip, zstd)
    for name, comp in (
        ("bom.jsonl", lambda b: b),
        ("bom.jsonl.gz", gzip.compress),
        ("bom.jsonl.zst", zstandard.ZstdCompressor().compress),
    ):
        recs = [{"id": f"{name}-{i}", "text": texts[i]} for i in range(3)]
        blob = b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\n" for r in recs)
        (d / name).write_bytes(comp(blob))
    # 6. Parquet without an id column
    pq.write_table(pa.table({"text": [f"row {i}: {texts[i % len(texts)]}" for i in range(1000)]}), d / "noid.parquet")
    # 7. ~0.9 MB of CJK text under a 1 MB limit, escaped (\uXXXX, 6 bytes per char) and raw; 1.1 MB over it
    big = CJK * (900_000 // len(CJK.encode()))
    over = CJK * (1_100_000 // len(CJK.encode()))
    with open(d / "cjk.jsonl", "wb") as f:
        f.write(json.dumps({"id": "cjk-escaped", "text": big}).encode() + b"\n")
        f.write(json.dumps({"id": "cjk-raw", "text": big}, ensure_ascii=False).encode() + b"\n")
        f.write(json.dumps({"id": "cjk-over", "text": over}).encode() + b"\n")
    # 12. the same id in two files, once a number and once a string
    (d / "ids-a.jsonl").write_text(
        json.dumps({"id": 42, "text": texts[5]}) + "\n" + json.dumps({"id": "7", "text": texts[6]}) + "\n"
    )
    (d / "ids-b.jsonl").write_text(
        json.dumps({"id": "42", "text": texts[7]}) + "\n" + json.dumps({"id": "8", "text": texts[8]}) + "\n"
    )
    out = tmp_path_factory.mktemp("assorted-out") / "out"
    argv = [
        "run",
        "--input",
        str(d / "*.jsonl*"),
        "--input",
        str(d / "noid.parquet"),
        "--output",
        str(out),
        "--set",
        "stages.normalize.max_record_bytes=1000000",
        "--set",
        "output.rejected_text=true",
    ]
    return d, out, argv, big


@pytest.fixture(scope="module")
def assorted(assorted_run):
    d, out, argv, big = assorted_run
    proc = _run(argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    rows = _rows(out / "mixture") + _rows(out / "rejected")
    return d, out, m, rows, _rows(out / "quarantine"), proc.stdout


def test_a_bom_at_the_start_of_a_file_is_not_a_bad_record(assorted):
    d, out, m, rows, quar, _ = assorted
    assert not [q for q in quar if "bom" in q["file"]]
    ids = {r["id"] for r in rows}
    for name in ("bom.jsonl", "bom.jsonl.gz", "bom.jsonl.zst"):
        assert {f"{name}-{i}" for i in range(3)} <= ids


def test_parquet_rows_without_an_id_get_stable_distinct_ids(assorted, tmp_path):
    d, out, m, rows, quar, _ = assorted
    noid = [r for r in rows if r["text"] and r["text"].startswith("row ")]
    assert len(noid) == 1000 and len({r["id"] for r in noid}) == 1000
    from pipeline.config import NormalizeParams, Source
    from pipeline.sources import FileSpec, read_file

    spec = FileSpec(0, "input", str(d / "noid.parquet"), "parquet", "none", 0)
    again = [x["id"] for k, x in read_file(spec, Source(name="input", paths=["x"]), NormalizeParams(), 0)]
    by_text = {r["text"]: r["id"] for r in noid}
    texts = [x["text"] for k, x in read_file(spec, Source(name="input", paths=["x"]), NormalizeParams(), 0)]
    assert [by_text[t] for t in texts] == again  # the same ids on a reread: stable


def test_max_record_bytes_is_the_texts_utf8_size(assorted):
    d, out, m, rows, quar, _ = assorted
    ids = {r["id"] for r in rows}
    assert {"cjk-escaped", "cjk-raw"} <= ids
    over = [q for q in quar if q["reason"] == "too_large"]
    assert len(over) == 1 and over[0]["record"] == 2 and over[0]["file"].endswith("cjk.jsonl")
    assert "text is" in over[0]["detail"] and "max_record_bytes 1000000" in over[0]["detail"]


def test_ids_shared_across_files_are_counted_and_said(assorted):
    d, out, m, rows, quar, stdout = assorted
    assert m["duplicate_ids"] == {"ids": 1, "documents": 2}
    assert m["ledger"]["balanced"]
    assert "duplicate ids: 1 ids" in stdout and "2 documents" in stdout


# ------------------------------------------------------------------ inspect recounts the ledger


@pytest.fixture
def damaged(assorted, tmp_path):
    _, out, *_ = assorted
    return Path(shutil.copytree(out, tmp_path / "run"))


def _inspect(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = inspect_cmd.main([str(a) for a in argv])
    o, e = capsys.readouterr()
    return rc, o, e


def test_inspect_recounts_kept_from_the_shards(damaged, capsys):
    assert _inspect(capsys, damaged)[0] == 0
    path = damaged / schema.MANIFEST_NAME
    m = json.loads(path.read_text())
    m["ledger"]["kept"] += 100
    m["ledger"]["input"] += 100  # still "balanced" on paper
    path.write_text(json.dumps(m))
    rc, o, err = _inspect(capsys, damaged)
    assert rc == 1 and "manifest.json: ledger: kept" in err and "rows" in err


def test_inspect_recounts_rejected_and_quarantined_per_rule(damaged, capsys):
    path = damaged / schema.MANIFEST_NAME
    m = json.loads(path.read_text())
    rule = max(m["rejected"], key=m["rejected"].get)
    m["rejected"][rule] -= 1
    m["rejected"]["heuristics/made_up"] = m["rejected"].get("heuristics/made_up", 0) + 1
    path.write_text(json.dumps(m))
    rc, o, err = _inspect(capsys, damaged, "--json")
    assert rc == 1 and "manifest.json: ledger: rejected" in err
    m["rejected"][rule] += 1
    del m["rejected"]["heuristics/made_up"]
    m["quarantined"]["too_large"] = 0
    m["quarantined"]["bad_json"] = m["quarantined"].get("bad_json", 0) + 1
    path.write_text(json.dumps(m))
    rc, o, err = _inspect(capsys, damaged, "--json")
    assert rc == 1 and "quarantined 'bad_json'" in err
    # a ledger whose sum is wrong, whatever its "balanced" flag says
    m["quarantined"] = {"too_large": 1}
    m["ledger"]["input"] += 1
    path.write_text(json.dumps(m))
    rc, o, err = _inspect(capsys, damaged)
    assert rc == 1 and "ledger does not balance" in err


def test_checksums_verified_only_when_every_one_matched(damaged, capsys):
    rc, o, err = _inspect(capsys, damaged, "--verify", "--json")
    assert rc == 0 and json.loads(o)["checksums_verified"]
    m = json.loads((damaged / schema.MANIFEST_NAME).read_text())
    victim = next(s for s in m["shards"] if s["rows"])
    victim["sha256"] = "0" * 64
    (damaged / schema.MANIFEST_NAME).write_text(json.dumps(m))
    rc, o, err = _inspect(capsys, damaged, "--verify", "--json")
    assert rc == 1 and not json.loads(o)["checksums_verified"]
    rc, o, err = _inspect(capsys, damaged, "--verify")
    assert rc == 1 and "checksums verified" not in o and f"{victim['path']}: checksum" in err


# ------------------------------------------------------------------ config: nesting, --set literals


def test_a_deeply_nested_config_is_one_line_exit_2(tmp_path, capsys):
    p = tmp_path / "deep.yaml"
    p.write_text("stages: " + "[" * 5000 + "]" * 5000 + "\n")
    rc = main(["run", str(p), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "nested too deeply" in err
    assert not (tmp_path / "out").exists()


def test_set_null_is_the_string_where_the_field_is_a_string_enum(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("mode: filter\n")
    rc = main(
        [
            "run",
            str(p),
            "--input",
            str(tmp_path / "none.jsonl"),
            "--output",
            str(tmp_path / "o"),
            "--set",
            "stages.quality.on_error=null",
        ]
    )
    err = capsys.readouterr().err
    # gets past the config (null taken as "null") to the missing input
    assert rc == 2 and "on_error" not in err and "none.jsonl" in err
