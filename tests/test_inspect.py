"""`curate inspect`: its figures against an independent pyarrow computation over the files of a
real run (one pipeline run for the module, on a few hundred bench-corpus documents), and its
checks against the manifest: truncated, deleted, extra and silently corrupted shards, a run
without a manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline import inspect_cmd, schema
from pipeline.cli import main as curate_main
from tests.corpus import bench_docs, write_jsonl


def curate_inspect(capsys, *argv: str) -> tuple[int, str, str]:
    """`curate inspect ARGV` through the subcommand's own parser; (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = inspect_cmd.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """One real filter-mode run over English, multilingual and code documents, with a large
    multilingual target so that a few hundred documents fill many buckets; small shards."""
    d = tmp_path_factory.mktemp("inspect-corpus")
    docs = [x for x in bench_docs(70) if not x.get("dup_of")]
    write_jsonl(d / "text.jsonl", [{"id": x["id"], "text": x["text"]} for x in docs if x["category"] != "c_code"])
    write_jsonl(
        d / "code.jsonl",
        [{"id": x["id"], "text": x["text"], "path": x["id"]} for x in docs if x["category"] == "c_code"],
    )
    (d / "run.yaml").write_text(f"""
sources:
  - {{name: text, paths: ["{d}/text.jsonl"]}}
  - {{name: code, paths: ["{d}/code.jsonl"], kind: code, path_field: path}}
