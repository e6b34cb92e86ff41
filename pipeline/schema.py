"""The output contract: every Parquet column the pipeline writes, in one place.

See ../shared/DESIGN.md ("Output contract"). Tools and users rely on these names and types;
change them only together with the contract.
"""

from __future__ import annotations

import pyarrow as pa

# OUT/mixture/<bucket>.part-NNNNN-of-MMMMM.parquet: one flat directory, the bucket a column of every
# file (see MIXTURE_SHARD below)
MIXTURE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("bucket", pa.string(), nullable=False),
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float32()),
    pa.field("quality_score", pa.float32()),
    pa.field("n_tokens", pa.int64()),  # int64: a reader's sum over the column must not wrap past 2**31
    pa.field("dup_cluster_size", pa.int32()),
    pa.field("repeats", pa.int16()),
    # Where the document came from, for URL-level joins and dedup downstream: WARC-Target-URI and
    # WARC-Date (ISO 8601, UTC, as the crawler wrote it) for WARC input, the source's url_field and
    # timestamp_field for JSONL/Parquet, null where the input has none. `timestamp` is the source's
    # text, not a parsed timestamp type: sources give dates in many forms (ISO 8601, epoch numbers,
    # dates only) and a string keeps each one exactly, with no rule to guess units or time zones;
    # HF datasets, DuckDB, polars and Spark all read it as a plain string and cast it where needed.
    pa.field("url", pa.string()),
    pa.field("timestamp", pa.string()),
)
MIXTURE_SCHEMA = pa.schema(MIXTURE_FIELDS)
# Where a mixture shard goes: flat in mixture/, the bucket both in the file (its `bucket` column)
# and, for globbing one bucket (`mixture/en.part-*.parquet`; '.' is not in a bucket name), in its name.
# Not hive directories (mixture/bucket=<b>/): Hugging Face's Parquet loader does not read a partition
# key from the path, pyarrow's read_table infers it as a dictionary that clashes with the same
# column stored in the files, and Spark's read.parquet(dir) does not descend into directories
# that are not partitions. Every reader's plain call on the directory gives `bucket` exactly once.
MIXTURE_SHARD = "{bucket}.part-{shard:05d}-of-{n:05d}.parquet"
# The hive partition key of older outputs (mixture/bucket=<b>/part-*.parquet, the bucket not stored in
# the files): `curate inspect` still fills the column from such a path.
PARTITION_KEY = "bucket"

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
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string()),  # e.g. the survivor's id for a duplicate
        # every row's with output.rejected_text: true; else output.rejected_text_sample rows per rule
        # (smallest id hashes; the manifest's rejected_text.sampled) have it, the others null
        pa.field("text", pa.string()),
    ]
)

# The rejected-text sample's order: per rule, the rows with the smallest
# classifiers.text.stable_hash64(id, salt=REJECTED_SAMPLE_SALT) keep their text.
REJECTED_SAMPLE_SALT = b"rejected-sample"

# OUT/quarantine/part-*.parquet: one row per unreadable record (or unreadable rest of a file).
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("record", pa.int64(), nullable=False),  # 0-based line (jsonl) or row (parquet) index
        pa.field("byte_offset", pa.int64()),  # offset in the decompressed stream where it starts
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.binary()),  # the first output.quarantine_raw_bytes of the record
    ]
)

MANIFEST_NAME = "manifest.json"
# the manifest's "runner" of an output `curate run` wrote (pipeline/runner.py adds its mode)
LOCAL_RUNNER = "FnApiRunner"
REPORT_NAME = "report.html"  # `curate report OUT` writes OUT/report.html (an overwrite deletes it)
MANIFEST_FORMAT = "curate-manifest/1"
MIXTURE_DIR = "mixture"
ANNOTATED_DIR = "annotated"
REJECTED_DIR = "rejected"
QUARANTINE_DIR = "quarantine"
# The Hugging Face dataset card: its `configs:` let datasets.load_dataset(OUT) load the mixture (the
# default config), annotated, rejected and quarantine as separate configs.
DATASET_CARD = "README.md"
# A mixture target (a group's or a bucket's token share) is reported missed when the achieved
# share is further than this from it (manifest `mixture.unmet`, `curate inspect`).
SHARE_TOLERANCE = 0.005
