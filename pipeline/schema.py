"""The output contract: every Parquet column the pipeline writes, in one place.

See ../shared/DESIGN.md ("Output contract"). Tools and users rely on these names and types;
change them only together with the contract.
"""
from __future__ import annotations

import pyarrow as pa

# OUT/mixture/bucket=<bucket>/part-NNNNN-of-MMMMM.parquet
MIXTURE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("bucket", pa.string(), nullable=False),
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float32()),
    pa.field("quality_score", pa.float32()),
    pa.field("n_tokens", pa.int32()),
    pa.field("dup_cluster_size", pa.int32()),
    pa.field("repeats", pa.int16()),
)
MIXTURE_SCHEMA = pa.schema(MIXTURE_FIELDS)
# `bucket` is the hive partition key (`bucket=<b>/` in the path), so it is not stored inside the
# files: Spark refuses a column that is both in the files and in the partition path, pyarrow's
# read_table and DuckDB's hive_partitioning add it from the path. Reading one shard alone, the
# bucket is its directory's name.
PARTITION_KEY = "bucket"
MIXTURE_FILE_SCHEMA = pa.schema([f for f in MIXTURE_FIELDS if f.name != PARTITION_KEY])

# Extra columns of OUT/annotated/part-*.parquet (annotate mode): the contract's columns (nullable,
# since a document dropped early has no value for later stages) plus why filter mode would drop it.
ANNOTATE_EXTRA_FIELDS: tuple[pa.Field, ...] = (
    pa.field("drop_stage", pa.string()),
    pa.field("drop_rule", pa.string()),
    pa.field("dup_cluster", pa.string()),  # id of the survivor this document's near-dup cluster keeps
    pa.field("quality_flag", pa.string()),  # judge_off_format / judge_error
    pa.field("language_model", pa.string()),  # which model decided the language: fasttext / lingua
    pa.field("line_dedup_fraction", pa.float32()),  # share of characters line dedup would remove
)
SIGNAL_PREFIX = "h_"  # heuristic signal columns in annotate mode: h_<signal name>, float32


def annotate_schema(signal_names: tuple[str, ...]) -> pa.Schema:
    fields = [f.with_nullable(True) for f in MIXTURE_FIELDS] + list(ANNOTATE_EXTRA_FIELDS)
    fields += [pa.field(SIGNAL_PREFIX + name, pa.float32()) for name in signal_names]
    return pa.schema(fields)


# OUT/rejected/part-*.parquet: one row per document a stage dropped.
REJECTED_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("rule", pa.string(), nullable=False),
    pa.field("detail", pa.string()),  # e.g. the survivor's id for a duplicate
    pa.field("text", pa.string()),  # only with output.rejected_text: true
])

# OUT/quarantine/part-*.parquet: one row per unreadable record (or unreadable rest of a file).
QUARANTINE_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("file", pa.string(), nullable=False),
    pa.field("record", pa.int64(), nullable=False),  # 0-based line (jsonl) or row (parquet) index
    pa.field("byte_offset", pa.int64()),  # offset in the decompressed stream where it starts
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("raw", pa.binary()),  # the first output.quarantine_raw_bytes of the record
])

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "curate-manifest/1"
MIXTURE_DIR = "mixture"
ANNOTATED_DIR = "annotated"
REJECTED_DIR = "rejected"
QUARANTINE_DIR = "quarantine"
# A mixture target (a group's or a bucket's token share) is reported missed when the achieved
# share is further than this from it (manifest `mixture.unmet`, `curate inspect`).
SHARE_TOLERANCE = 0.005