stages: {{mixture: {{targets: {{code: 0.2, multilingual: 0.45}}}}}}
output: {{shard_bytes: 6000}}
""")
    out = tmp_path_factory.mktemp("inspect-out") / "run"
    assert curate_main(["run", str(d / "run.yaml"), "--output", str(out)]) == 0
    return out


@pytest.fixture
def copy(output, tmp_path) -> Path:
    """A copy of the run to damage."""
    return Path(shutil.copytree(output, tmp_path / "run"))


def mixture_shards(out: Path) -> list[dict]:
    m = json.loads((out / schema.MANIFEST_NAME).read_text())
    return [s for s in m["shards"] if s["kind"] == "mixture" and s["rows"] > 0]


def test_figures_equal_an_independent_pyarrow_computation(output):
    rep = inspect_cmd.inspect(str(output))
    assert rep["ok"] and rep["problems"] == [] and rep["kind"] == "mixture"
    t = ds.dataset(output / "mixture", format="parquet", partitioning="hive").to_table(
        columns=["bucket", "language", "n_tokens", "repeats", "quality_score", "dup_cluster_size"]
    )
    t = t.append_column("tok", pc.multiply(t["n_tokens"].cast(pa.int64()), t["repeats"].cast(pa.int64())))
    by_bucket = {
        r["bucket"]: r
        for r in t.group_by("bucket")
        .aggregate([("tok", "sum"), ("n_tokens", "count"), ("dup_cluster_size", "max")])
        .to_pylist()
    }
    total = sum(r["tok_sum"] for r in by_bucket.values())
    assert {"en", "code"} <= set(by_bucket) and len(by_bucket) >= 4  # a real mixture, several buckets
    assert rep["total"]["documents"] == t.num_rows and rep["total"]["tokens"] == total
    manifest = json.loads((output / schema.MANIFEST_NAME).read_text())
    for name, b in rep["buckets"].items():
        want = by_bucket.get(name, {"tok_sum": 0, "n_tokens_count": 0})
        assert (b["documents"], b["tokens"]) == (want["n_tokens_count"], want["tok_sum"]), name
        assert b["share"] == pytest.approx(want["tok_sum"] / total)
        assert b["target_share"] == manifest["buckets"][name].get("target_share")
        assert b["share"] == pytest.approx(manifest["buckets"][name]["achieved_share"])
    assert set(rep["buckets"]) == set(manifest["buckets"])  # empty buckets with a target are reported
    # per language inside the code bucket (programming languages), adding up to the bucket
    code = t.filter(pc.equal(t["bucket"], "code"))
    langs = {r["language"]: r["tok_sum"] for r in code.group_by("language").aggregate([("tok", "sum")]).to_pylist()}
    got = rep["buckets"]["code"]["languages"]
    assert {k: v["tokens"] for k, v in got.items()} == langs and sum(langs.values()) == rep["buckets"]["code"]["tokens"]
    # distributions: quality is off in this run (all null, counted), lengths in tokens, cluster sizes
    en = t.filter(pc.equal(t["bucket"], "en"))
    assert rep["buckets"]["en"]["quality_score"]["nulls"] == en["quality_score"].null_count == en.num_rows
    assert rep["buckets"]["en"]["quality_score"]["p50"] is None
    length = rep["buckets"]["en"]["length_tokens"]
    assert [length[k] for k in ("p10", "p50", "p90")] == pytest.approx(
        pc.quantile(en["n_tokens"], q=[0.1, 0.5, 0.9]).to_pylist()
    )
    dup = rep["total"]["dup_cluster_size"]
    sizes = t["dup_cluster_size"].to_numpy()
    assert dup["max"] == sizes.max() and dup["mean"] == pytest.approx(sizes.mean())
    assert dup["share_gt1"] == pytest.approx((sizes > 1).mean())
    # per shard: rows, bytes and row groups as on disk
    for s in rep["shards"]:
        md = pq.ParquetFile(output / s["path"]).metadata
        assert (s["rows"], s["bytes"], s["row_groups"]) == (
            md.num_rows,
            (output / s["path"]).stat().st_size,
            md.num_row_groups,
        )
    assert len(rep["shards"]) == len(manifest["shards"]) and sum(s["kind"] == "rejected" for s in rep["shards"])
    chars = sum(s["text_chars"] for s in manifest["shards"] if s["kind"] == "mixture")
    assert rep["total"]["text_chars_mean"] == pytest.approx(chars / t.num_rows)


def test_json_parses_with_stable_keys_and_tables_print(output, capsys):
    rc, out, err = curate_inspect(capsys, output, "--json", "--verify")
    assert rc == 0, err
    rep = json.loads(out)
    assert list(rep) == [
        "format",
        "path",
        "root",
        "kind",
        "manifest",
        "checksums_verified",
        "ok",
        "problems",
        "total",
        "buckets",
        "groups",
        "targets_missed",
        "files",
        "shards",
    ]
    assert rep["format"] == inspect_cmd.INSPECT_FORMAT and rep["checksums_verified"] and rep["ok"]
    assert set(rep["buckets"]["en"]) >= {
        "documents",
        "tokens",
        "unique_tokens",
        "share",
        "target_share",
        "gap",
        "languages",
        "quality_score",
        "dup_cluster_size",
        "length_tokens",
    }
    rc, out, err = curate_inspect(capsys, output)
    assert rc == 0 and "tokens by bucket" in out and "ok: every file matches the manifest" in out


def test_a_truncated_shard_fails_naming_it(copy, capsys):
    victim = max(mixture_shards(copy), key=lambda s: s["bytes"])
    p = copy / victim["path"]
    p.write_bytes(p.read_bytes()[: victim["bytes"] // 2])
    rc, out, err = curate_inspect(capsys, copy, "--json")
    assert rc == 1
    assert f"{victim['path']}: truncated" in err
    problems = {(x["path"], x["problem"]) for x in json.loads(out)["problems"]}
    assert problems == {(victim["path"], "truncated"), (victim["path"], "unreadable")}
    assert "does not match" in err.splitlines()[-1]


def test_deleted_and_extra_shards_are_reported(copy, capsys):
    shards = mixture_shards(copy)
    gone, other = shards[0], shards[-1]
    (copy / gone["path"]).unlink()
    extra = Path(other["path"]).with_name("part-00099-of-00100.parquet")
    shutil.copy(copy / other["path"], copy / extra)
    rc, out, err = curate_inspect(capsys, copy, "--json")
    assert rc == 1
    rep = json.loads(out)
    assert {(x["path"], x["problem"]) for x in rep["problems"]} == {(gone["path"], "missing"), (str(extra), "extra")}
    assert f"{gone['path']}: missing" in err and f"{extra}: extra" in err
    # the statistics are those of what is there and listed: the missing shard's rows are not counted
    assert rep["total"]["documents"] == sum(s["rows"] for s in mixture_shards(copy)) - gone["rows"]


def test_checksums_catch_what_sizes_cannot_only_with_verify(copy, capsys):
    """A byte changed inside the text column (not read without --verify) keeps size, footer, rows."""
    victim = max(mixture_shards(copy), key=lambda s: s["bytes"])
    p = copy / victim["path"]
    col = pq.ParquetFile(p).metadata.row_group(0).column(schema.MIXTURE_SCHEMA.get_field_index("text"))
    start = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
    at = start + col.total_compressed_size // 2
    blob = bytearray(p.read_bytes())
    blob[at] ^= 0xFF
    p.write_bytes(bytes(blob))
    assert curate_inspect(capsys, copy)[0] == 0
    rc, out, err = curate_inspect(capsys, copy, "--verify")
    assert rc == 1 and f"{victim['path']}: checksum" in err


def test_manifest_rows_tokens_and_ledger_are_checked(copy, capsys):
    m = json.loads((copy / schema.MANIFEST_NAME).read_text())
    a, b = [s for s in m["shards"] if s["kind"] == "mixture" and s["rows"] > 0][:2]
    a["rows"] += 1
    b["tokens"] -= 7
    m["ledger"]["balanced"] = False
    (copy / schema.MANIFEST_NAME).write_text(json.dumps(m))
    rc, out, err = curate_inspect(capsys, copy, "--json")
    assert rc == 1
    assert {(x["path"], x["problem"]) for x in json.loads(out)["problems"]} == {
        (a["path"], "rows"),
        (b["path"], "tokens"),
        (schema.MANIFEST_NAME, "ledger"),
    }


def test_an_output_without_manifest_is_rejected(copy, capsys):
    (copy / schema.MANIFEST_NAME).unlink()
    rc, out, err = curate_inspect(capsys, copy)
    assert rc == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no manifest.json" in lines[0]


def test_plain_parquet_is_inspected_without_manifest(output, tmp_path, capsys):
    """A copy of the mixture outside its output: same figures, no targets, nothing to verify;
    the mixture/ directory inside the output is inspected with its manifest."""
    with_manifest = inspect_cmd.inspect(str(output))
    plain_dir = Path(shutil.copytree(output / "mixture", tmp_path / "elsewhere"))
    plain = inspect_cmd.inspect(str(plain_dir))
    assert plain["kind"] == "parquet" and plain["manifest"] is None and plain["ok"]
    nonempty = {k: (v["documents"], v["tokens"]) for k, v in with_manifest["buckets"].items() if v["documents"]}
    assert {k: (v["documents"], v["tokens"]) for k, v in plain["buckets"].items()} == nonempty
    assert all(v["target_share"] is None for v in plain["buckets"].values())
    assert plain["total"]["text_chars_mean"] is None and plain["total"]["text_bytes_mean_approx"] > 0
    one = mixture_shards(output)[0]
    single = inspect_cmd.inspect(str(output / one["path"]))
    assert single["total"]["documents"] == one["rows"] and single["total"]["tokens"] == one["tokens"]
    sub = inspect_cmd.inspect(str(output / "mixture"))
    assert sub["kind"] == "mixture" and sub["manifest"] is not None and sub["buckets"] == with_manifest["buckets"]
    rc, out, err = curate_inspect(capsys, output / "rejected")  # not a mixture, nor an output
    assert rc == 2 and f"not a curate output: the rejected/ directory of the output {output}" in err
    rc, out, err = curate_inspect(capsys, tmp_path / "nothing")
    assert rc == 2 and "no such file" in err


def test_plot_writes_a_png(output, tmp_path, capsys):
    dest = tmp_path / "mix.png"
    rc, out, err = curate_inspect(capsys, output, "--json", "--plot", dest)
    assert rc == 0, err
    from matplotlib.image import imread

    img = imread(dest)
    assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 300 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.05  # something drawn


def test_summarize_counts_repeats_nulls_and_empty_targets():
    """Annotated-style rows: repeats 0 (filter mode drops) and 2 (upsampled), null bucket, scores."""
    t = pa.table(
        {
            "bucket": ["en", "en", "en", "code", "code", None],
            "language": ["en", "en", "en", "python", "go", None],
            "quality_score": [1.0, 2.0, None, 4.0, 3.0, None],
            "n_tokens": [10, 20, 30, 40, 50, 5],
            "dup_cluster_size": [1, 3, 1, 1, 2, 1],
            "repeats": [1, 2, 0, 1, 1, 0],
            "drop_rule": [None, None, "heuristics/x", None, None, "langid/low_score"],
        }
    )
    rep = inspect_cmd.summarize(inspect_cmd._normalize(t), {"en": 0.5, "code": 0.3, "fr": 0.2})
    total = 10 + 40 + 40 + 50
    en, code, fr = rep["buckets"]["en"], rep["buckets"]["code"], rep["buckets"]["fr"]
    assert (en["documents"], en["tokens"], en["unique_tokens"]) == (3, 50, 60)
    assert en["share"] == pytest.approx(50 / total) and en["gap"] == pytest.approx(50 / total - 0.5)
    assert en["would_drop"] == 1 and rep["total"]["would_drop"] == 2
    assert en["quality_score"]["nulls"] == 1 and en["quality_score"]["p50"] == pytest.approx(1.5)
    assert en["dup_cluster_size"]["share_gt1"] == pytest.approx(1 / 3) and en["dup_cluster_size"]["max"] == 3
    assert {k: v["tokens"] for k, v in code["languages"].items()} == {"python": 40, "go": 50}
    assert (fr["documents"], fr["tokens"], fr["share"], fr["target_share"]) == (0, 0, 0.0, 0.2)
    assert rep["buckets"][inspect_cmd.NO_VALUE]["documents"] == 1
    assert rep["total"]["tokens"] == total and rep["total"]["documents"] == 6
    assert sum(b["share"] for b in rep["buckets"].values()) == pytest.approx(1.0)
    assert np.isclose(rep["total"]["quality_score"]["mean"], 2.5)
