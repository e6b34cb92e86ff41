"""The output loads, with its `bucket` column exactly once, in the readers users reach for, each
called the way its own documentation reads a directory of Parquet: Hugging Face
`load_dataset(OUT)` (through the dataset card OUT/README.md), pyarrow, DuckDB, polars and Spark.
One small real `curate run` (and a second one that rejects and quarantines nothing, for the
empty rejected/ and quarantine/ shards); every count is checked against the manifest."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline import outdir, schema
from pipeline.cli import main
from tests.corpus import bench_docs, write_jsonl

pytestmark = pytest.mark.slow

BAD = [b"{not json", b'{"id": "no-text"}']
EMPTY_KINDS = {schema.REJECTED_DIR: schema.REJECTED_SCHEMA, schema.QUARANTINE_DIR: schema.QUARANTINE_SCHEMA}


def _run(d: Path, name: str, *sets: str) -> tuple[Path, dict]:
    out = d / name
    argv = ["run", str(d / "run.yaml"), "--output", str(out)]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    return out, json.loads((out / schema.MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("readers")
    docs = bench_docs(25)
    text = [x for x in docs if x["category"] != "c_code"]
    code = [{"id": x["id"], "text": x["text"], "path": x["id"]} for x in docs if x["category"] == "c_code"]
    write_jsonl(d / "text.jsonl", [json.dumps(x).encode() for x in text] + BAD)
    write_jsonl(d / "code.jsonl", code)
    (d / "run.yaml").write_text(f"""
sources:
  - {{name: text, paths: ["{d}/text.jsonl"]}}
  - {{name: code, paths: ["{d}/code.jsonl"], kind: code, path_field: path}}
output: {{shard_bytes: 20000}}
""")
    full = _run(d, "full")
    annotated = _run(d, "annotated", "mode=annotate")
    # the same input without the bad records and with every dropping stage off: nothing rejected
    write_jsonl(d / "text.jsonl", text)
    off = [
        f"stages.{s}.enabled=false"
        for s in ("langid", "heuristics", "url_dedup", "exact_dedup", "minhash_dedup", "line_dedup", "mixture")
    ]
    clean = _run(d, "clean", *off)
    return {"full": full, "clean": clean, "annotated": annotated}


def filter_runs(runs: dict) -> list[tuple[Path, dict]]:
    return [runs["full"], runs["clean"]]


def expected(m: dict) -> dict[str, int]:
    """Rows per bucket, as the manifest counts them."""
    return {b: v["documents"] for b, v in m["buckets"].items() if v["documents"]}


def test_the_output_has_the_contract_and_every_kind(runs):
    for out, m in (runs["full"], runs["clean"]):
        assert m["ledger"]["balanced"]
        for s in m["shards"]:  # the bucket is a column of every mixture file, named in its file name too
            if s["kind"] == "mixture":
                assert s["path"] == f"mixture/{s['bucket']}.part-{s['shard']:05d}-of-{s['of']:05d}.parquet"
                t = pq.read_table(out / s["path"])
                assert t.schema == schema.MIXTURE_SCHEMA
                assert set(t.column("bucket").to_pylist()) <= {s["bucket"]}
        kinds = {s["kind"] for s in m["shards"]}
        assert kinds == {"mixture", "rejected", "quarantine"}
        card = m["dataset_card"]
        assert card["path"] == schema.DATASET_CARD and (out / card["path"]).stat().st_size == card["bytes"]
    out, m = runs["full"]
    assert m["ledger"]["rejected"] > 0 and m["ledger"]["quarantined"] == len(BAD)


def test_empty_rejected_and_quarantine_are_shards_with_their_schema(runs):
    out, m = runs["clean"]
    assert m["ledger"]["rejected"] == 0 and m["ledger"]["quarantined"] == 0 and m["ledger"]["kept"] > 0
    for kind, sch in EMPTY_KINDS.items():
        listed = [s for s in m["shards"] if s["kind"] == kind]
        assert [s["path"] for s in listed] == [f"{kind}/part-00000-of-00001.parquet"]
        f = pq.ParquetFile(out / listed[0]["path"])
        assert f.schema_arrow == sch and f.metadata.num_rows == 0 and f.metadata.num_row_groups == 0
        assert pq.read_table(out / kind).schema == sch  # the directory, as a reader globs it
    # an empty kind has no Hugging Face config (`datasets` cannot load an empty split)
    assert _card_configs(out) == ["mixture"]
    assert _card_configs(runs["full"][0]) == ["mixture", "rejected", "quarantine"]


def _card_configs(out: Path) -> list[str]:
    import yaml

    front = (out / schema.DATASET_CARD).read_text().split("---\n")[1]
    return [c["config_name"] for c in yaml.safe_load(front)["configs"]]


# ----------------------------------------------------------------------------- each reader


def test_pyarrow(runs):
    for out, m in filter_runs(runs):
        t = pq.read_table(out / "mixture")  # pyarrow's documented call for a directory
        assert t.schema.names.count("bucket") == 1 and t.schema.field("bucket").type == pa.string()
        assert t.schema.field("n_tokens").type == pa.int64()
        counts = {r["values"]: r["counts"] for r in pc.value_counts(t.column("bucket")).to_pylist()}
        assert counts == expected(m)
        assert pc.sum(t.column("n_tokens")).as_py() == sum(b["unique_tokens"] for b in m["buckets"].values())
        for kind in EMPTY_KINDS:
            assert (
                pq.read_table(out / kind).num_rows == m["ledger"]["rejected" if kind == "rejected" else "quarantined"]
            )


def test_duckdb(runs):
    duckdb = pytest.importorskip("duckdb")
    for out, m in filter_runs(runs):
        con = duckdb.connect()
        rel = con.sql(f"SELECT * FROM read_parquet('{out}/mixture/*.parquet')")
        assert rel.columns.count("bucket") == 1
        assert dict(zip(rel.columns, map(str, rel.types)))["n_tokens"] == "BIGINT"
        rows = con.sql(f"SELECT bucket, count(*) FROM '{out}/mixture/*.parquet' GROUP BY bucket").fetchall()
        assert dict(rows) == expected(m)
        for kind, key in (("rejected", "rejected"), ("quarantine", "quarantined")):
            assert con.sql(f"SELECT count(*) FROM '{out}/{kind}/*.parquet'").fetchall() == [(m["ledger"][key],)]
        con.close()


def test_polars(runs):
    pl = pytest.importorskip("polars")
    for out, m in filter_runs(runs):
        df = pl.read_parquet(out / "mixture")  # a directory: polars reads every file under it
        assert df.columns.count("bucket") == 1 and df.schema["n_tokens"] == pl.Int64
        counts = dict(df.group_by("bucket").len().iter_rows())
        assert counts == expected(m)
        # int64: the sum a trainer takes of the column does not wrap past 2**31
        assert df["n_tokens"].sum() == sum(b["unique_tokens"] for b in m["buckets"].values())
        for kind, key in (("rejected", "rejected"), ("quarantine", "quarantined")):
            assert pl.read_parquet(out / kind).height == m["ledger"][key]


@pytest.fixture
def hf_datasets(tmp_path, monkeypatch):
    """`datasets`, offline, its cache in tmp_path: nothing touches the network or ~/.cache."""
    cache = tmp_path / "hf"
    for k, v in {
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(cache),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
    }.items():
        monkeypatch.setenv(k, v)
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")  # if imported before
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return datasets


def test_hugging_face_load_dataset(runs, hf_datasets):
    for out, m in filter_runs(runs):
        ds = hf_datasets.load_dataset(str(out))  # the dataset card's default config: the mixture
        train = ds["train"]
        assert list(ds) == ["train"] and train.column_names.count("bucket") == 1
        assert train.features["n_tokens"] == hf_datasets.Value("int64")
        assert dict(Counter(train["bucket"])) == expected(m)
    out, m = runs["full"]
    for config, key in (("rejected", "rejected"), ("quarantine", "quarantined")):
        part = hf_datasets.load_dataset(str(out), config)["train"]
        assert part.num_rows == m["ledger"][key] > 0
    # annotate mode: the annotated rows are the default config, every column (signals included) loads
    out, m = runs["annotated"]
    assert _card_configs(out) == ["annotated", "quarantine"]
    ds = hf_datasets.load_dataset(str(out))["train"]
    assert ds.num_rows == m["ledger"]["kept"] > 0 and ds.features["n_tokens"] == hf_datasets.Value("int64")
    assert set(ds.column_names) == set(pq.read_schema(next((out / "annotated").glob("*.parquet"))).names)
    assert hf_datasets.load_dataset(str(out), "quarantine")["train"].num_rows == m["ledger"]["quarantined"]


@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark(runs, tmp_path):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (apt-get install openjdk-17-jre-headless)")
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession
    from pyspark.sql.types import LongType

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("curate-readers")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.local.dir", str(tmp_path))
        .getOrCreate()
    )
    try:
        for out, m in filter_runs(runs):
            df = spark.read.parquet(str(out / "mixture"))  # Spark's documented call for a directory
            assert df.columns.count("bucket") == 1 and isinstance(df.schema["n_tokens"].dataType, LongType)
            counts = {r["bucket"]: r["count"] for r in df.groupBy("bucket").count().collect()}
            assert counts == expected(m)
            for kind, key in (("rejected", "rejected"), ("quarantine", "quarantined")):
                assert spark.read.parquet(str(out / kind)).count() == m["ledger"][key]
    finally:
        spark.stop()


# ----------------------------------------------------------------------------- the former layout


def test_an_output_in_the_former_hive_layout_is_still_replaced_by_overwrite(tmp_path):
    """Outputs written before the flat layout (mixture/bucket=<b>/part-*, listed by their
    manifest) are curate's own: --overwrite replaces them instead of refusing them as foreign."""
    out = tmp_path / "out"
    old = "mixture/bucket=en/part-00000-of-00001.parquet"
    (out / "mixture" / "bucket=en").mkdir(parents=True)
    (out / old).write_text("old")
    (out / schema.MANIFEST_NAME).write_text(json.dumps({"shards": [{"path": old}]}))
    staged = outdir.StagedOutput.open(str(out), [], [], overwrite=True)
    try:
        new = "mixture/en.part-00000-of-00001.parquet"
        (Path(staged.staging) / "mixture").mkdir()
        (Path(staged.staging) / new).write_text("new")
        (Path(staged.staging) / schema.MANIFEST_NAME).write_text(json.dumps({"shards": [{"path": new}]}))
        staged.commit()
    finally:
        staged.close()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        schema.MANIFEST_NAME,
        "mixture/en.part-00000-of-00001.parquet",
    ]
    assert not any(p.name.startswith("out.") for p in tmp_path.iterdir())
